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

CREDENTIALS_PROVIDER_PRINCIPAL = "credentials.iot.amazonaws.com"


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
        for index, arn in enumerate(managed_policy_arns):
            self.role.add_managed_policy(iam.ManagedPolicy.from_managed_policy_arn(self, f"Managed{index}", arn))
