"""``browser-policy``: Chrome policy files for this laptop's device profile.

Reads device.json and device.crt (and device.p12 for macOS), renders with
:mod:`provisioner.browser_policy`, writes the files atomically and prints what it
wrote and where each goes. See docs/browser.md for the rollout.

``browser-policy --stand-in-extension DIR`` instead writes the extension's stand-in
variant: a copy of the repository's ``extension/`` whose manifest may also reach the local
stand-in's credentials endpoint (``https://localhost``); it needs no device profile.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from provisioner import browser_policy
from provisioner.errors import LocalFileError, UsageError
from provisioner.profile import load_profile, write_file_atomic

HELP = "write Chrome policies (certificate auto-selection + extension configuration) for macOS, Windows, Linux"

PASSWORD_ENV = "DEVICE_TRUST_PKCS12_PASSWORD"

# The shipped extension, in a checkout of the repository (it is not part of the installed package).
EXTENSION_SOURCE = Path(__file__).resolve().parents[2] / "extension"

_INSTALL_HINTS = {
    "linux": "copy to " + " and ".join(f"{d}/" for d in browser_policy.LINUX_POLICY_DIRS) + " (root, mode 0644)",
    "windows": "import on the laptop (reg import, as administrator) or turn into a GPO / Intune setting",
    "macos": "push with your MDM (holds the private key: keep it 0600, never e-mail it)",
}


def add_arguments(parser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--os", choices=browser_policy.OPERATING_SYSTEMS, dest="target_os",
                        help="the operating system to write the policy for")
    target.add_argument("--all", action="store_true", help="write the policies for macOS, Windows and Linux")
    target.add_argument("--stand-in-extension", type=Path, metavar="DIR",
                        help="instead of policies, write to DIR a copy of extension/ that may also reach the local "
                             "stand-in's endpoint (https://localhost); same extension id, nothing else changed")
    parser.add_argument("--output-dir", type=Path, metavar="DIR",
                        help="where to write the files (default: <profile-dir>/browser)")
    parser.add_argument("--allowed-origin", action="append", default=[], metavar="URL",
                        help="web application origin that may ask the extension for credentials, e.g. "
                             "https://app.example.com (repeat for several; http only for localhost)")
    parser.add_argument("--extension-id", default=browser_policy.EXTENSION_ID, metavar="ID",
                        help=f"the Device Trust extension's id (default: {browser_policy.EXTENSION_ID}, "
                             "from extension/manifest.json)")
    parser.add_argument("--extension-update-url", metavar="URL",
                        help="update URL for ExtensionInstallForcelist (the Chrome Web Store's "
                             "https://clients2.google.com/service/update2/crx or your own); without it the "
                             "policies do not force-install the extension")
    parser.add_argument("--omit-pkcs12-password", action="store_true",
                        help="macOS: leave the PKCS#12 password out of the profile; macOS asks for it when the "
                             "profile is installed (Apple's advice unless the MDM delivers the profile securely)")
    parser.add_argument("--macos-identifier", default="com.example.device-trust", metavar="REVERSE_DNS",
                        help="prefix of the configuration profile's PayloadIdentifier (default: %(default)s)")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LocalFileError(f"cannot read {what} {path}: {exc.strerror or exc}: re-run install or enroll") from exc


def _pkcs12_password() -> str:
    value = os.environ.get(PASSWORD_ENV)
    if value is None:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise UsageError(f"the macOS profile needs the device.p12 password: set {PASSWORD_ENV} "
                             "(no terminal to prompt on)")
        value = getpass.getpass("Password of device.p12: ")
    return value


def _check_pkcs12(data: bytes, password: str, path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(data, password.encode())
    except ValueError as exc:
        raise UsageError(f"the password does not open {path} (or the file is damaged): check {PASSWORD_ENV}") from exc
    if key is None or certificate is None:
        raise LocalFileError(f"{path} holds no key and certificate: re-run install")


def render_files(args, profile) -> list[tuple[str, Path, bytes, bool]]:
    """(os, path, content, secret) for each file to write; nothing is written here."""
    policy = browser_policy.build_policy(
        credentials_endpoint=profile.credentials_endpoint,
        certificate_pem=_read(profile.cert_path, "device certificate"),
        role_alias=profile.role_alias,
        thing_name=profile.thing_name,
        allowed_origins=args.allowed_origin,
        environment=profile.environment,
        extension_id=args.extension_id,
        extension_update_url=args.extension_update_url,
    )
    output_dir = (args.output_dir or profile.directory / "browser").expanduser()
    stem = f"device-trust-{profile.environment}"
    targets = browser_policy.OPERATING_SYSTEMS if args.all else (args.target_os,)
    files = []
    for target in targets:
        if target == "linux":
            files.append(("linux", output_dir / f"{stem}.json", browser_policy.render_linux(policy), False))
        elif target == "windows":
            files.append(("windows", output_dir / f"{stem}.reg", browser_policy.render_windows(policy), False))
        else:
            p12 = _read(profile.p12_path, "PKCS#12 bundle")
            password = None
            if not args.omit_pkcs12_password:
                password = _pkcs12_password()
                _check_pkcs12(p12, password, profile.p12_path)
            content = browser_policy.render_macos(policy, pkcs12=p12, pkcs12_password=password,
                                                  identifier_prefix=args.macos_identifier)
            files.append(("macos", output_dir / f"{stem}.mobileconfig", content, True))
    return files


def _replace_directory(staging: Path, target: Path) -> None:
    """Put the finished ``staging`` directory at ``target``, replacing an earlier build there."""
    if not target.exists():
        os.replace(staging, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    os.replace(target, old / target.name)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def build_stand_in_extension(output_dir: Path, source: Path = EXTENSION_SOURCE) -> Path:
    """Copy ``source`` (extension/) to ``output_dir`` with :func:`browser_policy.stand_in_manifest`'s manifest.

    Every other file is copied byte for byte. ``output_dir`` may be new, empty, or an earlier
    build (a directory holding a manifest.json), which is replaced whole; anything else is refused.
    """
    manifest_path = source / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        variant = browser_policy.stand_in_manifest(manifest)
    except OSError as exc:
        raise LocalFileError(f"cannot read the extension's manifest {manifest_path}: {exc.strerror or exc}: "
                             "--stand-in-extension works in a checkout of the repository") from exc
    except ValueError as exc:  # json.JSONDecodeError is one
        raise LocalFileError(f"{manifest_path} is not an extension manifest: {exc}") from exc
    target = output_dir.expanduser().absolute()
    source = source.resolve()
    if target.resolve() == source or source in target.resolve().parents:
        raise UsageError(f"invalid --stand-in-extension {output_dir}: it is inside {source}; choose another directory")
    if target.exists() and not target.is_dir():
        raise UsageError(f"invalid --stand-in-extension {output_dir}: it exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / "manifest.json").is_file():
        raise UsageError(f"invalid --stand-in-extension {output_dir}: it is not empty and holds no extension; "
                         "choose a new or empty directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
        try:
            shutil.copytree(source, staging, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", ".*"))
            (staging / "manifest.json").write_text(json.dumps(variant, indent=2, ensure_ascii=False) + "\n")
            _replace_directory(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise LocalFileError(f"cannot write the stand-in extension to {target}: {exc.strerror or exc}") from exc
    return target


def _run_stand_in_extension(args) -> int:
    policy_only = [option for option, given in (
        ("--output-dir", args.output_dir is not None),
        ("--allowed-origin", args.allowed_origin), ("--extension-update-url", args.extension_update_url),
        ("--omit-pkcs12-password", args.omit_pkcs12_password),
        ("--extension-id", args.extension_id != browser_policy.EXTENSION_ID)) if given]
    if policy_only:
        raise UsageError(f"--stand-in-extension writes no policies: drop {', '.join(policy_only)} "
                         "(run browser-policy --os ... for the policies)")
    target = build_stand_in_extension(args.stand_in_extension)
    if args.json:
        print(json.dumps({"extensionId": browser_policy.EXTENSION_ID, "extensionDir": str(target),
                          "addedHostPermission": browser_policy.STAND_IN_HOST_PERMISSION}, indent=2))
    else:
        print(f"wrote {target}: extension/ plus host permission {browser_policy.STAND_IN_HOST_PERMISSION} "
              f"(id {browser_policy.EXTENSION_ID}), for the local stand-in only: "
              f"chromium --load-extension={target}")
    return 0


def run(args) -> int:
    if args.stand_in_extension is not None:
        return _run_stand_in_extension(args)
    profile = load_profile(args.profile_dir)
    files = render_files(args, profile)  # everything rendered (and validated) before the first write
    for _, path, content, secret in files:
        if secret:
            write_file_atomic(path, content, 0o600)  # not write_secret_file: it would chmod an existing --output-dir
        else:
            write_file_atomic(path, content, 0o644)
    if not args.allowed_origin:
        print("device-trust: warning: no --allowed-origin: the extension will answer no web page", file=sys.stderr)
    if not args.extension_update_url:
        print("device-trust: note: ExtensionInstallForcelist left out: pass --extension-update-url, or "
              f"force-install extension {args.extension_id} in your console (see docs/browser.md)", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "extensionId": args.extension_id,
            "files": [{"os": target, "path": str(path), "install": _INSTALL_HINTS[target]}
                      for target, path, _, _ in files],
        }, indent=2))
    else:
        for target, path, _, _ in files:
            print(f"wrote {path}: {_INSTALL_HINTS[target]}")
    return 0
