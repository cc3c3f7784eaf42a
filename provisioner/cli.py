"""Command line entry point: ``python -m provisioner <verb> [options]``.

Each verb is a module in :mod:`provisioner.commands` with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. This module adds the common
options to every verb and is the only place that turns a
:class:`~provisioner.errors.DeviceTrustError` into one line on stderr and an exit
status. Nothing else in the package prints errors or exits.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Sequence

from provisioner import __version__
from provisioner.errors import DeviceTrustError, UsageError
from provisioner.profile import default_profile_dir

PROG = "device-trust"

# Verb name -> module in provisioner.commands ('-' becomes '_').
VERBS = (
    "enroll",
    "csr",
    "register",
    "install",
    "credentials",
    "verify",
    "revoke",
    "rotate",
    "status",
    "browser-policy",
    "aws-config",
    "serve",
)

# The stack's rule (stacks/config.py): the environment name is part of every physical name,
# the longest being the provisioning template "DeviceTrust-<env>-laptop" (IoT caps it at 36).
ENV_NAME = re.compile(r"[a-z][a-z0-9-]{0,16}")
STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


class _OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), not usage + error."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{PROG}: {message} (see '{self.prog} --help')\n")


def _load_verb_modules(only: str | None = None) -> dict[str, object]:
    modules = {}
    for verb in VERBS if only is None else (only,):
        name = f"provisioner.commands.{verb.replace('-', '_')}"
        try:
            modules[verb] = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a verb that exists but whose own import fails is a bug: say so
                raise
    return modules


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    common = parser.add_argument_group("common options")
    common.add_argument("--env", default="local", metavar="NAME",
                        help="environment name (default: local); the stack is DeviceTrust-NAME")
    common.add_argument("--stack-name", metavar="NAME", help="CloudFormation stack (default: DeviceTrust-<env>)")
    common.add_argument("--region", metavar="REGION", help="AWS region (default: boto3's usual chain)")
    common.add_argument("--profile-dir", type=Path, metavar="DIR",
                        help="device profile directory (default: ~/.device-trust/<env>)")
    common.add_argument("--json", action="store_true", help="print the result as JSON for scripts")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = _OneLineArgumentParser(
        prog=PROG,
        description="Enroll laptops in device trust on AWS IoT and hand out short-lived AWS credentials.",
        epilog="Exit status: 0 ok, 1 internal error, 2 usage, 3 AWS refused or misconfigured, "
        "4 network, 5 local file or missing dependency, 6 certificate refused by the credentials endpoint, "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", title="verbs",
                                  parser_class=_OneLineArgumentParser)
    verbs.required = True
    # Import only the verb being run when it is named first: `credentials` runs before
    # every AWS CLI command and must not pay for the other verbs' boto3/cryptography imports.
    words = list(sys.argv[1:] if argv is None else argv)
    only = words[0] if words and words[0] in VERBS else None
    for verb, module in _load_verb_modules(only).items():
        sub = verbs.add_parser(verb, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        _add_common_options(sub)
        sub.set_defaults(run=module.run)
    return parser


def _finish_common_options(args: argparse.Namespace) -> None:
    """Validate the common options and fill in the defaults that depend on --env."""
    if not ENV_NAME.fullmatch(args.env):
        raise UsageError(f"invalid --env {args.env!r}: 1-17 lowercase letters, digits or '-', starting with a "
                         "letter (the stack's rule for environment names)")
    if args.stack_name is None:
        args.stack_name = f"DeviceTrust-{args.env}"
    elif not STACK_NAME.fullmatch(args.stack_name):
        raise UsageError(f"invalid --stack-name {args.stack_name!r}: a CloudFormation stack name starts "
                         "with a letter and has only letters, digits and '-'")
    if args.region is not None and not REGION.fullmatch(args.region):
        raise UsageError(f"invalid --region {args.region!r}: expected a name like us-east-1")
    if args.profile_dir is None:
        args.profile_dir = default_profile_dir(args.env)
    args.profile_dir = args.profile_dir.expanduser().absolute()


# Exit status for a Python that lacks the provisioner's dependencies (an installation
# problem on this laptop, like an unusable profile file; not a bug).
MISSING_DEPENDENCY_EXIT = 5


def _missing_dependency(exc: ImportError) -> str | None:
    """The third-party distribution ``exc`` lacks, or None if it is stdlib or our own (a bug)."""
    top = (exc.name or "").split(".")[0]
    if not top or top == "provisioner" or top in sys.stdlib_module_names:
        return None
    return top


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    debug = os.environ.get("DEVICE_TRUST_DEBUG") == "1"
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["--version"]:  # without loading the verbs: works even before `make setup`
        print(f"{PROG} {__version__}")
        return 0
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        _finish_common_options(args)
        return int(args.run(args) or 0)
    except DeviceTrustError as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): nothing left to tell anyone.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except ImportError as exc:
        if debug:
            traceback.print_exc()
        missing = _missing_dependency(exc)
        if missing is None:
            return _internal_error(exc)
        print(f"{PROG}: missing dependency {missing}: run `make setup` and use .venv/bin/python "
              "(or activate .venv)", file=sys.stderr)
        return MISSING_DEPENDENCY_EXIT
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if debug:
            traceback.print_exc()
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    print(f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)} "
          "(set DEVICE_TRUST_DEBUG=1 for details)", file=sys.stderr)
    return 1
