"""The IoT policy every laptop certificate carries: it may buy credentials through one alias, nothing else."""

from __future__ import annotations

from aws_cdk import aws_iot as iot
from constructs import Construct


def device_policy_document(role_alias_arn: str) -> dict:
    """Allow exactly ``iot:AssumeRoleWithCertificate`` on one role alias."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:AssumeRoleWithCertificate",
                "Resource": role_alias_arn,
            }
        ],
    }


class DevicePolicy(Construct):
    """``AWS::IoT::Policy`` named per environment; the provisioning template attaches it by name."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str, role_alias_arn: str) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.resource = iot.CfnPolicy(
            self,
            "Resource",
            policy_name=name,
            policy_document=device_policy_document(role_alias_arn),
        )
