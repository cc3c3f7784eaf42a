"""enroll: csr + register + install in one go, on a laptop that holds AWS rights."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone

from provisioner import enrollment, keys
from provisioner.commands import _common
from provisioner.errors import AwsError, DeviceTrustError, UsageError
from provisioner.profile import DeviceProfile, load_profile
from provisioner.stack_info import aws_client, credentials_endpoint, read_stack

HELP = "make this laptop's key, get it a certificate, register the thing and write the device profile"

# An enrolled laptop whose certificate expires sooner than this is re-enrolled.
RENEW_BEFORE = timedelta(days=30)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--thing-name", required=True, metavar="NAME",
                        help="the laptop's thing name in AWS IoT (letters, digits, ':', '_', '-'; up to 128)")
    _common.add_attribute_options(parser)
    _common.add_key_type_option(parser)
    _common.add_pkcs12_option(parser)
    _common.add_endpoint_ca_option(parser)
    _common.add_verify_option(parser)
    parser.add_argument("--force", action="store_true",
                        help="re-enroll even if this laptop is already enrolled and healthy "
                             "(the old certificate is revoked once the new one works)")


def _existing_profile(args) -> DeviceProfile | None:
    if not (args.profile_dir / "device.json").exists():
        return None
    try:
        return load_profile(args.profile_dir)
    except DeviceTrustError as exc:
        _common.note(f"the existing profile is unusable ({exc}); enrolling afresh")
        return None


def _local_health(profile: DeviceProfile) -> str | None:
    """None if key, certificate and expiry are fine on disk; otherwise why not."""
    try:
        cert_pem = profile.cert_path.read_bytes()
        key = keys.load_private_key(profile.key_path.read_bytes())
        if not keys.certificate_matches_key(cert_pem, key):
            return "device.key does not match device.crt"
        not_after = keys.certificate_not_after(cert_pem)
    except (OSError, ValueError, DeviceTrustError) as exc:
        return f"the profile's key or certificate cannot be read ({exc})"
    if not_after - datetime.now(timezone.utc) < RENEW_BEFORE:
        return f"the certificate expires {keys.format_timestamp(not_after)}"
    return None


def run(args: argparse.Namespace) -> int:
    # 1. Everything that can be checked without AWS.
    thing_name = keys.validate_thing_name(args.thing_name)
    attributes = enrollment.device_attributes(
        owner=args.owner, serial_number=args.serial, platform=args.platform or _common.this_platform())
    _common.check_profile_dir_usable(args.profile_dir)
    existing = _existing_profile(args)
    if existing is not None and not args.force:
        if existing.stack_name != args.stack_name:
            raise UsageError(f"the profile at {args.profile_dir} belongs to stack {existing.stack_name}, not "
                             f"{args.stack_name}: pass the matching --env, another --profile-dir, or --force")
        if existing.thing_name != thing_name:
            raise UsageError(f"this profile is enrolled as thing {existing.thing_name}, not {thing_name}: "
                             "pass --force to re-enroll under the new name, or another --profile-dir")
    ca = _common.endpoint_ca(args.endpoint_ca)
    # The variable (or whether a prompt is possible) is checked before any AWS call, unless the
    # laptop may turn out to be enrolled already; the prompt itself comes once the stack is read.
    password = _common.early_pkcs12_password() if existing is None or args.force else None

    cloudformation = aws_client("cloudformation", args.region)
    iot = aws_client("iot", args.region)

    # 2. Already enrolled and healthy: change nothing.
    if existing is not None and not args.force:
        problem = _local_health(existing) or enrollment.certificate_health(iot, existing.certificate_id, thing_name)
        if problem is None:
            result = {"changed": False, "profileDir": str(args.profile_dir), **existing.to_json_dict()}
            _common.emit(args, result, [
                f"{thing_name} is already enrolled and healthy (certificate {existing.certificate_id}, "
                f"valid until {existing.not_after}); nothing changed. Use --force to re-enroll."])
            return 0
        _common.note(f"re-enrolling: {problem}")

    # 3. AWS: the stack's outputs, the credentials endpoint, then (password known) the certificate.
    stack = read_stack(cloudformation, args.stack_name)
    endpoint = credentials_endpoint(iot)
    if not args.no_verify:
        _common.check_endpoint_trust(endpoint, ca)
    if password is None:
        password = _common.pkcs12_password()
    key = keys.generate_private_key(args.key_type)
    csr_pem = keys.build_csr(key, thing_name, args.env)
    registration = enrollment.register_certificate(
        iot, stack, csr_pem, thing_name, attributes=attributes, on_rollback=_common.note)
    certificate = registration.certificate

    # 4. Files and the proof it works; any failure rolls the certificate (and a new thing) back.
    with registration.rolled_back_on_failure(iot, on_rollback=_common.note):
        if not keys.certificate_matches_key(certificate.certificate_pem, key):
            raise AwsError("AWS IoT returned a certificate for another key: refusing to install it")
        not_after = keys.format_timestamp(keys.certificate_not_after(certificate.certificate_pem))
        profile = DeviceProfile(
            directory=args.profile_dir, thing_name=thing_name, certificate_id=certificate.certificate_id,
            certificate_arn=certificate.certificate_arn, credentials_endpoint=endpoint,
            role_alias=stack.role_alias, region=stack.region, stack_name=stack.stack_name,
            environment=args.env, not_after=not_after)
        p12 = keys.build_pkcs12(key, certificate.certificate_pem, friendly_name=thing_name, password=password,
                                encryption=args.pkcs12_encryption)
        credentials = _common.install_identity(profile, cert_pem=certificate.certificate_pem, p12=p12,
                                               key_pem=keys.private_key_pem(key), ca_pem=ca.pem,
                                               verify=not args.no_verify)

    # 5. A replaced identity of the same thing is retired now that the new one works.
    retired = previous = None
    if existing is not None and existing.certificate_id != certificate.certificate_id \
            and existing.thing_name == thing_name:
        try:
            outcome, _policies = enrollment.retire_certificate(iot, existing.certificate_arn, thing_name)
            previous = (existing.certificate_id, outcome)
            retired = existing.certificate_id if outcome == "revoked" else None
        except DeviceTrustError as exc:
            _common.note(f"enrolled, but the old certificate {existing.certificate_id} could not be revoked ({exc}): "
                         f"run revoke or set it REVOKED by hand")

    result = {"changed": True, "profileDir": str(args.profile_dir), "thingCreated": registration.thing_created,
              "verified": credentials is not None, "revokedCertificateId": retired, **profile.to_json_dict()}
    if credentials is not None:
        result["credentialsExpiration"] = keys.format_timestamp(credentials.expiration)
    lines = [
        f"Enrolled {thing_name} in {args.env} ({stack.stack_name}, {stack.region}).",
        f"  certificate  {certificate.certificate_id} (valid until {not_after})",
        f"  profile      {args.profile_dir}",
    ]
    if credentials is not None:
        lines.append(f"  verified     credentials for role alias {stack.role_alias} until "
                     f"{keys.format_timestamp(credentials.expiration)}")
    else:
        lines.append("  not verified (--no-verify)")
    if previous is not None:
        certificate_id, outcome = previous
        lines.append({
            "revoked": f"  revoked      the previous certificate {certificate_id}",
            "already revoked": f"  previous     certificate {certificate_id} was already revoked",
            "unknown": f"  previous     certificate {certificate_id} is no longer known to AWS IoT",
        }[outcome])
    _common.emit(args, result, lines)
    return 0
