"""The provisioning template body file: rendered with the environment's names and checked at synth time."""

from __future__ import annotations

import copy
import json

import pytest

from stacks.errors import TemplateBodyError
from stacks.provisioning.body import check_template_body, render_template_body
from stacks.provisioning.template import TEMPLATE_BODY_FILE

NAMES = {
    "thing_type_name": "DeviceTrustLaptop-dev",
    "thing_group_name": "DeviceTrust-dev",
    "device_policy_name": "DeviceTrust-dev-device",
}


@pytest.fixture()
def body() -> dict:
    return render_template_body(TEMPLATE_BODY_FILE.read_text(), **NAMES)


def _resource(body: dict, resource_type: str) -> dict:
    (resource,) = [r for r in body["Resources"].values() if r["Type"] == resource_type]
    return resource


def test_shipped_body_declares_the_parameters_the_provisioner_passes(body):
    parameters = body["Parameters"]

    assert parameters["ThingName"] == {"Type": "String"}
    assert parameters["AWS::IoT::Certificate::Id"] == {"Type": "String"}
    for name in ("Owner", "SerialNumber", "Platform"):
        assert parameters[name]["Type"] == "String"
        assert parameters[name]["Default"]


def test_shipped_body_registers_thing_in_the_environments_type_and_group_with_attributes(body):
    thing = _resource(body, "AWS::IoT::Thing")

    assert thing["Properties"]["ThingName"] == {"Ref": "ThingName"}
    assert thing["Properties"]["ThingTypeName"] == "DeviceTrustLaptop-dev"
    assert thing["Properties"]["ThingGroups"] == ["DeviceTrust-dev"]
    assert thing["Properties"]["AttributePayload"] == {
        "owner": {"Ref": "Owner"},
        "serialNumber": {"Ref": "SerialNumber"},
        "platform": {"Ref": "Platform"},
    }


def test_shipped_body_makes_registering_the_same_laptop_again_idempotent(body):
    overrides = _resource(body, "AWS::IoT::Thing")["OverrideSettings"]

    assert overrides == {"AttributePayload": "MERGE", "ThingTypeName": "REPLACE", "ThingGroups": "DO_NOTHING"}
    assert "FAIL" not in overrides.values()


def test_shipped_body_activates_the_certificate_and_attaches_the_device_policy_by_name(body):
    certificate = _resource(body, "AWS::IoT::Certificate")
    policy = _resource(body, "AWS::IoT::Policy")

    assert certificate["Properties"] == {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}
    assert policy["Properties"] == {"PolicyName": "DeviceTrust-dev-device"}


def test_no_marker_is_left_unfilled(body):
    assert "{{" not in json.dumps(body)


def _broken(body: dict, change) -> dict:
    changed = copy.deepcopy(body)
    change(changed)
    return changed


def _thing(body):
    return next(r for r in body["Resources"].values() if r["Type"] == "AWS::IoT::Thing")


def _cert(body):
    return next(r for r in body["Resources"].values() if r["Type"] == "AWS::IoT::Certificate")


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda b: b["Parameters"].pop("ThingName"), "Parameters: missing 'ThingName', which the provisioner passes to RegisterThing"),
        (lambda b: b["Parameters"].pop("AWS::IoT::Certificate::Id"), "missing 'AWS::IoT::Certificate::Id'"),
        (lambda b: b["Parameters"]["Owner"].pop("Default"), "Parameters.Owner: needs a non-empty Default"),
        (lambda b: b["Parameters"]["Platform"].update(Type="Number"), 'Parameters.Platform: must be an object with "Type": "String"'),
        (lambda b: _thing(b)["OverrideSettings"].update(ThingGroups="FAIL"), "OverrideSettings.ThingGroups: is 'FAIL'; registering the same laptop again must succeed"),
        (lambda b: _thing(b).pop("OverrideSettings"), "OverrideSettings: missing: re-registering an existing laptop would fail"),
        (lambda b: _thing(b)["OverrideSettings"].update(ThingTypeName="MERGE"), "OverrideSettings.ThingTypeName: is 'MERGE'"),
        (lambda b: _thing(b)["Properties"].update(ThingTypeName="Other"), "ThingTypeName: must be this stack's thing type 'DeviceTrustLaptop-dev'"),
        (lambda b: _thing(b)["Properties"].update(ThingGroups=["Elsewhere"]), "ThingGroups: must be a list containing 'DeviceTrust-dev'"),
        (lambda b: _thing(b)["Properties"]["AttributePayload"].update(owner={"Ref": "Ownr"}), "refers to undeclared parameter 'Ownr'"),
        (lambda b: _cert(b)["Properties"].update(Status="INACTIVE"), "Status: is 'INACTIVE'; the laptop's certificate must be ACTIVE"),
        (lambda b: _cert(b)["Properties"].update(CertificateId={"Ref": "ThingName"}), 'CertificateId: must be {"Ref": "AWS::IoT::Certificate::Id"}'),
        (lambda b: b["Resources"].update(extra={"Type": "AWS::IoT::TopicRule", "Properties": {}}), "'AWS::IoT::TopicRule' is not one of"),
        (lambda b: b["Resources"].pop("policy"), "Resources: no AWS::IoT::Policy resource"),
        (lambda b: b["Resources"]["policy"]["Properties"].update(PolicyDocument={}), "must attach the stack's device policy by name only"),
        (lambda b: b.update(Outputs={}), "Outputs: unknown top-level key"),
    ],
)
def test_malformed_body_is_rejected_with_where_and_why(body, change, expected):
    with pytest.raises(TemplateBodyError) as raised:
        check_template_body(_broken(body, change), **NAMES)

    assert expected in str(raised.value)
    assert str(raised.value).startswith("laptop_template.json: ")


def test_body_that_is_not_json_is_rejected_naming_the_file():
    with pytest.raises(TemplateBodyError, match=r"^laptop_template.json: not valid JSON: .*line 1"):
        render_template_body('{"Parameters": ', **NAMES)


def test_unknown_marker_is_rejected_instead_of_left_in_the_body():
    text = TEMPLATE_BODY_FILE.read_text().replace("{{thingGroupName}}", "{{thingGroup}}")

    with pytest.raises(TemplateBodyError, match=r"unknown marker \{\{thingGroup\}\}"):
        render_template_body(text, **NAMES)


def test_body_larger_than_register_thing_accepts_is_rejected(body):
    body["Resources"]["thing"]["Properties"]["AttributePayload"]["note"] = "x" * 11000

    with pytest.raises(TemplateBodyError, match="RegisterThing accepts at most 10240"):
        check_template_body(body, **NAMES)
