"""register: the operator half of the operator split. CSR in; registered thing and certificate out."""

from __future__ import annotations

import argparse
from pathlib import Path

from provisioner import enrollment, keys
from provisioner.commands import _common
from provisioner.errors import AwsError, UsageError
from provisioner.profile import DeviceProfile, write_file_atomic
from provisioner.stack_info import aws_client, credentials_endpoint, read_stack

HELP = "turn a laptop's CSR into a registered thing and certificate (operator, with AWS rights)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csr", required=True, type=Path, metavar="FILE", help="the CSR the laptop's csr verb wrote")
    parser.add_argument("--thing-name", metavar="NAME",
                        help="expected thing name; must equal the CSR's CN (default: the CSR's CN)")
    _common.add_attribute_options(parser)
    parser.add_argument("--output-dir", type=Path, metavar="DIR",
                        help="where to write <thing>.crt and <thing>.json for the laptop (default: the CSR's directory)")
    parser.add_argument("--force", action="store_true",
                        help="register even if the thing already has an ACTIVE certificate, and overwrite "
                             "<thing>.crt and <thing>.json (the old certificate stays ACTIVE until revoked)")


def registration_file_names(thing_name: str) -> tuple[str, str]:
    return f"{thing_name}.crt", f"{thing_name}.json"


def run(args: argparse.Namespace) -> int:
    csr_pem = _common.read_input_file(args.csr, "CSR file")
    summary = keys.inspect_csr(csr_pem)
    thing_name = summary.common_name
    if args.thing_name is not None and keys.validate_thing_name(args.thing_name) != thing_name:
        raise UsageError(f"the CSR is for thing {thing_name}, not {args.thing_name}")
    expected_org = keys.environment_organization(args.env)
    if summary.organization != expected_org:
        raise UsageError(f"the CSR names {summary.organization or 'no organization'!r}, not {expected_org!r}: "
                         f"it was made for another environment; make it with csr --env {args.env}")
    attributes = enrollment.device_attributes(owner=args.owner, serial_number=args.serial,
                                              platform=args.platform)
    output_dir = (args.output_dir or args.csr.expanduser().parent).expanduser()
    if not output_dir.is_dir():
        raise UsageError(f"output directory {output_dir} does not exist")
    cert_name, json_name = registration_file_names(thing_name)
    existing_files = [str(output_dir / name) for name in (cert_name, json_name) if (output_dir / name).exists()]
    if existing_files and not args.force:
        raise UsageError(f"{' and '.join(existing_files)} already exist (a registration made earlier?): hand those "
                         "to the laptop, or pass --force to register anew and overwrite them")

    cloudformation = aws_client("cloudformation", args.region)
    iot = aws_client("iot", args.region)
    stack = read_stack(cloudformation, args.stack_name)
    endpoint = credentials_endpoint(iot)
    active = enrollment.active_certificate_ids(iot, thing_name)
    if active and not args.force:
        raise AwsError(f"thing {thing_name} already has the ACTIVE certificate {', '.join(active)}: run revoke "
                       f"--thing-name {thing_name} first (or rotate on the laptop), or pass --force to give it "
                       "another one")
    registration = enrollment.register_certificate(
        iot, stack, csr_pem, thing_name, attributes=attributes, on_rollback=_common.note)
    certificate = registration.certificate
    with registration.rolled_back_on_failure(iot, on_rollback=_common.note):
        not_after = keys.format_timestamp(keys.certificate_not_after(certificate.certificate_pem))
        record = DeviceProfile(
            directory=output_dir, thing_name=thing_name, certificate_id=certificate.certificate_id,
            certificate_arn=certificate.certificate_arn, credentials_endpoint=endpoint,
            role_alias=stack.role_alias, region=stack.region, stack_name=stack.stack_name,
            environment=args.env, not_after=not_after)
        write_file_atomic(output_dir / cert_name, certificate.certificate_pem, 0o644)
        write_file_atomic(output_dir / json_name, record.to_json_bytes(), 0o644)

    if active:
        _common.note(f"thing {thing_name} keeps its ACTIVE certificate {', '.join(active)}: revoke it once the "
                     "laptop has installed the new one")
    result = {"certificatePath": str(output_dir / cert_name), "registrationPath": str(output_dir / json_name),
              "thingCreated": registration.thing_created, **record.to_json_dict()}
    _common.emit(args, result, [
        f"Registered {thing_name} in {args.env}: certificate {certificate.certificate_id} (valid until {not_after}).",
        f"Hand these to the laptop: {output_dir / cert_name} and {output_dir / json_name}",
        f"On the laptop: python -m provisioner install --env {args.env} --certificate {cert_name} "
        f"--registration {json_name}",
    ])
    return 0
