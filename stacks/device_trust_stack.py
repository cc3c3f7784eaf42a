"""DeviceTrustStack: everything one environment needs, composed of single-concern constructs."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from aws_cdk import BootstraplessSynthesizer, CfnOutput, Environment, Stack
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.device_policy import DevicePolicy
from stacks.device_registry import EnvironmentThingGroup, LaptopThingType
from stacks.device_role import DeviceRole
from stacks.names import ResourceNames
from stacks.provisioner_policy import ProvisionerPolicy
from stacks.provisioning.template import LaptopProvisioningTemplate
from stacks.role_alias import DeviceRoleAlias, role_alias_arn

# CfnOutput keys: the provisioner's only input about the account (DESIGN.md contract).
OUTPUT_KEYS = (
    "RoleAliasName",
    "RoleAliasArn",
    "DeviceRoleArn",
    "DevicePolicyName",
    "ProvisioningTemplateName",
    "ThingGroupName",
    "ThingTypeName",
    "ProvisionerPolicyArn",
)


class DeviceTrustStack(Stack):
    """Device role, role alias, device IoT policy, provisioning template, thing type and group, operator policy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment_name: str,
        credential_duration_seconds: int,
        max_session_duration_seconds: int,
        role_policy_statements: Sequence[Mapping[str, Any]] = (),
        role_managed_policy_arns: Sequence[str] = (),
        confused_deputy_condition: bool = False,
        **stack_props: Any,
    ) -> None:
        names = ResourceNames(environment_name)
        stack_props.setdefault("stack_name", names.stack)
        stack_props.setdefault("description", f"Device trust ({environment_name}): laptop certificates to AWS credentials")
        super().__init__(scope, construct_id, **stack_props)

        self.device_role = DeviceRole(
            self,
            "DeviceRole",
            role_alias_arn=role_alias_arn(self, names.role_alias),
            max_session_duration_seconds=max_session_duration_seconds,
            policy_statements=role_policy_statements,
            managed_policy_arns=role_managed_policy_arns,
            confused_deputy_condition=confused_deputy_condition,
        )
        self.role_alias = DeviceRoleAlias(
            self,
            "RoleAlias",
            name=names.role_alias,
            role=self.device_role.role,
            credential_duration_seconds=credential_duration_seconds,
            max_session_duration_seconds=max_session_duration_seconds,
        )
        self.device_policy = DevicePolicy(self, "DevicePolicy", name=names.device_policy, role_alias_arn=self.role_alias.arn)
        self.thing_type = LaptopThingType(self, "ThingType", name=names.thing_type)
        self.thing_group = EnvironmentThingGroup(self, "ThingGroup", name=names.thing_group)
        self.provisioning_template = LaptopProvisioningTemplate(
            self,
            "ProvisioningTemplate",
            name=names.provisioning_template,
            thing_type_name=names.thing_type,
            thing_group_name=names.thing_group,
            device_policy_name=names.device_policy,
        )
        # The body names these resources; they must exist before a laptop registers.
        for referenced in (self.device_policy, self.thing_type, self.thing_group):
            self.provisioning_template.resource.node.add_dependency(referenced)
        self.provisioner_policy = ProvisionerPolicy(
            self,
            "ProvisionerPolicy",
            stack_name=names.stack,
            provisioning_template_name=names.provisioning_template,
            thing_group_name=names.thing_group,
            thing_type_name=names.thing_type,
            device_policy_name=names.device_policy,
        )

        # Names are given literally (they are fixed at synth time); ARNs come from the resources.
        values = {
            "RoleAliasName": (names.role_alias, "Role alias a laptop asks the credentials provider for"),
            "RoleAliasArn": (self.role_alias.arn, "ARN of the role alias (the device policy allows exactly this)"),
            "DeviceRoleArn": (
                self.device_role.role.role_arn,
                "IAM role whose credentials laptops receive; grant application access here",
            ),
            "DevicePolicyName": (names.device_policy, "IoT policy attached to every laptop certificate"),
            "ProvisioningTemplateName": (
                names.provisioning_template,
                "Fleet provisioning template the provisioner registers laptops with",
            ),
            "ThingGroupName": (names.thing_group, "Thing group holding this environment's laptops"),
            "ThingTypeName": (names.thing_type, "Thing type of enrolled laptops"),
            "ProvisionerPolicyArn": (
                self.provisioner_policy.policy.managed_policy_arn,
                "Managed policy to attach to whoever runs the provisioner's operator verbs",
            ),
        }
        self.outputs = {
            key: CfnOutput(self, key, value=values[key][0], description=values[key][1]) for key in OUTPUT_KEYS
        }


def device_trust_stack_for(scope: Construct, construct_id: str, environment: EnvironmentConfig) -> DeviceTrustStack:
    """The one place an environment's config becomes stack arguments (app and pipeline stages alike)."""
    stack_props: dict[str, Any] = {
        "env": Environment(account=environment.account, region=environment.region),
        "stack_name": environment.stack_name,
        # No AWS::CDK::Metadata resource: the local stand-in accepts only the stack's own types.
        "analytics_reporting": False,
    }
    if environment.bootstrapless:
        # Template passed inline, no assets, no bootstrap version parameter or rule.
        stack_props["synthesizer"] = BootstraplessSynthesizer()
    return DeviceTrustStack(
        scope,
        construct_id,
        environment_name=environment.name,
        credential_duration_seconds=environment.credential_duration_seconds,
        max_session_duration_seconds=environment.max_session_duration_seconds,
        role_policy_statements=environment.role_policy_statements,
        role_managed_policy_arns=environment.role_managed_policy_arns,
        confused_deputy_condition=environment.confused_deputy_condition,
        **stack_props,
    )
