"""revoke: a lost or retired laptop loses its identity (operator, with AWS rights)."""

from __future__ import annotations

import argparse

from provisioner import enrollment, keys
from provisioner.commands import _common
from provisioner.stack_info import aws_client

HELP = "revoke every certificate of a thing, detach them and delete the thing (lost or retired laptop)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--thing-name", required=True, metavar="NAME", help="the laptop's thing name")
    parser.add_argument("--keep-thing", action="store_true",
                        help="keep the thing in the registry (its certificates are still revoked and detached)")


def run(args: argparse.Namespace) -> int:
    thing_name = keys.validate_thing_name(args.thing_name)
    iot = aws_client("iot", args.region)
    report = enrollment.revoke_thing(iot, thing_name, keep_thing=args.keep_thing)
    if not report.thing_existed:
        lines = [f"Thing {thing_name} is not registered: nothing to do."]
    elif not report.changed:
        lines = [f"Thing {thing_name} has no certificate left to revoke: nothing to do."]
    else:
        lines = [f"Revoked {thing_name}:"]
        for certificate_id in report.revoked:
            lines.append(f"  certificate {certificate_id} REVOKED and detached")
        for certificate_id in report.already_revoked:
            if certificate_id in report.detached_certificates:
                lines.append(f"  certificate {certificate_id} was already REVOKED; detached")
        if report.detached_policies:
            lines.append(f"  policies detached: {', '.join(report.detached_policies)}")
        lines.append(f"  thing {thing_name} deleted" if report.thing_deleted else f"  thing {thing_name} kept")
    _common.emit(args, report.to_json_dict(), lines)
    return 0
