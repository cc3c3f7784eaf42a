"""What the provisioner learns about the AWS account: stack outputs and the credentials endpoint.

Also the one place that makes boto3 clients (bounded retries, botocore's
``standard`` retry mode, which retries throttling and transient errors with
backoff) and that turns botocore's exceptions into the provisioner's own.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
from dataclasses import dataclass
from typing import Iterator

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from provisioner.errors import AwsError, NetworkError, UsageError

MAX_ATTEMPTS = 5  # in all: the first call + up to 4 retries (botocore total_max_attempts)
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30

# Stack states in which no usable version of the stack exists (updates keep the previous outputs).
NOT_DEPLOYED = frozenset({
    "CREATE_IN_PROGRESS", "CREATE_FAILED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_FAILED", "ROLLBACK_COMPLETE",
    "DELETE_IN_PROGRESS", "DELETE_FAILED", "DELETE_COMPLETE", "REVIEW_IN_PROGRESS",
})

REQUIRED_OUTPUTS = (
    "RoleAliasName",
    "RoleAliasArn",
    "DeviceRoleArn",
    "DevicePolicyName",
    "ProvisioningTemplateName",
    "ThingGroupName",
    "ThingTypeName",
)


def client_config(max_attempts: int = MAX_ATTEMPTS) -> Config:
    """botocore config: standard retry mode (throttling + transient errors), bounded attempts and timeouts."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )


@functools.lru_cache(maxsize=None)
def known_regions(service: str) -> frozenset[str]:
    """Every region, in every partition, where botocore's endpoint data has ``service``."""
    session = boto3.session.Session()
    return frozenset(region for partition in session.get_available_partitions()
                     for region in session.get_available_regions(service, partition_name=partition))


def check_region(service: str, region: str, source: str) -> None:
    """UsageError (exit 2, before any call) for a region botocore does not know for ``service``:
    a typo such as us-eats-1 would otherwise reach a host that does not exist, or a stand-in's 500."""
    known = known_regions(service)
    if region in known:
        return
    close = difflib.get_close_matches(region, sorted(known), n=1)
    raise UsageError(
        f"unknown AWS region {region!r} (from {source}): botocore {botocore.__version__} knows no {service} "
        f"endpoint there" + (f"; did you mean {close[0]}?" if close else "; use a name like us-east-1"))


def _region_source(region: str | None) -> str:
    if region is not None:
        return "--region"
    for variable in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        if os.environ.get(variable):
            return variable
    return "the AWS profile's region"


def aws_client(service: str, region: str | None = None, *, max_attempts: int = MAX_ATTEMPTS,
               region_source: str | None = None):
    """A boto3 client on the usual credential chain (profiles, environment, AWS_ENDPOINT_URL).

    The region: ``region`` (--region or the profile's), else boto3's chain
    (AWS_DEFAULT_REGION, the AWS profile's ``region``), else AWS_REGION, which the
    pinned boto3 and the AWS CLI v1 do not read themselves. A region botocore's
    endpoint data does not know for ``service`` is a UsageError before any call;
    ``region_source`` names where ``region`` came from in that message (default: --region).
    """
    with aws_errors("setting up AWS"):
        session = boto3.session.Session(region_name=region)
        if session.region_name is None and os.environ.get("AWS_REGION"):
            session = boto3.session.Session(region_name=os.environ["AWS_REGION"])
        if session.region_name is None:
            raise NoRegionError()
    check_region(service, session.region_name, region_source or _region_source(region))
    with aws_errors(f"setting up the {service} client"):
        return session.client(service, config=client_config(max_attempts))


