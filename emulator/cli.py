"""`python -m emulator`: run the local stand-in until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading
from pathlib import Path

from .errors import EmulatorError

DEFAULT_STATE_DIR = Path(".state") / "emulator"
# Exit statuses: 0 clean stop, 1 cannot start (port, state directory), 2 usage, 5 missing dependency.
EXIT_MISSING_DEPENDENCY = 5


def port_number(text: str) -> int:
    """argparse type for a TCP port: an integer from 0 (any free port) to 65535."""
    try:
        port = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range (0-65535)")
    return port


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and IPv4/IPv6 loopback literals (127.0.0.0/8, ::1).

    Names other than `localhost` are not resolved (no DNS lookup at start-up) and
    count as remote, as do the wildcard addresses (0.0.0.0, ::) and the empty string.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), not usage + error."""

    def error(self, message: str):  # type: ignore[override]  # noqa: D401 - argparse API
        self.exit(2, f"emulator: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineArgumentParser(
        prog="python -m emulator",
        description="Local stand-in for AWS (CloudFormation, IAM, STS, IoT) and the IoT credentials endpoint.",
        epilog="Exit status: 0 stopped cleanly (SIGINT, SIGTERM), 1 cannot start (port in use, state directory), "
        "2 usage, 5 missing dependency (run `make setup` and use .venv/bin/python).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1; others need --allow-remote)"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host: anyone who reaches it can use the unauthenticated AWS API and its CA",
    )
    parser.add_argument("--port", type=port_number, default=4566, help="AWS API port (default 4566; 0 = any free port)")
    parser.add_argument(
        "--credentials-port", type=port_number, default=8443, help="mutual-TLS credentials port (default 8443; 0 = any free port)"
    )
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help=f"CA and endpoint.json (default {DEFAULT_STATE_DIR})"
    )
    parser.add_argument(
        "--throttle", action="store_true", help="answer requests over AWS's default per-operation quotas with ThrottlingException"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.allow_remote and not is_loopback_host(args.host):
        parser.error(
            f"--host {args.host!r} is not a loopback address; the AWS API is unauthenticated and signs "
            "certificates with the stand-in CA, so it listens on loopback only (127.0.0.0/8, ::1, localhost) "
            "unless --allow-remote is given"
        )
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("moto").setLevel(logging.ERROR)
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    try:
        from .server import StandIn

        stand_in = StandIn(
            args.state_dir,
            host=args.host,
            port=args.port,
            credentials_port=args.credentials_port,
            throttle=args.throttle,
        )
        addresses = stand_in.start()
    except ModuleNotFoundError as exc:
        # Run with a Python that lacks the project's packages (not the venv): nothing is bound or written yet.
        package = (exc.name or "?").split(".")[0]
        print(
            f"emulator: missing dependency {package}: run `make setup` and use .venv/bin/python",
            file=sys.stderr,
        )
        return EXIT_MISSING_DEPENDENCY
    except EmulatorError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 1
    if not is_loopback_host(args.host):
        logging.getLogger("emulator").warning(
            "warning: --allow-remote: listening on %s; anyone who can reach it can call the AWS API "
            "without credentials and have certificates signed by the stand-in CA",
            args.host,
        )
    logging.getLogger("emulator").info(
        "ready: AWS API %s, credentials endpoint %s, CA %s%s",
        addresses.control_plane,
        addresses.credentials_endpoint,
        addresses.ca_file,
        " (throttling on)" if args.throttle else "",
    )
    while not stop.wait(0.5):
        pass
    stand_in.stop()
    logging.getLogger("emulator").info("stopped")
    return 0
