"""``verify``: prove the whole chain works: certificate -> credentials -> STS.

Fetches fresh credentials from the credentials endpoint (not from the cache; if the
endpoint refuses the certificate, the cache is deleted, exit 6), then
calls STS GetCallerIdentity with them and prints the role, the session name (the
credentials provider names the session after the certificate id) and the expiry.
"""
from __future__ import annotations

import json
import re

HELP = "fetch credentials with the device certificate and check them with STS GetCallerIdentity"

_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>[^:]+):sts::(?P<account>\d+):assumed-role/(?P<role>.+)/(?P<session>[^/]+)$")


def describe_identity(arn: str) -> dict:
    """STS assumed-role ARN -> role ARN and session name (pure)."""
    match = _ASSUMED_ROLE.match(arn)
    if not match:
        return {"roleArn": None, "sessionName": None}
    role_arn = f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}"
    return {"roleArn": role_arn, "sessionName": match["session"]}


def run(args) -> int:
    from provisioner.credential_cache import fetch_forgetting_cache_on_refusal
    from provisioner.credentials_client import format_expiration, mask_access_key_id
    from provisioner.errors import AwsError, NetworkError
    from provisioner.profile import load_profile

    profile = load_profile(args.profile_dir)
    credentials = fetch_forgetting_cache_on_refusal(profile)  # a refusal also deletes the cache

    import boto3
    import botocore.exceptions

    region = args.region or profile.region
    try:
        sts = boto3.session.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            region_name=region,
        ).client("sts")
        identity = sts.get_caller_identity()
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsError(
            f"STS rejected the credentials from role alias {profile.role_alias} "
            f"({error.get('Code', '?')}: {error.get('Message', '')}); check the device role's trust policy"
        ) from exc
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError) as exc:
        raise NetworkError(f"cannot reach STS in {region} ({exc}); check the network or AWS_ENDPOINT_URL") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsError(f"STS GetCallerIdentity failed ({exc})") from exc

    described = describe_identity(identity["Arn"])
    result = {
        "thingName": profile.thing_name,
        "certificateId": profile.certificate_id,
        "account": identity.get("Account"),
        "arn": identity["Arn"],
        "roleArn": described["roleArn"],
        "sessionName": described["sessionName"],
        "sessionIsCertificate": described["sessionName"] == profile.certificate_id,
        "accessKeyId": mask_access_key_id(credentials.access_key_id),  # masked: ASIA...WXYZ
        "expiration": format_expiration(credentials.expiration),
    }
    if described["roleArn"] is None:
        raise AwsError(f"the credentials belong to {identity['Arn']}, not to an assumed role; "
                       "check the role alias of this environment")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"thing:        {result['thingName']}")
        print(f"role:         {result['roleArn']}")
        print(f"session name: {result['sessionName']}"
              + ("  (= certificate id)" if result["sessionIsCertificate"] else ""))
        print(f"account:      {result['account']}")
        print(f"expires:      {result['expiration']}")
    return 0


def add_arguments(parser) -> None:  # noqa: ARG001 - verify needs only the common options
    return None
