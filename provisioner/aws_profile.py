"""The ``~/.aws/config`` profile that gets credentials from this tool (pure text in, text out).

``merge_profile`` rewrites only the section of one profile and leaves every other line
of the file as it was, comments and blank lines included: configparser would lose them.
Inside that section, the keys this tool owns are set, any other way of getting
credentials is removed (it would win over or fight with ``credential_process``), and the
user's other settings (``output``, ``s3`` blocks, ...) are kept.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import unicodedata
from urllib.parse import urlsplit

# Keys that give a profile credentials some other way. botocore tries assume-role, SSO
# and static keys before credential_process, so leaving one would silently win.
CREDENTIAL_SOURCE_KEYS = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_security_token",
        "role_arn",
        "source_profile",
        "credential_source",
        "role_session_name",
        "web_identity_token_file",
        "sso_session",
        "sso_start_url",
        "sso_region",
        "sso_account_id",
        "sso_role_name",
        "credential_process",
    }
)

# Characters cmd.exe acts on before the program sees its command line: & | < > (command
# separators and redirections), ^ (escape), % and ! (variable expansion), " (quoting).
# The Go, JavaScript and Java SDKs run credential_process as ``cmd.exe /C <value>`` on
# Windows; no quoting understood both by cmd.exe and by botocore's CommandLineToArgvW
# split makes them all literal, so paths containing them are refused.
WINDOWS_SHELL_METACHARACTERS = frozenset('&|<>^%!"')
# Hosts an endpoint_url may name with plain http: this machine only (the local stand-in).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

_HEADER = re.compile(r"^\s*\[([^\]]*)\]\s*(?:[#;].*)?$")
_KEY = re.compile(r"^([^=:\s][^=:]*?)\s*[=:]")


class ConfigMergeError(ValueError):
    """The existing config cannot be merged safely (e.g. the section appears twice)."""


def profile_section(profile_name: str) -> str:
    """``default`` stays ``[default]``; any other name is ``[profile NAME]``."""
    validate_profile_name(profile_name)
    return "default" if profile_name == "default" else f"profile {profile_name}"


def validate_profile_name(profile_name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.@+-]{1,64}", profile_name or ""):
        raise ValueError(
            f"invalid profile name {profile_name!r}: use letters, digits and . _ - @ + (up to 64)"
        )


def credential_process_command(python: str, profile_dir: str, *, windows: bool = False) -> str:
    """The ``credential_process`` value, quoted the way botocore splits it on that platform.

    ValueError for a path that cannot be written safely: a line break or other control
    character anywhere; on Windows also a character ``cmd.exe`` interprets (see
    ``WINDOWS_SHELL_METACHARACTERS``).
    """
    argv = [python, "-m", "provisioner", "credentials", "--profile-dir", profile_dir]
    for part in argv:
        if "\n" in part or "\r" in part:
            raise ValueError(f"path {part!r} contains a line break; it cannot go into an AWS config file")
        # Other control characters: str.splitlines (merge_profile) also breaks lines at \x0b, \x0c, \x1c-\x1e, \x85.
        if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in part):
            raise ValueError(f"path {part!r} contains a control character; it cannot go into an AWS config file")
        if windows:
            found = sorted(set(part) & WINDOWS_SHELL_METACHARACTERS)
            if found:
                raise ValueError(
                    f"path {part!r} contains {' '.join(found)}, which cmd.exe interprets (the Go, JavaScript "
                    "and Java SDKs run credential_process through cmd.exe /C); use a path without any of "
                    + " ".join(sorted(WINDOWS_SHELL_METACHARACTERS))
                )
    # botocore splits with shlex on POSIX and with CommandLineToArgvW rules on Windows.
    return subprocess.list2cmdline(argv) if windows else shlex.join(argv)


def validate_endpoint_url(url: str) -> None:
    """``endpoint_url`` sends every AWS request of the profile, signed with its credentials,
    to that URL: https is required, plain http only to this machine (the local stand-in)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"invalid --endpoint-url {url!r}: {exc}") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"invalid --endpoint-url {url!r}: expected https://HOST[:PORT]")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"--endpoint-url {url!r} would send signed requests unencrypted: use https, "
            "or http only for localhost, 127.0.0.1 or [::1]"
        )


def profile_settings(
    *, credential_process: str, region: str, endpoint_url: str | None = None
) -> dict[str, str]:
    settings = {"credential_process": credential_process, "region": region}
    if endpoint_url:
        validate_endpoint_url(endpoint_url)
        settings["endpoint_url"] = endpoint_url
    for key, value in settings.items():
        if "\n" in value or "\r" in value or value != value.strip():
            raise ValueError(f"{key} value {value!r} cannot go into an AWS config file")
    return settings


def render_profile(profile_name: str, settings: dict[str, str]) -> str:
    """The profile section on its own."""
    lines = [f"[{profile_section(profile_name)}]"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _normalise_section(name: str) -> str:
    return " ".join(name.split())


def merge_profile(existing: str, profile_name: str, settings: dict[str, str]) -> str:
    """``existing`` config text with the section of ``profile_name`` set to ``settings``."""
    wanted = profile_section(profile_name)
    lines = existing.splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    ours = [i for i in headers if _normalise_section(_HEADER.match(lines[i]).group(1)) == wanted]
    if len(ours) > 1:
        raise ConfigMergeError(f"[{wanted}] appears {len(ours)} times; remove the duplicates by hand first")
    if not ours:
        text = existing
        if text and not text.endswith("\n"):
            text += "\n"
        if text.strip():
            text += "\n"
        return text + render_profile(profile_name, settings)

    start = ours[0]
    following = [i for i in headers if i > start]
    end = following[0] if following else len(lines)
    body = lines[start + 1 : end]
    # Trailing blank lines and comments lead into the next section: leave them in place.
    tail_start = len(body)
    while tail_start > 0 and (not body[tail_start - 1].strip() or body[tail_start - 1].lstrip()[:1] in "#;"):
        tail_start -= 1
    body, tail = body[:tail_start], body[tail_start:]

    kept: list[str] = []
    dropping = False
    for line in body:
        is_continuation = line[:1] in (" ", "\t") and line.strip() != ""
        if is_continuation:
            if not dropping:
                kept.append(line)
            continue
        match = _KEY.match(line)
        key = match.group(1).strip().lower() if match else None
        dropping = key is not None and (key in CREDENTIAL_SOURCE_KEYS or key in settings)
        if not dropping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    newline = "\r\n" if lines[start].endswith("\r\n") else "\n"
    block = [f"[{wanted}]{newline}"] + [f"{k} = {v}{newline}" for k, v in settings.items()] + kept
    if block and not block[-1].endswith("\n"):
        block[-1] += newline
    if not tail and following:
        tail = [newline]
    return "".join(lines[:start] + block + tail + lines[end:])


def removed_keys(existing: str, profile_name: str) -> list[str]:
    """Credential-source keys the merge will drop from the profile's section (to warn about)."""
    wanted = profile_section(profile_name)
    inside, found = False, []
    for line in existing.splitlines():
        header = _HEADER.match(line)
        if header:
            inside = _normalise_section(header.group(1)) == wanted
            continue
        match = _KEY.match(line) if inside else None
        if match:
            key = match.group(1).strip().lower()
            if key in CREDENTIAL_SOURCE_KEYS and key != "credential_process":
                found.append(key)
    return found
