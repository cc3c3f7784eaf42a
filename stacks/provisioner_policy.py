"""Customer-managed IAM policy for whoever runs the provisioner's operator verbs.

``register``, ``enroll``, ``revoke``, ``rotate`` and ``status`` need exactly these
actions; each is scoped to this stack's resources wherever IAM has a resource type
for it. The list is documented in docs/deploying.md; keep the two in step.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.nag import acknowledge_wildcard_resource


class ProvisionerPolicy(Construct):
    """``AWS::IAM::ManagedPolicy`` an administrator attaches to operators (users, groups or roles)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stack_name: str,
        provisioning_template_name: str,
        thing_group_name: str,
        thing_type_name: str,
        device_policy_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # The stack id after the name is a UUID CloudFormation assigns at creation.
        this_stack = stack.format_arn(
            service="cloudformation", resource="stack", resource_name=f"{stack_name}/*"
        )
        template = stack.format_arn(
            service="iot", resource="provisioningtemplate", resource_name=provisioning_template_name
        )
        # Laptop thing names carry no environment prefix: account and region are the narrowest scope.
        any_thing = stack.format_arn(service="iot", resource="thing", resource_name="*")
        # Certificate ids are hashes AWS IoT assigns when it signs a CSR.
        any_certificate = stack.format_arn(service="iot", resource="cert", resource_name="*")
        thing_group = stack.format_arn(service="iot", resource="thinggroup", resource_name=thing_group_name)
        thing_type = stack.format_arn(service="iot", resource="thingtype", resource_name=thing_type_name)
        device_policy = stack.format_arn(service="iot", resource="policy", resource_name=device_policy_name)

        statements = [
            iam.PolicyStatement(
                sid="ReadStackOutputs",
                actions=["cloudformation:DescribeStacks"],
                resources=[this_stack],
            ),
            iam.PolicyStatement(
                sid="ActionsWithoutResourceTypes",
                actions=[
                    # IAM defines no resource type for these four actions, so '*' is the only
                    # resource they accept (Service Authorization Reference, AWS IoT).
                    "iot:DescribeEndpoint",
                    "iot:CreateCertificateFromCsr",
                    "iot:RegisterThing",
                    "iot:ListAttachedPolicies",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="ReadTheProvisioningTemplate",
                actions=["iot:DescribeProvisioningTemplate"],
                resources=[template],
            ),
            iam.PolicyStatement(
                # RegisterThing creates the thing with the caller's permissions; revoke deletes it.
                sid="ManageLaptopThings",
                actions=[
                    "iot:CreateThing",
                    "iot:DescribeThing",
                    "iot:UpdateThing",
                    "iot:DeleteThing",
                    "iot:ListThingPrincipals",
                ],
                resources=[any_thing],
            ),
            iam.PolicyStatement(
                sid="UseTheEnvironmentGroupAndType",
                actions=[
                    "iot:AddThingToThingGroup",
                    "iot:ListThingsInThingGroup",
                    "iot:DescribeThingGroup",
                    "iot:DescribeThingType",
                ],
                resources=[thing_group, thing_type, any_thing],
            ),
            iam.PolicyStatement(
                sid="ManageLaptopCertificates",
                actions=[
                    "iot:DescribeCertificate",
                    "iot:UpdateCertificate",
                    "iot:DeleteCertificate",
                    "iot:AttachThingPrincipal",
                    "iot:DetachThingPrincipal",
                    "iot:AttachPolicy",
                    "iot:AttachPrincipalPolicy",
                    "iot:DetachPolicy",
                    "iot:ListPrincipalThings",
                ],
                resources=[any_certificate, any_thing],
            ),
            iam.PolicyStatement(
                sid="ReadTheDevicePolicy",
                actions=["iot:GetPolicy"],
                resources=[device_policy],
            ),
        ]
        self.policy = iam.ManagedPolicy(
            self,
            "Resource",
            managed_policy_name=f"{stack_name}-provisioner",
            description=f"Device trust operators ({stack_name}): register, enroll, revoke, rotate, status",
            statements=statements,
        )
        acknowledge_wildcard_resource(
            self.policy,
            "*",
            "iot:DescribeEndpoint, iot:CreateCertificateFromCsr, iot:RegisterThing and iot:ListAttachedPolicies"
            " have no IAM resource type; '*' is the only resource IAM accepts for them.",
        )
        acknowledge_wildcard_resource(
            self.policy,
            this_stack,
            "The suffix after the stack name is the stack id CloudFormation assigns; the name pins this stack.",
        )
        # The real reach of the two wildcards below: every thing and every certificate of this
        # account and region, not only this environment's laptops (IoT ARNs carry no environment).
        # Hence the recommendation in docs/deploying.md: one account per environment, and no other
        # IoT fleet in an account that runs device trust.
        acknowledge_wildcard_resource(
            self.policy,
            any_thing,
            "Laptop thing names carry no environment prefix, so thing/* reaches every thing of this account and"
            " region; deploy each environment to an account of its own with no other IoT fleet (docs/deploying.md).",
        )
        acknowledge_wildcard_resource(
            self.policy,
            any_certificate,
            "Certificate ids are assigned by AWS IoT when it signs a CSR, so cert/* reaches every certificate of"
            " this account and region (AttachPolicy included); one account per environment (docs/deploying.md).",
        )
