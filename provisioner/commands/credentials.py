"""``credentials``: print AWS ``credential_process`` JSON for this laptop.

Meant to be named in ``~/.aws/config`` (see ``aws-config``)::

    credential_process = /abs/python -m provisioner credentials --profile-dir /abs/dir

Stdout carries only the JSON document; anything else goes to stderr. Heavy modules
(boto3, cryptography, the TLS client) are not imported here: a warm call runs before
every AWS CLI command and must cost little more than starting Python.
"""
from __future__ import annotations

import json
import os
import sys

HELP = "print AWS credential_process JSON (cached in the profile until shortly before expiry)"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--refresh-margin",
        type=float,
        metavar="SECONDS",
        help="fetch new credentials when the cached ones expire within SECONDS "
        "(default: $DEVICE_TRUST_REFRESH_MARGIN or 300)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="always fetch from the credentials endpoint; neither read nor write the cache "
        "(a refused certificate still deletes it)",
    )


def run(args) -> int:
    from provisioner.credential_cache import (
        FROM_CACHE_ENDPOINT_UNREACHABLE,
        get_credentials,
        parse_refresh_margin,
        process_document,
    )
    from provisioner.profile import load_profile

    margin = parse_refresh_margin(args.refresh_margin, os.environ)
    profile = load_profile(args.profile_dir)
    if args.no_cache:
        from provisioner.credential_cache import FROM_ENDPOINT, fetch_forgetting_cache_on_refusal

        document, source = process_document(fetch_forgetting_cache_on_refusal(profile)), FROM_ENDPOINT
    else:
        document, source = get_credentials(profile, margin_seconds=margin)
    if source == FROM_CACHE_ENDPOINT_UNREACHABLE:
        print(
            f"device-trust: warning: credentials endpoint {profile.credentials_endpoint} unreachable; "
            f"using cached credentials valid until {document['Expiration']}",
            file=sys.stderr,
        )
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()
    return 0
