"""DeviceTrustStack: each construct's properties, asserted on synthesized templates (never on logical ids)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from tests.fixtures.stack import SynthesizedApp, cdk_json_context, synthesize_app

ENVIRONMENTS = ("local", "dev", "staging", "prod")
OUTPUT_KEYS = {
    "RoleAliasName",
    "RoleAliasArn",
    "DeviceRoleArn",
    "DevicePolicyName",
    "ProvisioningTemplateName",
    "ThingGroupName",
    "ThingTypeName",
    "ProvisionerPolicyArn",
}
LOCAL_ALLOWED_TYPES = {
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IoT::RoleAlias",
    "AWS::IoT::Policy",
    "AWS::IoT::ProvisioningTemplate",
    "AWS::IoT::ThingType",
    "AWS::IoT::ThingGroup",
}
DEV_ARN = "arn:aws:iot:us-east-1:111111111111"
PER_DEVICE_STATEMENT = {
    "Effect": "Allow",
    "Action": ["s3:GetObject", "s3:PutObject"],
    "Resource": "arn:aws:s3:::corp-laptops/${credentials-iot:ThingName}/*",
}
MANAGED_POLICY = "arn:aws:iam::111111111111:policy/corp-laptop-apps"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> SynthesizedApp:
    """The whole app from the shipped cdk.json: every environment and the pipeline, cdk-nag on."""
    return synthesize_app(tmp_path_factory.mktemp("cdk-all"))


@pytest.fixture(scope="module")
def dev(shipped) -> dict:
    return shipped.template("DeviceTrust-dev").template


@pytest.fixture(scope="module")
def customized(tmp_path_factory) -> dict:
    """dev with role permissions and the confused-deputy condition switched on."""
    context = cdk_json_context()
    dev_config = context["deviceTrust"]["environments"]["dev"]
    dev_config["rolePolicyStatements"] = [PER_DEVICE_STATEMENT]
    dev_config["roleManagedPolicyArns"] = [MANAGED_POLICY]
    dev_config["confusedDeputyCondition"] = True
    dev_config["credentialDurationSeconds"] = 7200
    dev_config["maxSessionDurationSeconds"] = 14400
    synthesized = synthesize_app(tmp_path_factory.mktemp("cdk-custom"), context=context, env="dev")
    return synthesized.template("DeviceTrust-dev").template


def _only(template: dict, resource_type: str, **properties) -> tuple[str, dict]:
    """The single resource of ``resource_type`` whose properties match; returns (logical id, resource)."""
    found = Template.from_json(template).find_resources(
        resource_type, {"Properties": Match.object_like(properties)} if properties else None
    )
    assert len(found) == 1, f"expected one {resource_type} matching {properties}, found {list(found)}"
    return next(iter(found.items()))


def _device_role(template: dict) -> tuple[str, dict]:
    return _only(
        template,
        "AWS::IAM::Role",
        AssumeRolePolicyDocument=Match.object_like(
            {"Statement": [Match.object_like({"Principal": {"Service": "credentials.iot.amazonaws.com"}})]}
        ),
    )


def _policies_attached_to(template: dict, role_id: str) -> list[dict]:
    return [
        resource["Properties"]["PolicyDocument"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"]["Roles"]
    ]


def _statements(document: dict) -> list[dict]:
    return [dict(statement) for statement in document["Statement"]]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# --- device role -----------------------------------------------------------------------------


def test_device_role_is_assumable_only_by_the_iot_credentials_provider(dev):
    _, role = _device_role(dev)

    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "credentials.iot.amazonaws.com"}}
    ]


def test_device_role_grants_nothing_by_default(dev):
    role_id, role = _device_role(dev)

    assert "ManagedPolicyArns" not in role["Properties"]
    assert "Policies" not in role["Properties"]
    assert _policies_attached_to(dev, role_id) == []


def test_device_role_session_outlasts_the_alias_credentials(dev, customized):
    for template, expected in ((dev, 3600), (customized, 14400)):
        _, role = _device_role(template)
        _, alias = _only(template, "AWS::IoT::RoleAlias")
        assert role["Properties"]["MaxSessionDuration"] == expected
        assert alias["Properties"]["CredentialDurationSeconds"] <= role["Properties"]["MaxSessionDuration"]


def test_configured_statements_and_managed_policies_are_granted_to_the_device_role(customized):
    role_id, role = _device_role(customized)

    assert role["Properties"]["ManagedPolicyArns"] == [MANAGED_POLICY]
    (document,) = _policies_attached_to(customized, role_id)
    assert _statements(document) == [
        {
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Effect": "Allow",
            "Resource": "arn:aws:s3:::corp-laptops/${credentials-iot:ThingName}/*",
        }
    ]


def test_confused_deputy_condition_is_off_by_default_and_pins_account_and_alias_when_on(dev, customized):
    _, default_role = _device_role(dev)
    _, opted_in = _device_role(customized)

    assert "Condition" not in default_role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert opted_in["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "111111111111"},
        "ArnEquals": {"aws:SourceArn": f"{DEV_ARN}:rolealias/DeviceTrust-dev-laptop"},
    }


# --- role alias and device policy ---------------------------------------------------------------


def test_role_alias_is_named_per_environment_and_points_at_the_device_role(dev, customized):
    role_id, _ = _device_role(dev)

    _only(
        dev,
        "AWS::IoT::RoleAlias",
        RoleAlias="DeviceTrust-dev-laptop",
        RoleArn={"Fn::GetAtt": [role_id, "Arn"]},
        CredentialDurationSeconds=3600,
    )
    _only(customized, "AWS::IoT::RoleAlias", CredentialDurationSeconds=7200)


def test_device_policy_allows_exactly_assume_role_with_certificate_on_the_alias(dev):
    alias_id, _ = _only(dev, "AWS::IoT::RoleAlias")
    _, policy = _only(dev, "AWS::IoT::Policy", PolicyName="DeviceTrust-dev-device")

    assert policy["Properties"]["PolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:AssumeRoleWithCertificate",
                "Resource": {"Fn::GetAtt": [alias_id, "RoleAliasArn"]},
            }
        ],
    }


# --- provisioning template and its role ---------------------------------------------------------


def test_provisioning_template_body_registers_into_this_stacks_type_group_and_policy(dev):
    _, template = _only(dev, "AWS::IoT::ProvisioningTemplate", TemplateName="DeviceTrust-dev-laptop")
    body = json.loads(template["Properties"]["TemplateBody"])
    resources = {resource["Type"]: resource for resource in body["Resources"].values()}

    assert template["Properties"]["Enabled"] is True
    assert template["Properties"]["TemplateType"] == "FLEET_PROVISIONING"
    assert set(body["Parameters"]) >= {"ThingName", "AWS::IoT::Certificate::Id", "Owner", "SerialNumber", "Platform"}
    assert resources["AWS::IoT::Thing"]["Properties"]["ThingTypeName"] == "DeviceTrustLaptop-dev"
    assert resources["AWS::IoT::Thing"]["Properties"]["ThingGroups"] == ["DeviceTrust-dev"]
    assert resources["AWS::IoT::Thing"]["OverrideSettings"] == {
        "AttributePayload": "MERGE",
        "ThingTypeName": "REPLACE",
        "ThingGroups": "DO_NOTHING",
    }
    assert resources["AWS::IoT::Certificate"]["Properties"]["Status"] == "ACTIVE"
    assert resources["AWS::IoT::Policy"]["Properties"] == {"PolicyName": "DeviceTrust-dev-device"}


def test_provisioning_template_waits_for_the_resources_its_body_names(dev):
    template_id, template = _only(dev, "AWS::IoT::ProvisioningTemplate")
    waits_for = set(template.get("DependsOn", []))
    resource_ids = {
        resource_type: logical_id
        for logical_id, resource in dev["Resources"].items()
        for resource_type in [resource["Type"]]
    }

    for resource_type in ("AWS::IoT::Policy", "AWS::IoT::ThingType", "AWS::IoT::ThingGroup"):
        assert resource_ids[resource_type] in waits_for, resource_type
    role_id = template["Properties"]["ProvisioningRoleArn"]["Fn::GetAtt"][0]
    assert _policies_attached_to(dev, role_id), "provisioning role has no policy"
    role_policy_ids = [
        logical_id
        for logical_id, resource in dev["Resources"].items()
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"]["Roles"]
    ]
    assert set(role_policy_ids) <= waits_for


def test_provisioning_role_trusts_iot_and_is_scoped_to_this_stack(dev):
    _, template = _only(dev, "AWS::IoT::ProvisioningTemplate")
    role_id = template["Properties"]["ProvisioningRoleArn"]["Fn::GetAtt"][0]
    role = dev["Resources"][role_id]
    (document,) = _policies_attached_to(dev, role_id)
    statements = _statements(document)
    actions = {action for statement in statements for action in _as_list(statement["Action"])}
    resources = {resource for statement in statements for resource in _as_list(statement["Resource"])}

    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"}}
    ]
    assert "ManagedPolicyArns" not in role["Properties"]
    assert {
        "iot:CreateThing",
        "iot:AddThingToThingGroup",
        "iot:AttachThingPrincipal",
        "iot:AttachPolicy",
        "iot:UpdateCertificate",
        "iot:DescribeCertificate",
    } <= actions
    assert not any(action.endswith("*") for action in actions)
    assert resources == {
        f"{DEV_ARN}:thing/*",
        f"{DEV_ARN}:cert/*",
        f"{DEV_ARN}:thinggroup/DeviceTrust-dev",
        f"{DEV_ARN}:thingtype/DeviceTrustLaptop-dev",
        f"{DEV_ARN}:policy/DeviceTrust-dev-device",
    }


# --- registry, operator policy, outputs ---------------------------------------------------------


def test_thing_type_and_thing_group_are_named_per_environment(dev):
    _only(
        dev,
        "AWS::IoT::ThingType",
        ThingTypeName="DeviceTrustLaptop-dev",
        ThingTypeProperties=Match.object_like({"SearchableAttributes": ["owner", "serialNumber", "platform"]}),
    )
    _only(dev, "AWS::IoT::ThingGroup", ThingGroupName="DeviceTrust-dev")


def test_provisioner_policy_holds_exactly_the_operator_verbs_actions(dev):
    _, policy = _only(dev, "AWS::IAM::ManagedPolicy", ManagedPolicyName="DeviceTrust-dev-provisioner")
    statements = _statements(policy["Properties"]["PolicyDocument"])
    by_action: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            by_action.setdefault(action, set()).update(_as_list(statement["Resource"]))

    assert set(by_action) == {
        "cloudformation:DescribeStacks",
        "iot:DescribeEndpoint",
        "iot:CreateCertificateFromCsr",
        "iot:RegisterThing",
        "iot:ListAttachedPolicies",
        "iot:DescribeProvisioningTemplate",
        "iot:CreateThing",
        "iot:DescribeThing",
        "iot:UpdateThing",
        "iot:DeleteThing",
        "iot:ListThingPrincipals",
        "iot:AddThingToThingGroup",
        "iot:ListThingsInThingGroup",
        "iot:DescribeThingGroup",
        "iot:DescribeThingType",
        "iot:DescribeCertificate",
        "iot:UpdateCertificate",
        "iot:DeleteCertificate",
        "iot:AttachThingPrincipal",
        "iot:DetachThingPrincipal",
        "iot:AttachPolicy",
        "iot:AttachPrincipalPolicy",
        "iot:DetachPolicy",
        "iot:ListPrincipalThings",
        "iot:GetPolicy",
    }
    assert by_action["cloudformation:DescribeStacks"] == {
        "arn:aws:cloudformation:us-east-1:111111111111:stack/DeviceTrust-dev/*"
    }
    assert by_action["iot:DescribeProvisioningTemplate"] == {f"{DEV_ARN}:provisioningtemplate/DeviceTrust-dev-laptop"}
    assert by_action["iot:ListThingsInThingGroup"] >= {f"{DEV_ARN}:thinggroup/DeviceTrust-dev"}
    assert by_action["iot:GetPolicy"] == {f"{DEV_ARN}:policy/DeviceTrust-dev-device"}
    wildcard_actions = {action for action, resources in by_action.items() if "*" in resources}
    assert wildcard_actions == {
        "iot:DescribeEndpoint",
        "iot:CreateCertificateFromCsr",
        "iot:RegisterThing",
        "iot:ListAttachedPolicies",
    }


def test_outputs_are_the_contract_keys_with_this_environments_names(dev):
    outputs = dev["Outputs"]
    role_id, _ = _device_role(dev)
    alias_id, _ = _only(dev, "AWS::IoT::RoleAlias")
    policy_id, _ = _only(dev, "AWS::IAM::ManagedPolicy")

    assert set(outputs) == OUTPUT_KEYS
    assert outputs["RoleAliasName"]["Value"] == "DeviceTrust-dev-laptop"
    assert outputs["RoleAliasArn"]["Value"] == {"Fn::GetAtt": [alias_id, "RoleAliasArn"]}
    assert outputs["DeviceRoleArn"]["Value"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert outputs["DevicePolicyName"]["Value"] == "DeviceTrust-dev-device"
    assert outputs["ProvisioningTemplateName"]["Value"] == "DeviceTrust-dev-laptop"
    assert outputs["ThingGroupName"]["Value"] == "DeviceTrust-dev"
    assert outputs["ThingTypeName"]["Value"] == "DeviceTrustLaptop-dev"
    assert outputs["ProvisionerPolicyArn"]["Value"] == {"Ref": policy_id}


# --- environments ---------------------------------------------------------------------------------


def test_each_environment_is_a_devicetrust_stack_in_its_account_and_region(shipped):
    expected = {
        "local": "aws://123456789012/us-east-1",
        "dev": "aws://111111111111/us-east-1",
        "staging": "aws://222222222222/us-east-1",
        "prod": "aws://333333333333/us-east-1",
    }
    for env, where in expected.items():
        artifact = shipped.assembly.get_stack_by_name(f"DeviceTrust-{env}")
        assert artifact.environment.name == where


def test_every_environment_stack_has_the_same_shape(shipped):
    shapes = {}
    for env in ENVIRONMENTS:
        template = shipped.template(f"DeviceTrust-{env}").template
        shapes[env] = sorted((logical_id, resource["Type"]) for logical_id, resource in template["Resources"].items())

    assert all(shape == shapes["dev"] for shape in shapes.values())


def test_local_template_holds_only_types_the_stand_in_deploys(local_template):
    template = local_template.template

    assert {resource["Type"] for resource in template["Resources"].values()} == LOCAL_ALLOWED_TYPES
    assert set(template) <= {"Description", "Resources", "Outputs"}
    assert local_template.path.name == "DeviceTrust-local.template.json"


def test_local_stack_needs_no_bootstrap(shipped):
    artifact = shipped.assembly.get_stack_by_name("DeviceTrust-local")
    bootstrapped = shipped.assembly.get_stack_by_name("DeviceTrust-dev")

    assert artifact.requires_bootstrap_stack_version is None
    assert [d.id for d in artifact.dependencies if d.id.endswith(".assets")] == []
    assert "Parameters" not in artifact.template and "Rules" not in artifact.template
    # The contrast: a real environment's stack checks the bootstrap version.
    assert bootstrapped.requires_bootstrap_stack_version is not None
    assert "BootstrapVersion" in bootstrapped.template["Parameters"]


def test_role_alias_refuses_a_duration_longer_than_the_role_session():
    import aws_cdk as cdk

    from stacks.device_trust_stack import DeviceTrustStack
    from stacks.errors import ConfigError

    with pytest.raises(ConfigError, match="credential duration 7200s exceeds the role's maximum session duration 3600s"):
        DeviceTrustStack(
            cdk.App(),
            "Bare",
            environment_name="test",
            credential_duration_seconds=7200,
            max_session_duration_seconds=3600,
        )


# --- checks over every synthesized template -------------------------------------------------------


def test_cfn_lint_reports_no_error_and_no_warning_on_any_template(shipped):
    paths = shipped.template_paths()
    names = {path.name for path in paths}

    assert {f"DeviceTrust-{env}.template.json" for env in ENVIRONMENTS} <= names
    assert "DeviceTrust-Pipeline.template.json" in names
    assert len([path for path in paths if "assembly-DeviceTrust-Pipeline-" in str(path)]) == 3
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "parseable", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_cdk_nag_aws_solutions_passes_with_every_finding_acknowledged(shipped):
    # The module fixture synthesized with AwsSolutionsChecks registered: any unacknowledged
    # finding would have raised ValidationFailed. The report must list no violation.
    report = json.loads((shipped.outdir / "validation-report.json").read_text())

    assert [plugin for plugin in report["pluginReports"] if plugin.get("violations")] == []


def test_cdk_nag_stops_synthesis_on_an_unacknowledged_wildcard(tmp_path):
    context = cdk_json_context()
    context["deviceTrust"]["environments"]["dev"]["rolePolicyStatements"] = [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::corp-laptops/*"}
    ]

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synthesize_app(tmp_path, context=context, env="dev")

    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {violation["ruleName"] for plugin in report["pluginReports"] for violation in plugin["violations"]}
    assert rules == {"AwsSolutions-IAM5[Resource::arn:aws:s3:::corp-laptops/*]"}


def test_every_cdk_nag_acknowledgement_sits_on_a_resource_construct_with_a_rule_id_and_a_reason(shipped):
    import aws_cdk as cdk

    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledgements = [
        (construct, rule, reason)
        for stack in shipped.stacks
        for construct in stack.node.find_all()
        for entry in construct.node.metadata
        if entry.type == key
        for rule, reason in entry.data.items()
    ]

    assert acknowledgements
    for construct, rule, reason in acknowledgements:
        assert not isinstance(construct, (cdk.Stack, cdk.Stage)), f"{rule} acknowledged for a whole stack"
        assert rule.removeprefix("Annotation::").startswith("AwsSolutions-"), rule
        assert len(reason) >= 40, f"{rule}: reason too thin: {reason!r}"
