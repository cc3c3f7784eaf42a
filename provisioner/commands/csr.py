"""csr: the laptop half of the operator split. Makes the key pair and a CSR; needs no AWS rights."""

from __future__ import annotations

import argparse

from provisioner import keys
from provisioner.commands import _common
from provisioner.errors import UsageError
from provisioner.profile import write_file_atomic, write_secret_file

HELP = "make this laptop's key pair and a certificate signing request for an operator (no AWS rights needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--thing-name", required=True, metavar="NAME",
                        help="the laptop's thing name in AWS IoT (the CSR's CN)")
    _common.add_key_type_option(parser)
    parser.add_argument("--force", action="store_true",
                        help="replace a pending key and CSR that were not installed yet")


def run(args: argparse.Namespace) -> int:
    thing_name = keys.validate_thing_name(args.thing_name)
    _common.check_profile_dir_usable(args.profile_dir)
    key_path = args.profile_dir / _common.PENDING_KEY
    csr_path = args.profile_dir / _common.PENDING_CSR
    if key_path.exists() and not args.force:
        raise UsageError(f"a pending request already exists ({csr_path}): hand it to the operator and run install, "
                         "or pass --force to make a new key and CSR")
    key = keys.generate_private_key(args.key_type)
    csr_pem = keys.build_csr(key, thing_name, args.env)
    write_secret_file(key_path, keys.private_key_pem(key))
    write_file_atomic(csr_path, csr_pem, 0o644)
    result = {"thingName": thing_name, "environment": args.env, "csrPath": str(csr_path),
              "keyType": args.key_type}
    _common.emit(args, result, [
        f"Wrote a new key (kept on this laptop) and the CSR {csr_path}",
        f"Next: an operator runs `python -m provisioner register --env {args.env} --csr {csr_path.name}` "
        "and hands back the .crt and .json it writes; then run install here.",
    ])
    return 0
