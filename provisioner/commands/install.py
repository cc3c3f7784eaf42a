"""install: the laptop's last step of the operator split. Certificate in; device profile out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from provisioner import keys
from provisioner.commands import _common
from provisioner.errors import LocalFileError, UsageError
from provisioner.profile import DEVICE_KEY, DeviceProfile, load_profile

HELP = "put the certificate an operator registered into this laptop's profile, with PKCS#12 and CA bundle"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--certificate", required=True, type=Path, metavar="FILE",
                        help="the <thing>.crt the operator's register wrote")
    parser.add_argument("--registration", required=True, type=Path, metavar="FILE",
                        help="the <thing>.json the operator's register wrote")
    _common.add_pkcs12_option(parser)
    _common.add_endpoint_ca_option(parser)
    _common.add_verify_option(parser)


def _read_registration(path: Path, directory: Path) -> DeviceProfile:
    data = _common.read_input_file(path, "registration file")
    try:
        return DeviceProfile.from_json_dict(directory, json.loads(data))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not a registration file from the register verb ({exc})") from exc


def _find_key(profile_dir: Path, cert_pem: bytes):
    """The pending key (from csr) or the current one, whichever the certificate belongs to."""
    for name in (_common.PENDING_KEY, DEVICE_KEY):
        path = profile_dir / name
        if not path.exists():
            continue
        try:
            key = keys.load_private_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise LocalFileError(f"cannot read the key {path}: {exc}") from exc
        if keys.certificate_matches_key(cert_pem, key):
            return path, key
    if not (profile_dir / _common.PENDING_KEY).exists():
        raise LocalFileError(f"no pending key in {profile_dir}: run csr on this laptop first "
                             "(with the same --profile-dir)")
    raise UsageError("the certificate is not for this laptop's key: it was made from another CSR")


def run(args: argparse.Namespace) -> int:
    cert_pem = _common.read_input_file(args.certificate, "certificate file")
    keys.load_certificate(cert_pem)
    profile = _read_registration(args.registration, args.profile_dir)
    if profile.environment != args.env:
        raise UsageError(f"the registration is for environment {profile.environment}, not {args.env}: pass "
                         f"--env {profile.environment}")
    if keys.certificate_id(cert_pem) != profile.certificate_id:
        raise UsageError("the certificate and the registration file do not belong together")
    key_path, key = _find_key(args.profile_dir, cert_pem)
    try:
        previous = load_profile(args.profile_dir)
    except LocalFileError:
        previous = None
    ca = _common.endpoint_ca(args.endpoint_ca)
    password = _common.early_pkcs12_password()  # the variable, or the certainty that a prompt is possible
    if not args.no_verify:
        _common.check_endpoint_trust(profile.credentials_endpoint, ca)
    if password is None:  # the prompt: once the endpoint answered
        password = _common.pkcs12_password()

    p12 = keys.build_pkcs12(key, cert_pem, friendly_name=profile.thing_name, password=password,
                            encryption=args.pkcs12_encryption)
    credentials = _common.install_identity(profile, cert_pem=cert_pem, p12=p12, key_pem=keys.private_key_pem(key),
                                           ca_pem=ca.pem, verify=not args.no_verify)
    if previous is not None and previous.certificate_id != profile.certificate_id:
        _common.note(f"the replaced certificate {previous.certificate_id} of {previous.thing_name} may still be "
                     "ACTIVE in AWS IoT: ask an operator to revoke it")
    if key_path.name == _common.PENDING_KEY:
        for name in (_common.PENDING_KEY, _common.PENDING_CSR):
            try:
                (args.profile_dir / name).unlink()
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError):
                    _common.note(f"installed, but could not remove {name}: {exc.strerror or exc}")

    result = {"profileDir": str(args.profile_dir), "verified": credentials is not None, **profile.to_json_dict()}
    lines = [f"Installed {profile.thing_name} ({profile.environment}) in {args.profile_dir}: certificate "
             f"{profile.certificate_id}, valid until {profile.not_after}."]
    if credentials is not None:
        result["credentialsExpiration"] = keys.format_timestamp(credentials.expiration)
        lines.append(f"Verified: credentials for role alias {profile.role_alias} until "
                     f"{keys.format_timestamp(credentials.expiration)}")
    _common.emit(args, result, lines)
    return 0

