"""Promotion pipeline: one Stage per environment in cdk.json's order, approvals, smoke tests.

Source is a CodeStar/CodeConnections connection to the repository. The synth step
installs everything, runs the test suite, then ``cdk synth``. Each environment is a
:class:`DeviceTrustStage` (the same stack ``cdk deploy -c env=NAME`` deploys); a
manual approval precedes every environment with ``requiresApproval``; after each
deployment a smoke test reads the stack outputs and checks, in the target account,
that the role alias, the provisioning template and the device policy exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, Environment, Stack, Stage
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines
from constructs import Construct

from stacks.config import AppConfig, EnvironmentConfig, PipelineConfig
from stacks.device_trust_stack import DeviceTrustStack, device_trust_stack_for
from stacks.nag import acknowledge, acknowledge_wildcard_resource

SYNTH_COMMANDS = (
    # `make test-fast` creates the venv, installs requirements-dev.txt and the pinned CDK
    # CLI (npm ci) and runs the suite except the headless-Chromium browser test: the
    # CodeBuild standard image is Ubuntu, where Chromium is a snap the Debian install
    # script cannot provide. `.ci/run` (make test) runs the browser test too.
    "make test-fast",
    "npx cdk synth",
)
# The CDK bootstrap's default qualifier; the lookup role has read-only access and trusts
# the pipeline account when the target was bootstrapped with --trust <pipeline account>.
BOOTSTRAP_QUALIFIER = "hnb659fds"
PACKAGE_JSON = Path(__file__).resolve().parents[1] / "package.json"


def cdk_cli_version() -> str:
    """The aws-cdk CLI version package.json pins."""
    package = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    return package["devDependencies"]["aws-cdk"]


def lookup_role_arn(partition: str, account: str, region: str) -> str:
    """ARN of the CDK bootstrap lookup role (ReadOnlyAccess) in a target environment."""
    return f"arn:{partition}:iam::{account}:role/cdk-{BOOTSTRAP_QUALIFIER}-lookup-role-{account}-{region}"


def smoke_test_commands(region: str) -> list[str]:
    """Shell commands that fail unless the deployed role alias, template and device policy exist."""
    target = f"--profile target --region {region}"
    return [
        'aws configure set profile.target.role_arn "$LOOKUP_ROLE_ARN"',
        "aws configure set profile.target.credential_source EcsContainer",
        f'aws iot describe-role-alias --role-alias "$ROLE_ALIAS_NAME" {target}',
        f'aws iot describe-provisioning-template --template-name "$PROVISIONING_TEMPLATE_NAME" {target}',
        f'aws iot get-policy --policy-name "$DEVICE_POLICY_NAME" {target}',
    ]


class DeviceTrustStage(Stage):
    """One environment as a pipeline stage: the DeviceTrust-<env> stack in its account and region."""

    def __init__(self, scope: Construct, construct_id: str, *, environment: EnvironmentConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=environment.account, region=environment.region),
            **kwargs,
        )
        self.environment = environment
        self.stack: DeviceTrustStack = device_trust_stack_for(self, "DeviceTrust", environment)


class PipelineStack(Stack):
    """CDK Pipelines (CodePipeline) promoting the device-trust stack through the configured environments."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: Any) -> None:
        pipeline_config: PipelineConfig = config.pipeline  # type: ignore[assignment]
        if pipeline_config is None:
            raise ValueError("PipelineStack needs a pipeline section in the config")
        kwargs.setdefault("stack_name", pipeline_config.stack_name)
        kwargs.setdefault("description", "Device trust: promotion pipeline")
        kwargs.setdefault("analytics_reporting", False)
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=pipeline_config.account, region=pipeline_config.region),
            **kwargs,
        )
        environments = [config.environment(name) for name in pipeline_config.stage_order]
        cross_account = any(env.account != pipeline_config.account for env in environments)
        self.cross_account = cross_account

        source = pipelines.CodePipelineSource.connection(
            pipeline_config.repository,
            pipeline_config.branch,
            connection_arn=pipeline_config.connection_arn,
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name="DeviceTrust",
            # Stages in other accounts need a KMS key they can be granted; rotate it.
            cross_account_keys=cross_account,
            enable_key_rotation=cross_account,
            synth=pipelines.ShellStep("Synth", input=source, commands=list(SYNTH_COMMANDS)),
            # Self-mutation installs this CDK CLI, the one package.json pins for `npx cdk`.
            cli_version=cdk_cli_version(),
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=codebuild.LinuxBuildImage.STANDARD_7_0),
            ),
        )
        self.stages: list[DeviceTrustStage] = []
        self.smoke_tests: list[pipelines.CodeBuildStep] = []
        for environment in environments:
            stage = DeviceTrustStage(self, environment.name, environment=environment)
            pre = []
            if environment.requires_approval:
                pre.append(
                    pipelines.ManualApprovalStep(
                        f"Approve-{environment.name}",
                        comment=f"Promote device trust into {environment.name} ({environment.account})?",
                    )
                )
            smoke_test = pipelines.CodeBuildStep(
                f"SmokeTest-{environment.name}",
                env_from_cfn_outputs={
                    "ROLE_ALIAS_NAME": stage.stack.outputs["RoleAliasName"],
                    "PROVISIONING_TEMPLATE_NAME": stage.stack.outputs["ProvisioningTemplateName"],
                    "DEVICE_POLICY_NAME": stage.stack.outputs["DevicePolicyName"],
                },
                env={"LOOKUP_ROLE_ARN": lookup_role_arn(self.partition, environment.account, environment.region)},
                commands=smoke_test_commands(environment.region),
                role_policy_statements=[
                    iam.PolicyStatement(
                        actions=["sts:AssumeRole"],
                        resources=[lookup_role_arn(self.partition, environment.account, environment.region)],
                    )
                ],
            )
            self.pipeline.add_stage(stage, pre=pre, post=[smoke_test])
            self.stages.append(stage)
            self.smoke_tests.append(smoke_test)
        self.pipeline.build_pipeline()
        self._drop_redundant_role_dependency()
        self._acknowledge_generated_resources()

    def _drop_redundant_role_dependency(self) -> None:
        """Keep the generated pipeline's DependsOn on its role's policy only.

        CodePipeline depends on its whole role construct, but it already references
        the role through GetAtt, which cfn-lint reports as W3005.
        """
        pipeline = self.pipeline.pipeline
        role_policy = pipeline.role.node.try_find_child("DefaultPolicy")
        cfn_pipeline = pipeline.node.default_child
        cfn_pipeline.add_override("DependsOn", [self.get_logical_id(role_policy.node.default_child)])

    def _acknowledge_generated_resources(self) -> None:
        """cdk-nag findings on resources CDK Pipelines generates, each acknowledged with its reason.

        Finding ids are computed from the generated resources' own tokens (bucket ARN,
        project names), never written as construct paths or logical ids.
        """
        pipeline = self.pipeline.pipeline
        acknowledge(
            pipeline.artifact_bucket,
            "AwsSolutions-S1",
            "Pipeline artifact bucket: every write comes from the pipeline's own roles and is recorded by"
            " CloudTrail; server access logs would need a second bucket per pipeline.",
        )
        # CDK Pipelines grants each action role read/write on the artifact bucket and its KMS key
        # with the wildcard action groups of Bucket.grantReadWrite / Key.grantEncryptDecrypt.
        artifact_grants = (
            "Action::s3:Abort*",
            "Action::s3:DeleteObject*",
            "Action::s3:GetBucket*",
            "Action::s3:GetObject*",
            "Action::s3:List*",
            "Action::kms:GenerateDataKey*",
            "Action::kms:ReEncrypt*",
        )
        for finding in artifact_grants:
            acknowledge(
                self.pipeline,
                f"AwsSolutions-IAM5[{finding}]",
                "CDK Pipelines' grant on this pipeline's own artifact bucket and key; the resources are pinned.",
            )
        acknowledge_wildcard_resource(
            self.pipeline,
            pipeline.artifact_bucket.arn_for_objects("*"),
            "Pipeline actions read and write artifacts under generated keys in this pipeline's own bucket.",
        )
        projects = [self.pipeline.synth_project, *(step.project for step in self.smoke_tests)]
        if self.pipeline.self_mutation_enabled:
            projects.append(self.pipeline.self_mutation_project)
        for project in projects:
            if not self.cross_account:
                acknowledge(
                    project,
                    "AwsSolutions-CB4",
                    "Single-account pipeline: artifacts stay in this account under the bucket's S3-managed"
                    " encryption; a customer KMS key is created when environments span accounts.",
                )
            log_groups = self.format_arn(
                service="logs",
                resource="log-group",
                resource_name=f"/aws/codebuild/{project.project_name}:*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            report_groups = self.format_arn(
                service="codebuild", resource="report-group", resource_name=f"{project.project_name}-*"
            )
            acknowledge_wildcard_resource(
                project, log_groups, "CodeBuild writes log streams with generated names into the project's log group."
            )
            acknowledge_wildcard_resource(
                project, report_groups, "CodeBuild report groups are created per build under the project's name."
            )
        if self.pipeline.self_mutation_enabled:
            mutation = self.pipeline.self_mutation_project
            acknowledge(
                mutation,
                f"AwsSolutions-IAM5[Resource::arn:*:iam::{self.account}:role/*]",
                "Self-mutation assumes the CDK bootstrap roles; CDK limits the statement to roles tagged"
                " aws-cdk:bootstrap-role.",
            )
            acknowledge(
                mutation,
                "AwsSolutions-IAM5[Resource::*]",
                "Self-mutation reads stack descriptions and bootstrap version parameters across regions"
                " before deploying the updated pipeline (CDK-generated statement).",
            )
