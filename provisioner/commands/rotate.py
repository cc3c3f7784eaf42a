"""rotate: a new key and certificate for the same thing; the old one revoked once the new one works."""

from __future__ import annotations

import argparse
import dataclasses

from provisioner import enrollment, keys
from provisioner.commands import _common
from provisioner.errors import DeviceTrustError, UsageError
from provisioner.profile import load_profile
from provisioner.stack_info import aws_client, read_stack

HELP = "replace this laptop's key and certificate; the old certificate is revoked only after the new one works"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _common.add_key_type_option(parser)
    _common.add_pkcs12_option(parser)


def run(args: argparse.Namespace) -> int:
    old = load_profile(args.profile_dir)
    if old.environment != args.env:
        raise UsageError(f"the profile at {args.profile_dir} is for environment {old.environment}, not {args.env}: "
                         f"pass --env {old.environment}")
    if old.stack_name != args.stack_name:
        raise UsageError(f"the profile belongs to stack {old.stack_name}, not {args.stack_name}")
    password = _common.early_pkcs12_password()  # the variable, or the certainty that a prompt is possible
    region = args.region or old.region
    source = None if args.region else f"{args.profile_dir / 'device.json'}"

    cloudformation = aws_client("cloudformation", region, region_source=source)
    iot = aws_client("iot", region, region_source=source)
    stack = read_stack(cloudformation, old.stack_name)
    if password is None:  # the prompt: once the stack answered, before anything is created
        password = _common.pkcs12_password()

    # 1. New key + certificate beside the old ones; the old identity is untouched.
    key = keys.generate_private_key(args.key_type)
    csr_pem = keys.build_csr(key, old.thing_name, old.environment)
    certificate = enrollment.issue_for_existing_thing(iot, stack, csr_pem, old.thing_name, on_rollback=_common.note)
    with enrollment.rolled_back_on_failure(iot, certificate, on_rollback=_common.note):
        new = dataclasses.replace(
            old, certificate_id=certificate.certificate_id, certificate_arn=certificate.certificate_arn,
            not_after=keys.format_timestamp(keys.certificate_not_after(certificate.certificate_pem)))
        p12 = keys.build_pkcs12(key, certificate.certificate_pem, friendly_name=old.thing_name, password=password,
                                encryption=args.pkcs12_encryption)
        staged = _common.stage_profile(new, cert_pem=certificate.certificate_pem, p12=p12,
                                       key_pem=keys.private_key_pem(key))
        try:
            # 2. Proof that the new identity works (from the staged files).
            credentials = _common.verify_identity(staged=staged)
        except BaseException:
            staged.discard()
            raise
        # 3. The new files in place (each an atomic rename, device.json last), the old ones
        #    kept as *.old; a failed rename puts them back. Nothing is revoked yet.
        swapped = staged.swap_in()
    # 4. Only now the old certificate revoked: whatever happens, the laptop holds a working identity.
    try:
        enrollment.revoke_certificate(iot, old.certificate_id)
    except BaseException as exc:
        _recover_from_failed_revoke(iot, old, certificate, swapped, exc)
    swapped.keep()
    try:
        enrollment.retire_certificate(iot, old.certificate_arn, old.thing_name)
    except DeviceTrustError as exc:
        _common.note(f"rotated, but detaching the old certificate failed ({exc}); it is REVOKED all the same")

    result = {"thingName": old.thing_name, "oldCertificateId": old.certificate_id,
              "newCertificateId": new.certificate_id, "notAfter": new.not_after,
              "credentialsExpiration": keys.format_timestamp(credentials.expiration),
              "profileDir": str(args.profile_dir)}
    _common.emit(args, result, [
        f"Rotated {old.thing_name}: certificate {new.certificate_id} (valid until {new.not_after}) is in use,",
        f"  the old certificate {old.certificate_id} is REVOKED.",
    ])
    return 0


def _recover_from_failed_revoke(iot, old, certificate, swapped: _common.SwappedProfile, exc: BaseException) -> None:
    """Revoking the old certificate failed (``exc``). Returns if AWS revoked it all the same (the
    answer was lost); otherwise re-raises ``exc`` after making sure the laptop keeps a working identity:

    * the old certificate is still ACTIVE: the old files are put back and the new certificate rolled
      back, so the laptop is exactly as before the run;
    * its status cannot be read, or the old files cannot be put back: the new identity (installed and
      proven) stays, and the message says the old certificate may still be ACTIVE.
    """
    try:
        description = enrollment.describe_certificate(iot, old.certificate_id)
        status = None if description is None else description.get("status")
    except DeviceTrustError:
        description, status = None, "UNKNOWN"
    if status == "REVOKED":
        return
    if description is not None:
        problem = swapped.undo()
        if problem is None:
            summary = enrollment.undo_certificate(iot, certificate)
            _add_to_message(exc, f"the old identity is back in place; {summary}")
            raise exc
        outcome = f"{problem}; certificate {certificate.certificate_id} stays ACTIVE"
    else:
        swapped.keep()
        outcome = (f"this laptop now uses certificate {certificate.certificate_id}, which works; "
                   f"old certificate {old.certificate_id} may still be ACTIVE: revoke it by hand "
                   f"(aws iot update-certificate --certificate-id {old.certificate_id} --new-status REVOKED)")
    _add_to_message(exc, outcome)
    raise exc


def _add_to_message(exc: BaseException, text: str) -> None:
    if isinstance(exc, DeviceTrustError):
        exc.args = (f"{exc} ({text})",)  # same object: class, exit code and cause unchanged
    else:
        _common.note(text)
