"""The IAM role whose short-lived credentials a laptop's certificate buys.

Only the AWS IoT credentials provider may assume it. Its permissions come from the
environment config and are empty by default, so the credentials prove which device
asked and grant nothing else until an environment says otherwise.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.nag import acknowledge, policy_variables_as_nag_spells_them

CREDENTIALS_PROVIDER_PRINCIPAL = "credentials.iot.amazonaws.com"
# Policy variable the credentials provider sets to the thing name of the calling device.
THING_NAME_VARIABLE = "${credentials-iot:ThingName}"


def per_device_resources(statement: Mapping[str, Any]) -> list[str]:
    """Wildcard resources in ``statement`` that are pinned to one device by the thing-name variable.

    Such a wildcard (``.../${credentials-iot:ThingName}/*``) reaches only the calling
    laptop's own prefix; any other wildcard still needs a human's acknowledgement.
    """
    resources = statement.get("Resource", [])
    if isinstance(resources, str):
        resources = [resources]
    return [
        resource
        for resource in resources
        if "*" in resource and THING_NAME_VARIABLE in resource and resource.index(THING_NAME_VARIABLE) < resource.index("*")
    ]


class DeviceRole(Construct):
    """IAM role trusted by ``credentials.iot.amazonaws.com`` only."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role_alias_arn: str,
        max_session_duration_seconds: int,
        policy_statements: Sequence[Mapping[str, Any]] = (),
        managed_policy_arns: Sequence[str] = (),
        confused_deputy_condition: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        conditions = None
        if confused_deputy_condition:
            # Opt-in: AWS's credentials-provider documentation shows a trust policy without
            # conditions, so whether the provider sends these keys must be verified in a real
            # account before relying on it (docs/deploying.md).
            conditions = {
                "StringEquals": {"aws:SourceAccount": Stack.of(self).account},
                "ArnEquals": {"aws:SourceArn": role_alias_arn},
            }
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(CREDENTIALS_PROVIDER_PRINCIPAL, conditions=conditions),
            max_session_duration=Duration.seconds(max_session_duration_seconds),
            description="Device trust: credentials a laptop obtains with its X.509 certificate",
        )
        for statement in policy_statements:
            self.role.add_to_policy(iam.PolicyStatement.from_json(dict(statement)))
            for resource in per_device_resources(statement):
                acknowledge(
                    self.role,
                    f"AwsSolutions-IAM5[Resource::{policy_variables_as_nag_spells_them(resource)}]",
                    f"Scoped to the calling laptop by {THING_NAME_VARIABLE}: each device reaches only its own prefix.",
                )
        for index, arn in enumerate(managed_policy_arns):
            self.role.add_managed_policy(iam.ManagedPolicy.from_managed_policy_arn(self, f"Managed{index}", arn))
