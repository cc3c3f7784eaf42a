"""The promotion pipeline: stages in configured order, approval before prod, smoke tests fed by outputs."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.stack import REPO_ROOT, SynthesizedApp, cdk_json_context, synthesize_app


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> SynthesizedApp:
    return synthesize_app(tmp_path_factory.mktemp("cdk-pipeline"))


@pytest.fixture(scope="module")
def pipeline_template(shipped) -> dict:
    return shipped.template("DeviceTrust-Pipeline").template


@pytest.fixture(scope="module")
def same_account_reordered(tmp_path_factory) -> dict:
    """Every environment in the pipeline's account; staging (with approval) before dev; no prod."""
    context = cdk_json_context()
    settings = context["deviceTrust"]
    for name in ("dev", "staging", "prod"):
        settings["environments"][name]["account"] = settings["pipeline"]["account"]
    settings["environments"]["staging"]["requiresApproval"] = True
    settings["pipeline"]["stageOrder"] = ["staging", "dev"]
    synthesized = synthesize_app(tmp_path_factory.mktemp("cdk-pipeline-variant"), context=context)
    return synthesized.template("DeviceTrust-Pipeline").template


def _pipeline(template: dict) -> dict:
    (pipeline,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"]
    return pipeline


def _stage(template: dict, name: str) -> dict:
    (stage,) = [stage for stage in _pipeline(template)["Stages"] if stage["Name"] == name]
    return stage


def _actions(stage: dict, category: str) -> list[dict]:
    return [action for action in stage["Actions"] if action["ActionTypeId"]["Category"] == category]


def _flatten(value) -> str:
    """A Fn::Join of strings and Refs as one string, Refs shown as ${Name}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return "${" + value["Ref"] + "}"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_flatten(part) for part in parts)
    return json.dumps(value)


def _project(template: dict, action: dict) -> dict:
    project_id = action["Configuration"]["ProjectName"]["Ref"]
    return template["Resources"][project_id]["Properties"]


def _buildspec_commands(project: dict) -> list[str]:
    buildspec = json.loads(project["Source"]["BuildSpec"])
    return [command for phase in buildspec["phases"].values() for command in phase["commands"]]


def test_stages_deploy_the_environments_in_configured_order_after_source_build_and_self_update(pipeline_template):
    names = [stage["Name"] for stage in _pipeline(pipeline_template)["Stages"]]

    assert names == ["Source", "Build", "UpdatePipeline", "dev", "staging", "prod"]


def test_manual_approval_precedes_the_prod_deployment_and_only_prod(pipeline_template):
    prod = _stage(pipeline_template, "prod")
    (approval,) = _actions(prod, "Approval")
    deployments = _actions(prod, "Deploy")

    assert approval["ActionTypeId"]["Provider"] == "Manual"
    assert deployments and all(approval["RunOrder"] < action["RunOrder"] for action in deployments)
    assert "prod" in approval["Configuration"]["CustomData"]
    for name in ("dev", "staging"):
        assert _actions(_stage(pipeline_template, name), "Approval") == []


def test_each_stage_deploys_the_devicetrust_stack_into_its_own_account(pipeline_template):
    accounts = {"dev": "111111111111", "staging": "222222222222", "prod": "333333333333"}
    for name, account in accounts.items():
        deployments = _actions(_stage(pipeline_template, name), "Deploy")
        assert {action["Configuration"]["StackName"] for action in deployments} == {f"DeviceTrust-{name}"}
        for action in deployments:
            assert f":iam::{account}:role/cdk-hnb659fds-deploy-role-{account}-us-east-1" in _flatten(action["RoleArn"])


def test_smoke_test_runs_after_each_deployment_and_reads_the_stack_outputs(pipeline_template):
    for name in ("dev", "staging", "prod"):
        stage = _stage(pipeline_template, name)
        deployments = _actions(stage, "Deploy")
        (smoke_test,) = [action for action in _actions(stage, "Build") if action["Name"] == f"SmokeTest-{name}"]
        namespaces = {action.get("Namespace") for action in deployments} - {None}
        variables = {v["name"]: v["value"] for v in json.loads(smoke_test["Configuration"]["EnvironmentVariables"])}

        assert all(smoke_test["RunOrder"] > action["RunOrder"] for action in deployments)
        (namespace,) = namespaces
        assert variables == {
            "ROLE_ALIAS_NAME": f"#{{{namespace}.RoleAliasName}}",
            "PROVISIONING_TEMPLATE_NAME": f"#{{{namespace}.ProvisioningTemplateName}}",
            "DEVICE_POLICY_NAME": f"#{{{namespace}.DevicePolicyName}}",
        }
        commands = _buildspec_commands(_project(pipeline_template, smoke_test))
        assert 'aws iot describe-role-alias --role-alias "$ROLE_ALIAS_NAME" --profile target --region us-east-1' in commands
        assert any("describe-provisioning-template" in c and "$PROVISIONING_TEMPLATE_NAME" in c for c in commands)
        assert any("get-policy" in c and "$DEVICE_POLICY_NAME" in c for c in commands)


def test_smoke_test_reads_the_target_account_through_its_bootstrap_lookup_role(pipeline_template):
    prod = _stage(pipeline_template, "prod")
    (smoke_test,) = [action for action in _actions(prod, "Build") if action["Name"] == "SmokeTest-prod"]
    project = _project(pipeline_template, smoke_test)
    lookup_role = ":iam::333333333333:role/cdk-hnb659fds-lookup-role-333333333333-us-east-1"
    variables = {v["Name"]: _flatten(v["Value"]) for v in project["Environment"]["EnvironmentVariables"]}
    role_id = project["ServiceRole"]["Fn::GetAtt"][0]
    statements = [
        statement
        for resource in pipeline_template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]

    assert variables["LOOKUP_ROLE_ARN"].endswith(lookup_role)
    assert any(
        statement["Action"] == "sts:AssumeRole" and _flatten(statement["Resource"]).endswith(lookup_role)
        for statement in statements
    )


def test_synth_step_installs_and_runs_the_test_suite_before_cdk_synth(pipeline_template):
    (synth,) = _actions(_stage(pipeline_template, "Build"), "Build")

    assert _buildspec_commands(_project(pipeline_template, synth)) == ["make test-fast", "npx cdk synth"]


def test_source_is_the_configured_connection_repository_and_branch(pipeline_template):
    (source,) = _stage(pipeline_template, "Source")["Actions"]

    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["ConnectionArn"] == (
        "arn:aws:codeconnections:us-east-1:444444444444:connection/00000000-0000-0000-0000-000000000000"
    )
    assert source["Configuration"]["FullRepositoryId"] == "example-org/device-trust"
    assert source["Configuration"]["BranchName"] == "main"


def test_self_mutation_installs_the_cdk_cli_package_json_pins(pipeline_template):
    (mutate,) = _actions(_stage(pipeline_template, "UpdatePipeline"), "Build")
    pinned = json.loads((REPO_ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]

    assert f"npm install -g aws-cdk@{pinned}" in _buildspec_commands(_project(pipeline_template, mutate))


def test_pipeline_stack_lives_in_the_pipeline_account(shipped):
    artifact = shipped.assembly.get_stack_by_name("DeviceTrust-Pipeline")

    assert artifact.environment.name == "aws://444444444444/us-east-1"


def test_cross_account_keys_with_rotation_when_environments_span_accounts(pipeline_template):
    keys = [r["Properties"] for r in pipeline_template["Resources"].values() if r["Type"] == "AWS::KMS::Key"]

    assert len(keys) == 1
    assert keys[0]["EnableKeyRotation"] is True
    assert "EncryptionKey" in _pipeline(pipeline_template)["ArtifactStore"]


def test_no_cross_account_key_when_every_environment_shares_the_pipeline_account(same_account_reordered):
    types = {r["Type"] for r in same_account_reordered["Resources"].values()}

    assert "AWS::KMS::Key" not in types
    assert "EncryptionKey" not in _pipeline(same_account_reordered)["ArtifactStore"]


def test_stage_order_and_approvals_follow_the_config(same_account_reordered):
    names = [stage["Name"] for stage in _pipeline(same_account_reordered)["Stages"]]
    staging = _stage(same_account_reordered, "staging")

    assert names == ["Source", "Build", "UpdatePipeline", "staging", "dev"]
    (approval,) = _actions(staging, "Approval")
    assert all(approval["RunOrder"] < action["RunOrder"] for action in _actions(staging, "Deploy"))
    assert _actions(_stage(same_account_reordered, "dev"), "Approval") == []


def test_pipeline_deploys_the_same_stack_cdk_deploy_does(shipped):
    (stage,) = [stack for stack in shipped.stacks if stack.node.id == "DeviceTrust-Pipeline"]
    dev_stage = next(s for s in stage.stages if s.environment.name == "dev")
    staged = shipped.assembly.get_nested_assembly(dev_stage.artifact_id)
    (artifact,) = [a for a in staged.stacks if a.stack_name == "DeviceTrust-dev"]
    direct = shipped.template("DeviceTrust-dev").template

    def without_paths(template: dict) -> dict:
        return {
            logical_id: {key: value for key, value in resource.items() if key != "Metadata"}
            for logical_id, resource in template["Resources"].items()
        }

    assert without_paths(artifact.template) == without_paths(direct)
    assert artifact.template["Outputs"].keys() == direct["Outputs"].keys()
