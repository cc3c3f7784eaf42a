"""CloudFormation in the stand-in: every resource type of the device-trust stack is
created, updated and deleted, and Ref / Fn::GetAtt give what AWS gives."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.fixtures.deployment import deploy_template

ACCOUNT = "123456789012"
PREFIX = "arn:aws:iot:us-east-1:123456789012"


def stack_template(suffix: str, *, duration: int = 900, description: str = "laptops", named: bool = True) -> dict:
    def name(prop: str, value: str) -> dict:
        return {prop: value} if named else {}

    provisioning_body = {
        "Fn::Join": [
            "",
            [
                '{"Parameters":{"ThingName":{"Type":"String"},"AWS::IoT::Certificate::Id":{"Type":"String"}},'
                '"Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"ThingName"},"ThingTypeName":"',
                {"Ref": "ThingType"},
                '","ThingGroups":["',
                {"Ref": "ThingGroup"},
                '"]}},"certificate":{"Type":"AWS::IoT::Certificate","Properties":{"CertificateId":{"Ref":"AWS::IoT::Certificate::Id"},"Status":"ACTIVE"}},'
                '"policy":{"Type":"AWS::IoT::Policy","Properties":{"PolicyName":"',
                {"Ref": "DevicePolicy"},
                '"}}}}',
            ],
        ]
    }
    return {
        "Resources": {
            "DeviceRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    **name("RoleName", f"device-{suffix}"),
                    "MaxSessionDuration": 3600,
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {"Effect": "Allow", "Principal": {"Service": "credentials.iot.amazonaws.com"}, "Action": "sts:AssumeRole"}
                        ],
                    },
                },
            },
            "DeviceRolePolicy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyName": "device-access",
                    "Roles": [{"Ref": "DeviceRole"}],
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}],
                    },
                },
            },
            "ProvisionerPolicy": {
                "Type": "AWS::IAM::ManagedPolicy",
                "Properties": {
                    **name("ManagedPolicyName", f"provisioner-{suffix}"),
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "iot:RegisterThing", "Resource": "*"}],
                    },
                },
            },
            "RoleAlias": {
                "Type": "AWS::IoT::RoleAlias",
                "Properties": {
                    **name("RoleAlias", f"alias-{suffix}"),
                    "RoleArn": {"Fn::GetAtt": ["DeviceRole", "Arn"]},
                    "CredentialDurationSeconds": duration,
                },
            },
            "DevicePolicy": {
                "Type": "AWS::IoT::Policy",
                "Properties": {
                    **name("PolicyName", f"device-{suffix}"),
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {"Effect": "Allow", "Action": "iot:AssumeRoleWithCertificate", "Resource": {"Fn::GetAtt": ["RoleAlias", "RoleAliasArn"]}}
                        ],
                    },
                },
            },
            "ThingType": {
                "Type": "AWS::IoT::ThingType",
                "Properties": {**name("ThingTypeName", f"Laptop-{suffix}"), "ThingTypeProperties": {"ThingTypeDescription": "laptop"}},
            },
            "ThingGroup": {
                "Type": "AWS::IoT::ThingGroup",
                "Properties": {
                    **name("ThingGroupName", f"laptops-{suffix}"),
                    "ThingGroupProperties": {"ThingGroupDescription": description},
                },
            },
            "ProvisioningTemplate": {
                "Type": "AWS::IoT::ProvisioningTemplate",
                "Properties": {
                    **name("TemplateName", f"tpl-{suffix}"),
                    "Description": description,
                    "Enabled": True,
                    "ProvisioningRoleArn": {"Fn::GetAtt": ["DeviceRole", "Arn"]},
                    "TemplateBody": provisioning_body,
                },
            },
        },
        "Outputs": {
            "RoleAliasName": {"Value": {"Ref": "RoleAlias"}},
            "RoleAliasArn": {"Value": {"Fn::GetAtt": ["RoleAlias", "RoleAliasArn"]}},
            "DeviceRoleArn": {"Value": {"Fn::GetAtt": ["DeviceRole", "Arn"]}},
            "DevicePolicyName": {"Value": {"Ref": "DevicePolicy"}},
            "DevicePolicyArn": {"Value": {"Fn::GetAtt": ["DevicePolicy", "Arn"]}},
            "ProvisioningTemplateName": {"Value": {"Ref": "ProvisioningTemplate"}},
            "ProvisioningTemplateArn": {"Value": {"Fn::GetAtt": ["ProvisioningTemplate", "TemplateArn"]}},
            "ThingGroupName": {"Value": {"Ref": "ThingGroup"}},
            "ThingGroupArn": {"Value": {"Fn::GetAtt": ["ThingGroup", "Arn"]}},
            "ThingTypeName": {"Value": {"Ref": "ThingType"}},
            "ThingTypeArn": {"Value": {"Fn::GetAtt": ["ThingType", "Arn"]}},
            "ProvisionerPolicyArn": {"Value": {"Ref": "ProvisionerPolicy"}},
        },
    }


def wait(cloudformation, stack_name: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
        assert time.monotonic() < deadline, stack["StackStatus"]
        time.sleep(0.2)


def outputs_of(stack: dict) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def test_every_resource_type_is_created_with_aws_ref_and_getatt_values(emulator):
    suffix = uuid.uuid4().hex[:8]
    deployed = deploy_template(emulator, stack_template(suffix), stack_name=f"cfn-{suffix}")

    assert deployed.outputs == {
        "RoleAliasName": f"alias-{suffix}",
        "RoleAliasArn": f"{PREFIX}:rolealias/alias-{suffix}",
        "DeviceRoleArn": f"arn:aws:iam::{ACCOUNT}:role/device-{suffix}",
        "DevicePolicyName": f"device-{suffix}",
        "DevicePolicyArn": f"{PREFIX}:policy/device-{suffix}",
        "ProvisioningTemplateName": f"tpl-{suffix}",
        "ProvisioningTemplateArn": f"{PREFIX}:provisioningtemplate/tpl-{suffix}",
        "ThingGroupName": f"laptops-{suffix}",
        "ThingGroupArn": f"{PREFIX}:thinggroup/laptops-{suffix}",
        "ThingTypeName": f"Laptop-{suffix}",
        "ThingTypeArn": f"{PREFIX}:thingtype/Laptop-{suffix}",
        "ProvisionerPolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/provisioner-{suffix}",
    }
    iot = emulator.client("iot")
    iam = emulator.client("iam")
    alias = iot.describe_role_alias(roleAlias=f"alias-{suffix}")["roleAliasDescription"]
    assert (alias["roleArn"], alias["credentialDurationSeconds"]) == (f"arn:aws:iam::{ACCOUNT}:role/device-{suffix}", 900)
    policy = json.loads(iot.get_policy(policyName=f"device-{suffix}")["policyDocument"])
    assert policy["Statement"][0]["Resource"] == f"{PREFIX}:rolealias/alias-{suffix}"
    template = iot.describe_provisioning_template(templateName=f"tpl-{suffix}")
    body = json.loads(template["templateBody"])
    assert body["Resources"]["thing"]["Properties"]["ThingGroups"] == [f"laptops-{suffix}"]
    assert body["Resources"]["policy"]["Properties"]["PolicyName"] == f"device-{suffix}"
    assert template["enabled"] is True
    assert iot.describe_thing_group(thingGroupName=f"laptops-{suffix}")["thingGroupProperties"]["thingGroupDescription"] == "laptops"
    assert iot.describe_thing_type(thingTypeName=f"Laptop-{suffix}")["thingTypeProperties"]["thingTypeDescription"] == "laptop"
    assert iam.get_role_policy(RoleName=f"device-{suffix}", PolicyName="device-access")["PolicyDocument"]
    assert iam.get_policy(PolicyArn=deployed.outputs["ProvisionerPolicyArn"])["Policy"]["PolicyName"] == f"provisioner-{suffix}"
    resources = emulator.client("cloudformation").list_stack_resources(StackName=f"cfn-{suffix}")["StackResourceSummaries"]
    assert {r["ResourceStatus"] for r in resources} == {"CREATE_COMPLETE"}
    assert len(resources) == 8


def test_template_deployed_by_the_stack_registers_a_thing(emulator):
    suffix = uuid.uuid4().hex[:8]
    deploy_template(emulator, stack_template(suffix), stack_name=f"cfn-{suffix}")
    iot = emulator.client("iot")
    from tests.fixtures.emulator import make_key_and_csr

    _, csr = make_key_and_csr()
    cert = iot.create_certificate_from_csr(certificateSigningRequest=csr)
    body = iot.describe_provisioning_template(templateName=f"tpl-{suffix}")["templateBody"]
    answer = iot.register_thing(templateBody=body, parameters={"ThingName": f"laptop-{suffix}", "AWS::IoT::Certificate::Id": cert["certificateId"]})
    assert answer["resourceArns"]["thing"] == f"{PREFIX}:thing/laptop-{suffix}"
    assert iot.describe_thing(thingName=f"laptop-{suffix}")["thingTypeName"] == f"Laptop-{suffix}"


def test_resources_without_names_get_generated_names_that_fit_aws_limits(emulator):
    suffix = uuid.uuid4().hex[:8]
    deployed = deploy_template(emulator, stack_template(suffix, named=False), stack_name=f"unnamed-{suffix}")
    template_name = deployed.outputs["ProvisioningTemplateName"]
    assert 1 <= len(template_name) <= 36
    assert emulator.client("iot").describe_provisioning_template(templateName=template_name)["templateName"] == template_name
    assert deployed.outputs["ThingGroupArn"].endswith(f":thinggroup/{deployed.outputs['ThingGroupName']}")


def test_stack_update_changes_alias_duration_and_template_in_place(emulator):
    suffix = uuid.uuid4().hex[:8]
    stack_name = f"cfn-{suffix}"
    deploy_template(emulator, stack_template(suffix), stack_name=stack_name)
    cloudformation = emulator.client("cloudformation")

    cloudformation.update_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(stack_template(suffix, duration=1800, description="all laptops")),
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = wait(cloudformation, stack_name)

    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    iot = emulator.client("iot")
    assert iot.describe_role_alias(roleAlias=f"alias-{suffix}")["roleAliasDescription"]["credentialDurationSeconds"] == 1800
    assert iot.describe_provisioning_template(templateName=f"tpl-{suffix}")["description"] == "all laptops"
    assert iot.describe_thing_group(thingGroupName=f"laptops-{suffix}")["thingGroupProperties"]["thingGroupDescription"] == "all laptops"
    assert outputs_of(stack)["ProvisioningTemplateArn"] == f"{PREFIX}:provisioningtemplate/tpl-{suffix}"


def test_stack_update_through_a_change_set(emulator):
    suffix = uuid.uuid4().hex[:8]
    stack_name = f"cfn-{suffix}"
    deploy_template(emulator, stack_template(suffix), stack_name=stack_name)
    cloudformation = emulator.client("cloudformation")
    cloudformation.create_change_set(
        StackName=stack_name,
        ChangeSetName="raise-duration",
        ChangeSetType="UPDATE",
        TemplateBody=json.dumps(stack_template(suffix, duration=2700)),
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    change_set = cloudformation.describe_change_set(StackName=stack_name, ChangeSetName="raise-duration")
    assert change_set["Status"] == "CREATE_COMPLETE"
    cloudformation.execute_change_set(StackName=stack_name, ChangeSetName="raise-duration")
    assert wait(cloudformation, stack_name)["StackStatus"] == "UPDATE_COMPLETE"
    alias = emulator.client("iot").describe_role_alias(roleAlias=f"alias-{suffix}")["roleAliasDescription"]
    assert alias["credentialDurationSeconds"] == 2700


def test_stack_delete_removes_every_resource(emulator):
    suffix = uuid.uuid4().hex[:8]
    stack_name = f"cfn-{suffix}"
    deploy_template(emulator, stack_template(suffix), stack_name=stack_name)
    cloudformation = emulator.client("cloudformation")

    stack_id = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackId"]
    cloudformation.delete_stack(StackName=stack_name)
    assert wait(cloudformation, stack_id)["StackStatus"] == "DELETE_COMPLETE"
    # As on AWS, a deleted stack is no longer found by its name.
    with pytest.raises(ClientError) as excinfo:
        cloudformation.describe_stacks(StackName=stack_name)
    assert "does not exist" in str(excinfo.value)

    iot = emulator.client("iot")
    iam = emulator.client("iam")
    lookups = [
        lambda: iot.describe_role_alias(roleAlias=f"alias-{suffix}"),
        lambda: iot.get_policy(policyName=f"device-{suffix}"),
        lambda: iot.describe_provisioning_template(templateName=f"tpl-{suffix}"),
        lambda: iot.describe_thing_group(thingGroupName=f"laptops-{suffix}"),
        lambda: iot.describe_thing_type(thingTypeName=f"Laptop-{suffix}"),
        lambda: iam.get_role(RoleName=f"device-{suffix}"),
        lambda: iam.get_policy(PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/provisioner-{suffix}"),
    ]
    for lookup in lookups:
        with pytest.raises(ClientError):
            lookup()


def test_deployed_device_trust_stack_has_every_contract_output(deployed_stack):
    expected = {
        "RoleAliasName", "RoleAliasArn", "DeviceRoleArn", "DevicePolicyName",
        "ProvisioningTemplateName", "ThingGroupName", "ThingTypeName", "ProvisionerPolicyArn",
    }
    assert expected <= set(deployed_stack.outputs)
    outputs = deployed_stack.outputs
    assert outputs["RoleAliasArn"] == f"{PREFIX}:rolealias/{outputs['RoleAliasName']}"
    assert outputs["DeviceRoleArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/")
    assert outputs["ProvisionerPolicyArn"].startswith(f"arn:aws:iam::{ACCOUNT}:policy/")
    iot = deployed_stack.emulator.client("iot")
    assert iot.describe_provisioning_template(templateName=outputs["ProvisioningTemplateName"])["templateBody"]
    assert iot.describe_thing_group(thingGroupName=outputs["ThingGroupName"])["thingGroupName"] == outputs["ThingGroupName"]
    assert iot.describe_thing_type(thingTypeName=outputs["ThingTypeName"])["thingTypeName"] == outputs["ThingTypeName"]
    assert iot.get_policy(policyName=outputs["DevicePolicyName"])["policyName"] == outputs["DevicePolicyName"]


def test_role_update_keeps_max_session_duration_and_trust(emulator):
    suffix = uuid.uuid4().hex[:8]
    stack_name = f"cfn-{suffix}"
    deploy_template(emulator, stack_template(suffix), stack_name=stack_name)
    template = stack_template(suffix)
    template["Resources"]["DeviceRole"]["Properties"]["MaxSessionDuration"] = 7200
    template["Resources"]["DeviceRole"]["Properties"]["Description"] = "laptops' role"
    cloudformation = emulator.client("cloudformation")
    cloudformation.update_stack(StackName=stack_name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_NAMED_IAM"])
    assert wait(cloudformation, stack_name)["StackStatus"] == "UPDATE_COMPLETE"
    role = emulator.client("iam").get_role(RoleName=f"device-{suffix}")["Role"]
    assert role["MaxSessionDuration"] == 7200
    assert role["Description"] == "laptops' role"
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"]["Service"] == "credentials.iot.amazonaws.com"


# ---------------------------------------------------------------- GetAtt values and updates AWS's reference documents


def update_stack(emulator, stack_name: str, template: dict) -> dict:
    cloudformation = emulator.client("cloudformation")
    cloudformation.update_stack(StackName=stack_name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_NAMED_IAM"])
    return wait(cloudformation, stack_name)


def policies_template(suffix: str, action: str = "iot:RegisterThing") -> dict:
    return {
        "Resources": {
            "DevicePolicy": {
                "Type": "AWS::IoT::Policy",
                "Properties": {
                    "PolicyName": f"device-{suffix}",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]},
                },
            },
            "ProvisionerPolicy": {
                "Type": "AWS::IAM::ManagedPolicy",
                "Properties": {
                    "ManagedPolicyName": f"provisioner-{suffix}",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]},
                },
            },
        },
        "Outputs": {
            "DevicePolicyId": {"Value": {"Fn::GetAtt": ["DevicePolicy", "Id"]}},
            "ProvisionerPolicyArn": {"Value": {"Fn::GetAtt": ["ProvisionerPolicy", "PolicyArn"]}},
            "ProvisionerPolicyId": {"Value": {"Fn::GetAtt": ["ProvisionerPolicy", "PolicyId"]}},
            "ProvisionerPolicyVersion": {"Value": {"Fn::GetAtt": ["ProvisionerPolicy", "DefaultVersionId"]}},
        },
    }


def test_getatt_gives_iot_policy_name_as_id_and_managed_policy_arn_id_and_default_version(emulator):
    suffix = uuid.uuid4().hex[:8]
    stack_name = f"cfn-{suffix}"
    deployed = deploy_template(emulator, policies_template(suffix), stack_name=stack_name)
    iam_policy = emulator.client("iam").get_policy(PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/provisioner-{suffix}")["Policy"]

    assert deployed.outputs == {
        "DevicePolicyId": f"device-{suffix}",
        "ProvisionerPolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/provisioner-{suffix}",
        "ProvisionerPolicyId": iam_policy["PolicyId"],
        "ProvisionerPolicyVersion": "v1",
    }

    stack = update_stack(emulator, stack_name, policies_template(suffix, action="iot:DescribeEndpoint"))
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert outputs_of(stack)["ProvisionerPolicyVersion"] == "v2"
    assert outputs_of(stack)["ProvisionerPolicyId"] == iam_policy["PolicyId"]


def template_resource_template(*, name: str | None, template_type: str = "FLEET_PROVISIONING", hook: dict | None = None) -> dict:
    props: dict = {
        "ProvisioningRoleArn": f"arn:aws:iam::{ACCOUNT}:role/provisioning",
        "TemplateBody": json.dumps({"Resources": {"certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": "x"}}}}),
        "TemplateType": template_type,
    }
    if name:
        props["TemplateName"] = name
    if hook:
        props["PreProvisioningHook"] = hook
    return {
        "Resources": {"Template": {"Type": "AWS::IoT::ProvisioningTemplate", "Properties": props}},
        "Outputs": {"TemplateName": {"Value": {"Ref": "Template"}}},
    }


HOOK = {"TargetArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:check-laptop", "PayloadVersion": "2020-04-01"}


def test_provisioning_template_update_adds_and_removes_the_pre_provisioning_hook_in_place(emulator):
    suffix = uuid.uuid4().hex[:8]
    stack_name = f"cfn-{suffix}"
    name = deploy_template(emulator, template_resource_template(name=None), stack_name=stack_name).outputs["TemplateName"]
    iot = emulator.client("iot")
    assert "preProvisioningHook" not in iot.describe_provisioning_template(templateName=name)

    stack = update_stack(emulator, stack_name, template_resource_template(name=None, hook=HOOK))
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert outputs_of(stack)["TemplateName"] == name
    assert iot.describe_provisioning_template(templateName=name)["preProvisioningHook"] == {
        "targetArn": HOOK["TargetArn"],
        "payloadVersion": "2020-04-01",
    }

    stack = update_stack(emulator, stack_name, template_resource_template(name=None))
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert outputs_of(stack)["TemplateName"] == name
    assert "preProvisioningHook" not in iot.describe_provisioning_template(templateName=name)


def test_provisioning_template_type_change_replaces_the_template(emulator):
    suffix = uuid.uuid4().hex[:8]
    stack_name = f"cfn-{suffix}"
    old_name = deploy_template(emulator, template_resource_template(name=None), stack_name=stack_name).outputs["TemplateName"]

    stack = update_stack(emulator, stack_name, template_resource_template(name=None, template_type="JITP"))

    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    new_name = outputs_of(stack)["TemplateName"]
    assert new_name != old_name
    iot = emulator.client("iot")
    assert iot.describe_provisioning_template(templateName=new_name)["type"] == "JITP"
    with pytest.raises(ClientError) as excinfo:
        iot.describe_provisioning_template(templateName=old_name)
    assert excinfo.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_provisioning_template_type_change_of_a_named_template_rolls_the_update_back(emulator):
    suffix = uuid.uuid4().hex[:8]
    stack_name = f"cfn-{suffix}"
    deploy_template(emulator, template_resource_template(name=f"tpl-{suffix}"), stack_name=stack_name)
    cloudformation = emulator.client("cloudformation")

    # The CDK CLI's path: a change set, executed; AWS cannot replace a custom-named resource.
    cloudformation.create_change_set(
        StackName=stack_name,
        ChangeSetName="to-jitp",
        ChangeSetType="UPDATE",
        TemplateBody=json.dumps(template_resource_template(name=f"tpl-{suffix}", template_type="JITP")),
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    cloudformation.execute_change_set(StackName=stack_name, ChangeSetName="to-jitp")
    stack = wait(cloudformation, stack_name)

    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert "custom-named resource requires replacing" in stack["StackStatusReason"]
    assert emulator.client("iot").describe_provisioning_template(templateName=f"tpl-{suffix}")["type"] == "FLEET_PROVISIONING"


def test_update_of_unnamed_template_and_group_keeps_their_generated_names(emulator):
    suffix = uuid.uuid4().hex[:8]
    stack_name = f"unnamed-{suffix}"
    before = deploy_template(emulator, stack_template(suffix, named=False), stack_name=stack_name).outputs
    stack = update_stack(emulator, stack_name, stack_template(suffix, named=False, description="all laptops"))
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    after = outputs_of(stack)
    assert (after["ProvisioningTemplateName"], after["ThingGroupName"]) == (before["ProvisioningTemplateName"], before["ThingGroupName"])
    iot = emulator.client("iot")
    assert iot.describe_provisioning_template(templateName=after["ProvisioningTemplateName"])["description"] == "all laptops"
    assert iot.describe_thing_group(thingGroupName=after["ThingGroupName"])["thingGroupProperties"]["thingGroupDescription"] == "all laptops"