@contextlib.contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Translate botocore failures during ``action`` into AwsError / NetworkError (one line, chained)."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        message = " ".join(str(error.get("Message", "")).split())
        hint = ""
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedException", "UnrecognizedClientException",
                    "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException"):
            hint = ": check the AWS credentials and that they carry the ProvisionerPolicyArn policy"
        elif code in ("Throttling", "ThrottlingException", "TooManyRequestsException"):
            hint = ": AWS kept throttling after retries; try again in a minute"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if not hint and status >= 500:
            hint = f": AWS answered HTTP {status} after retries; try again later, or check AWS_ENDPOINT_URL"
        raise AwsError(f"{action} failed: {code}: {message}{hint}") from exc
    except (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError) as exc:
        raise NetworkError(f"{action} failed: cannot reach AWS ({exc}); check the network or AWS_ENDPOINT_URL") from exc
    except ReadTimeoutError as exc:
        raise NetworkError(f"{action} failed: AWS did not answer in time ({exc})") from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise AwsError(f"{action} failed: no AWS credentials found; configure a profile or AWS_* variables") from exc
    except NoRegionError as exc:
        raise AwsError("no AWS region: pass --region or set AWS_DEFAULT_REGION (or AWS_REGION)") from exc
    except ResponseParserError as exc:
        first = " ".join((str(exc).splitlines() or [""])[0].split()).rstrip(":")[:160]
        raise NetworkError(
            f"{action} failed: the answer is not an AWS API answer ({first}); check AWS_ENDPOINT_URL, "
            "--region and any proxy in between"
        ) from exc
    except BotoCoreError as exc:
        raise AwsError(f"{action} failed: {exc}") from exc


@dataclass(frozen=True)
class StackInfo:
    """The stack outputs the provisioner relies on (see DESIGN.md, Stack outputs)."""

    stack_name: str
    region: str
    role_alias: str
    role_alias_arn: str
    device_role_arn: str
    device_policy_name: str
    provisioning_template_name: str
    thing_group_name: str
    thing_type_name: str

    @classmethod
    def from_outputs(cls, stack_name: str, region: str, outputs: dict[str, str]) -> "StackInfo":
        missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
        if missing:
            raise AwsError(
                f"stack {stack_name} lacks the outputs {', '.join(missing)}: deploy the current "
                "device-trust stack (cdk deploy) or pass the right --env/--stack-name"
            )
        return cls(
            stack_name=stack_name,
            region=region,
            role_alias=outputs["RoleAliasName"],
            role_alias_arn=outputs["RoleAliasArn"],
            device_role_arn=outputs["DeviceRoleArn"],
            device_policy_name=outputs["DevicePolicyName"],
            provisioning_template_name=outputs["ProvisioningTemplateName"],
            thing_group_name=outputs["ThingGroupName"],
            thing_type_name=outputs["ThingTypeName"],
        )


def stack_outputs(cloudformation, stack_name: str) -> dict[str, str]:
    """OutputKey -> OutputValue of ``stack_name``; AwsError if the stack is missing or not deployed."""
    try:
        with aws_errors(f"reading stack {stack_name}"):
            stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except AwsError as exc:
        cause = exc.__cause__
        if isinstance(cause, ClientError) and "does not exist" in str(cause.response.get("Error", {}).get("Message")):
            raise AwsError(
                f"stack {stack_name} does not exist in this account/region: deploy it first "
                "(cdk deploy) or pass the right --env, --stack-name or --region"
            ) from cause
        raise
    if not stacks:
        raise AwsError(f"stack {stack_name} does not exist: deploy it first or pass the right --env/--stack-name")
    stack = stacks[0]
    status = stack.get("StackStatus", "")
    if status in NOT_DEPLOYED:
        raise AwsError(f"stack {stack_name} is {status}, not deployed: fix the deployment first")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def read_stack(cloudformation, stack_name: str) -> StackInfo:
    """The stack's outputs as a StackInfo (region taken from the client)."""
    return StackInfo.from_outputs(stack_name, cloudformation.meta.region_name, stack_outputs(cloudformation, stack_name))


def credentials_endpoint(iot) -> str:
    """``host[:port]`` of the IoT credentials provider (DescribeEndpoint iot:CredentialProvider)."""
    with aws_errors("looking up the IoT credentials endpoint"):
        address = iot.describe_endpoint(endpointType="iot:CredentialProvider")["endpointAddress"]
    if not address:
        raise AwsError("DescribeEndpoint returned no credentials endpoint address")
    return address
