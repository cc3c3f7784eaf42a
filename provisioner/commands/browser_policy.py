"""``browser-policy``: Chrome policy files for this laptop's device profile.

Reads device.json and device.crt (and device.p12 for the macOS profile with the identity), renders with
:mod:`provisioner.browser_policy`, writes the files atomically and prints what it
wrote and where each goes. See docs/browser.md for the rollout.

``browser-policy --stand-in-extension DIR`` instead writes the extension's stand-in
variant: a copy of the repository's ``extension/`` whose manifest may also reach the local
stand-in's credentials endpoint (``https://localhost``); it needs no device profile.
"""

from __future__ import annotations

import argparse
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
    "macos": "install on that Mac itself (open it, approve it in System Settings, type the device.p12 password); "
             "it holds the encrypted private key: keep it 0600, never e-mail it",
    "macos-with-password": "holds the private key AND its password: push it only through your MDM, scoped to that "
                           "Mac; keep it 0600, never e-mail it, delete it once the MDM has it",
    "macos-without-identity": "Chrome policies only: push with your MDM; import device.p12 on the Mac itself "
                              "(security import, docs/browser.md section 2)",
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
    password = parser.add_mutually_exclusive_group()
    password.add_argument("--include-pkcs12-password", action="store_true",
                          help=f"macOS: put the device.p12 password ({PASSWORD_ENV}, else a prompt) into the "
                               "profile so that it installs without asking, e.g. pushed by an MDM; whoever has the "
                               "file then has the private key. Default: left out, macOS asks for it at install")
    # The default since the password left the profile by default; still accepted so that older scripts run.
    password.add_argument("--omit-pkcs12-password", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--allow-all-apps-key-access", action="store_true",
                        help="macOS: let every app on the Mac use the device key without asking "
                             "(AllowAllAppsAccess true). Default: false, macOS may ask before an app (Chrome) "
                             "first uses it")
    parser.add_argument("--macos-without-identity", action="store_true",
                        help="macOS: write a profile with the Chrome policies only, no PKCS#12 payload, for a Mac "
                             "whose device.p12 was imported on the Mac itself (security import, docs/browser.md)")
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
            raise UsageError(f"--include-pkcs12-password needs the device.p12 password: set {PASSWORD_ENV} "
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


def _check_macos_options(args) -> None:
    """The options that shape the identity payload need a macOS profile that has one."""
    identity_options = [option for option, given in (
        ("--include-pkcs12-password", args.include_pkcs12_password),
        ("--allow-all-apps-key-access", args.allow_all_apps_key_access)) if given]
    macos_options = [*identity_options, *(["--macos-without-identity"] if args.macos_without_identity else [])]
    if macos_options and not (args.all or args.target_os == "macos"):
        raise UsageError(f"{', '.join(macos_options)}: only for the macOS profile; pass --os macos or --all, "
                         "or drop it")
    if args.macos_without_identity and identity_options:
        raise UsageError(f"--macos-without-identity writes no PKCS#12 payload: drop {', '.join(identity_options)}")


def _macos_file(args, policy, profile, path: Path) -> tuple[str, Path, bytes, bool, str]:
    if args.macos_without_identity:
        content = browser_policy.render_macos(policy, pkcs12=None, identifier_prefix=args.macos_identifier)
        return "macos", path, content, False, _INSTALL_HINTS["macos-without-identity"]
    p12 = _read(profile.p12_path, "PKCS#12 bundle")
    password = None
    if args.include_pkcs12_password:
        password = _pkcs12_password()
        _check_pkcs12(p12, password, profile.p12_path)
    content = browser_policy.render_macos(policy, pkcs12=p12, pkcs12_password=password,
                                          allow_all_apps_access=args.allow_all_apps_key_access,
                                          identifier_prefix=args.macos_identifier)
    hint = _INSTALL_HINTS["macos-with-password" if password is not None else "macos"]
    return "macos", path, content, True, hint


def render_files(args, profile) -> list[tuple[str, Path, bytes, bool, str]]:
    """(os, path, content, secret, install hint) for each file to write; nothing is written here."""
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
            files.append(("linux", output_dir / f"{stem}.json", browser_policy.render_linux(policy), False,
                          _INSTALL_HINTS["linux"]))
        elif target == "windows":
            files.append(("windows", output_dir / f"{stem}.reg", browser_policy.render_windows(policy), False,
                          _INSTALL_HINTS["windows"]))
        else:
            files.append(_macos_file(args, policy, profile, output_dir / f"{stem}.mobileconfig"))
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
        ("--include-pkcs12-password", args.include_pkcs12_password),
        ("--omit-pkcs12-password", args.omit_pkcs12_password),
        ("--allow-all-apps-key-access", args.allow_all_apps_key_access),
        ("--macos-without-identity", args.macos_without_identity),
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
    _check_macos_options(args)
    profile = load_profile(args.profile_dir)
    files = render_files(args, profile)  # everything rendered (and validated) before the first write
    for _, path, content, secret, _ in files:
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
            "files": [{"os": target, "path": str(path), "install": hint}
                      for target, path, _, _, hint in files],
        }, indent=2))
    else:
        for _, path, _, _, hint in files:
            print(f"wrote {path}: {hint}")
    return 0
