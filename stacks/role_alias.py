"""The IoT role alias: the name a certificate asks the credentials provider for."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from constructs import Construct

from stacks.config import CREDENTIAL_DURATION_RANGE
from stacks.errors import ConfigError


def role_alias_arn(scope: Construct, name: str) -> str:
    """ARN of the role alias ``name`` in the scope's stack, known before the alias exists.

    The device role's optional trust condition needs it, and the alias needs the role,
    so it is built from the name instead of read from the resource.
    """
    return Stack.of(scope).format_arn(service="iot", resource="rolealias", resource_name=name)


class DeviceRoleAlias(Construct):
    """``AWS::IoT::RoleAlias`` pointing at the device role, with a checked credential duration."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        role: iam.IRole,
        credential_duration_seconds: int,
        max_session_duration_seconds: int,
    ) -> None:
        super().__init__(scope, construct_id)
        low, high = CREDENTIAL_DURATION_RANGE
        if not low <= credential_duration_seconds <= high:
            raise ConfigError(
                f"role alias {name}: credential duration {credential_duration_seconds}s is outside {low}..{high}"
            )
        if credential_duration_seconds > max_session_duration_seconds:
            raise ConfigError(
                f"role alias {name}: credential duration {credential_duration_seconds}s exceeds the role's"
                f" maximum session duration {max_session_duration_seconds}s"
            )
        self.name = name
        self.resource = iot.CfnRoleAlias(
            self,
            "Resource",
            role_alias=name,
            role_arn=role.role_arn,
            credential_duration_seconds=credential_duration_seconds,
        )
        self.arn = self.resource.attr_role_alias_arn
