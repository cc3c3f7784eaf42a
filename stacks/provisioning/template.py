"""Fleet provisioning template for laptops, and the role AWS IoT uses to carry it out.

The body lives next to this module in ``laptop_template.json``; it is rendered with
this environment's names and checked at synth time (:mod:`stacks.provisioning.body`),
so a malformed body stops ``cdk synth`` instead of failing a laptop's enrollment.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from constructs import Construct

from stacks.errors import TemplateBodyError
from stacks.nag import acknowledge_wildcard_resource
from stacks.provisioning.body import TEMPLATE_FILE_NAME, render_template_body

TEMPLATE_BODY_FILE = Path(__file__).with_name(TEMPLATE_FILE_NAME)
IOT_SERVICE_PRINCIPAL = "iot.amazonaws.com"


class ProvisioningRole(Construct):
    """Role AWS IoT assumes to register a laptop: only the template's resources, scoped to this stack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        thing_type_name: str,
        thing_group_name: str,
        device_policy_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # Thing names are chosen per laptop at registration time and carry no
        # per-environment prefix, so things can only be scoped to this account and region.
        any_thing = stack.format_arn(service="iot", resource="thing", resource_name="*")
        # Certificate ids are hashes AWS IoT assigns when it issues the certificate.
        any_certificate = stack.format_arn(service="iot", resource="cert", resource_name="*")
        thing_group = stack.format_arn(service="iot", resource="thinggroup", resource_name=thing_group_name)
        thing_type = stack.format_arn(service="iot", resource="thingtype", resource_name=thing_type_name)
        device_policy = stack.format_arn(service="iot", resource="policy", resource_name=device_policy_name)

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(IOT_SERVICE_PRINCIPAL),
            description="Device trust: AWS IoT registers laptops with the fleet provisioning template",
        )
        statements = [
            iam.PolicyStatement(
                sid="RegisterTheThing",
                actions=["iot:CreateThing", "iot:DescribeThing", "iot:UpdateThing"],
                resources=[any_thing],
            ),
            iam.PolicyStatement(
                sid="PutTheThingInTheGroup",
                actions=["iot:AddThingToThingGroup"],
                resources=[any_thing, thing_group],
            ),
            iam.PolicyStatement(
                sid="ReadTheTypeAndGroup",
                actions=["iot:DescribeThingType", "iot:DescribeThingGroup"],
                resources=[thing_type, thing_group],
            ),
            iam.PolicyStatement(
                sid="ActivateAndAttachTheCertificate",
                actions=[
                    "iot:DescribeCertificate",
                    "iot:UpdateCertificate",
                    "iot:AttachThingPrincipal",
                    "iot:AttachPolicy",
                    "iot:AttachPrincipalPolicy",
                ],
                resources=[any_certificate, any_thing],
            ),
            iam.PolicyStatement(
                sid="ReadTheDevicePolicy",
                actions=["iot:GetPolicy"],
                resources=[device_policy],
            ),
        ]
        # A separate policy (not the role's default one) so the template can wait for it alone.
        self.policy = iam.Policy(self, "Policy", statements=statements, roles=[self.role])
        acknowledge_wildcard_resource(
            self.policy,
            any_thing,
            "Laptop thing names are chosen at registration time without an environment prefix;"
            " scoped to this account and region, and IoT attaches only this stack's policy and group.",
        )
        acknowledge_wildcard_resource(
            self.policy,
            any_certificate,
            "Certificate ids are assigned by AWS IoT when the laptop's CSR is signed and cannot be known in advance.",
        )


class LaptopProvisioningTemplate(Construct):
    """``AWS::IoT::ProvisioningTemplate`` registering a laptop: thing, ACTIVE certificate, device policy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        thing_type_name: str,
        thing_group_name: str,
        device_policy_name: str,
        body_file: Path = TEMPLATE_BODY_FILE,
    ) -> None:
        super().__init__(scope, construct_id)
        try:
            text = body_file.read_text(encoding="utf-8")
        except OSError as error:
            raise TemplateBodyError(f"cannot read provisioning template body {body_file}: {error.strerror}") from error
        self.body = render_template_body(
            text,
            thing_type_name=thing_type_name,
            thing_group_name=thing_group_name,
            device_policy_name=device_policy_name,
            source=str(body_file.name),
        )
        self.name = name
        self.provisioning_role = ProvisioningRole(
            self,
            "ProvisioningRole",
            thing_type_name=thing_type_name,
            thing_group_name=thing_group_name,
            device_policy_name=device_policy_name,
        )
        self.resource = iot.CfnProvisioningTemplate(
            self,
            "Resource",
            template_name=name,
            description="Device trust: registers a laptop's thing and certificate with the device policy",
            enabled=True,
            template_type="FLEET_PROVISIONING",
            provisioning_role_arn=self.provisioning_role.role.role_arn,
            template_body=json.dumps(self.body, separators=(",", ":")),
        )
        # The role's permissions must exist before AWS IoT provisions with it (the role
        # itself is already a dependency through the GetAtt on its ARN).
        self.resource.node.add_dependency(self.provisioning_role.policy)
