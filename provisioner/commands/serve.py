"""``serve``: a loopback container-credentials endpoint for long-running SDK programs.

Prints two ``export`` lines on stdout, then serves until SIGINT or SIGTERM::

    eval "$(python -m provisioner serve)"   # in a shell: run it in the background instead
    export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:PORT/credentials
    export AWS_CONTAINER_AUTHORIZATION_TOKEN=<random, new on every start>
"""
from __future__ import annotations

import json
import shlex
import signal
import sys
import threading

# Variables the AWS SDKs and CLI look at before the container endpoint: with any of
# them set, a program started from this shell would not use what serve hands out.
SHADOWING_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")

HELP = "serve credentials on 127.0.0.1 with the container-credentials protocol (SDKs refresh by themselves)"


def add_arguments(parser) -> None:
    parser.add_argument("--port", type=int, default=0, metavar="PORT",
                        help="loopback port to listen on (default: 0, a free port)")
    parser.add_argument("--refresh-margin", type=float, default=None, metavar="SECONDS",
                        help="fetch new credentials this long before expiry, but not before half "
                        "their lifetime (default: 1200)")


def shadowing_warning(environ) -> str | None:
    """The warning line for AWS variables that take precedence over the container endpoint, or None."""
    found = [name for name in SHADOWING_VARIABLES if environ.get(name)]
    if not found:
        return None
    return (f"warning: {', '.join(found)} {'is' if len(found) == 1 else 'are'} set; the AWS SDKs and CLI use "
            f"{'it' if len(found) == 1 else 'them'} before the container endpoint: "
            f"unset {' '.join(found)} in the shell that runs your programs")


def run(args) -> int:
    import os
    import secrets

    from provisioner.container_server import (
        DEFAULT_REFRESH_MARGIN_SECONDS,
        ContainerCredentialsServer,
        CredentialsKeeper,
    )
    from provisioner.credential_cache import fetch_forgetting_cache_on_refusal
    from provisioner.credentials_client import format_expiration
    from provisioner.errors import NetworkError, UsageError
    from provisioner.profile import load_profile

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {args.port}")
    margin = DEFAULT_REFRESH_MARGIN_SECONDS if args.refresh_margin is None else args.refresh_margin
    if not 0 <= margin <= 43200:
        raise UsageError(f"--refresh-margin must be between 0 and 43200 seconds, not {margin:g}")
    profile = load_profile(args.profile_dir)

    def log(message: str) -> None:
        print(f"device-trust serve: {message}", file=sys.stderr, flush=True)

    # A refusal (at start or on a later refresh) also deletes the credential_process cache.
    keeper = CredentialsKeeper(lambda: fetch_forgetting_cache_on_refusal(profile), margin_seconds=margin, log=log)
    first = keeper.refresh()  # fail now, with the real reason, rather than serve 503s
    token = secrets.token_urlsafe(32)
    try:
        server = ContainerCredentialsServer(keeper, token, port=args.port, log=log)
    except OSError as exc:
        raise NetworkError(f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror or exc}); "
                           "pick another --port or 0") from exc

    stop = threading.Event()

    def on_signal(signum, frame) -> None:  # noqa: ARG001 - signal API
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server.start()
    keeper.start()
    try:
        if args.json:
            print(json.dumps({
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.url,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
            }), flush=True)
        else:
            print(f"export AWS_CONTAINER_CREDENTIALS_FULL_URI={shlex.quote(server.url)}", flush=True)
            print(f"export AWS_CONTAINER_AUTHORIZATION_TOKEN={shlex.quote(token)}", flush=True)
        warning = shadowing_warning(os.environ)
        if warning:
            log(warning)
        log(f"serving credentials of thing {profile.thing_name} on {server.url} "
            f"(current ones valid until {format_expiration(first.expiration)}); Ctrl-C to stop")
        while not stop.wait(0.5):
            pass
    finally:
        keeper.stop()
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log("stopped")
    return 0
