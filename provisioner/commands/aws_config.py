"""``aws-config``: the ``~/.aws/config`` profile whose ``credential_process`` is this tool.

Without ``--write`` it prints the profile section; with ``--write`` it merges it into
``$AWS_CONFIG_FILE`` (default ``~/.aws/config``), changing no other profile.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HELP = "print (or --write) the ~/.aws/config profile that uses credential_process"


def add_arguments(parser) -> None:
    parser.add_argument("--profile-name", metavar="NAME",
                        help="AWS profile name (default: device-trust-<env>)")
    parser.add_argument("--write", action="store_true",
                        help="merge the profile into $AWS_CONFIG_FILE or ~/.aws/config")
    parser.add_argument("--endpoint-url", metavar="URL",
                        help="also set endpoint_url in the profile: https://..., or http:// for localhost, "
                             "127.0.0.1 or [::1] only (the local stand-in)")


def config_file_path(environ) -> Path:
    return Path(environ.get("AWS_CONFIG_FILE") or "~/.aws/config").expanduser()


def run(args) -> int:
    from provisioner import aws_profile
    from provisioner.errors import LocalFileError, UsageError
    from provisioner.profile import load_profile, write_file_atomic

    profile_name = args.profile_name or f"device-trust-{args.env}"
    try:  # bad input is refused before anything is read
        aws_profile.validate_profile_name(profile_name)
        if args.endpoint_url is not None:
            aws_profile.validate_endpoint_url(args.endpoint_url)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    profile_dir = args.profile_dir.resolve()
    profile = load_profile(profile_dir)
    try:
        command = aws_profile.credential_process_command(
            str(Path(sys.executable).absolute()), str(profile_dir), windows=os.name == "nt"
        )
        settings = aws_profile.profile_settings(
            credential_process=command,
            region=args.region or profile.region,
            endpoint_url=args.endpoint_url,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc

    config_path = config_file_path(os.environ)
    if args.write:
        target = config_path.resolve() if config_path.is_symlink() else config_path
        try:
            existing_bytes = target.read_bytes()
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            existing_bytes, mode = b"", 0o600
        except OSError as exc:
            raise LocalFileError(f"cannot read {target}: {exc.strerror or exc}") from exc
        try:
            existing = existing_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LocalFileError(f"{target} is not UTF-8 text; fix it before merging") from exc
        try:
            merged = aws_profile.merge_profile(existing, profile_name, settings)
        except aws_profile.ConfigMergeError as exc:
            raise LocalFileError(f"cannot merge into {target}: {exc}") from exc
        for key in aws_profile.removed_keys(existing, profile_name):
            print(f"device-trust: removed {key} from profile {profile_name} in {target} "
                  "(credential_process replaces it)", file=sys.stderr)
        write_file_atomic(target, merged.encode("utf-8"), mode=mode)

    if args.json:
        print(json.dumps({
            "profileName": profile_name,
            "configFile": str(config_path),
            "written": bool(args.write),
            "settings": settings,
        }, indent=2))
    elif args.write:
        print(f"wrote profile {profile_name} to {config_path}; try: aws sts get-caller-identity --profile {profile_name}")
    else:
        sys.stdout.write(aws_profile.render_profile(profile_name, settings))
    return 0
