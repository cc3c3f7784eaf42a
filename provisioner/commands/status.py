"""status: the environment's things, their certificates, status and expiry (operator)."""

from __future__ import annotations

import argparse

from provisioner import enrollment, keys
from provisioner.commands import _common
from provisioner.stack_info import aws_client, read_stack

HELP = "list the environment's things (its thing group) with each certificate's id, status and expiry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--thing-name", metavar="NAME", help="only this thing (need not be in the group)")


def render_table(things: list[dict]) -> list[str]:
    """Readable rows: THING, CERTIFICATE, STATUS, NOT AFTER (pure)."""
    rows = [("THING", "CERTIFICATE", "STATUS", "NOT AFTER")]
    for thing in things:
        if not thing["registered"]:
            rows.append((thing["thingName"], "-", "NOT REGISTERED", "-"))
        elif not thing["certificates"]:
            rows.append((thing["thingName"], "-", "NO CERTIFICATE", "-"))
        for certificate in thing["certificates"]:
            rows.append((thing["thingName"], certificate["certificateId"], certificate["status"],
                         certificate["notAfter"] or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]


def run(args: argparse.Namespace) -> int:
    thing_name = keys.validate_thing_name(args.thing_name) if args.thing_name else None
    iot = aws_client("iot", args.region)
    group = None
    if thing_name is None:
        stack = read_stack(aws_client("cloudformation", args.region), args.stack_name)
        group = stack.thing_group_name
        names = enrollment.group_thing_names(iot, group)
    else:
        names = [thing_name]
    things = [enrollment.thing_status(iot, name) for name in names]
    result = {"environment": args.env, "stackName": args.stack_name, "thingGroup": group, "things": things}
    lines = render_table(things) if things else [f"No things in group {group} ({args.env})."]
    _common.emit(args, result, lines)
    return 0
