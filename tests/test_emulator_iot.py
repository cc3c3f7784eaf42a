"""The stand-in's IoT control plane, through boto3 over HTTP."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from tests.fixtures.emulator import make_key_and_csr


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def csr_for(key, common_name: str = "laptop") -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Corp"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def iot(emulator):
    return emulator.client("iot")


# ---------------------------------------------------------------- CreateCertificateFromCsr


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: ec.generate_private_key(ec.SECP521R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["ec-p256", "ec-p384", "ec-p521", "rsa-2048"],
)
def test_certificate_from_csr_is_signed_by_stand_in_ca_for_the_csr_key(iot, emulator, make_key):
    key = make_key()
    answer = iot.create_certificate_from_csr(certificateSigningRequest=csr_for(key, "laptop-42"), setAsActive=True)

    cert = x509.load_pem_x509_certificate(answer["certificatePem"].encode())
    ca = x509.load_pem_x509_certificate(emulator.ca_file.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "laptop-42"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example Corp"
    assert answer["certificateId"] == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert answer["certificateArn"] == f"arn:aws:iot:us-east-1:123456789012:cert/{answer['certificateId']}"


@pytest.mark.parametrize("set_as_active, expected", [(True, "ACTIVE"), (False, "INACTIVE")])
def test_certificate_from_csr_honours_set_as_active_both_ways(iot, set_as_active, expected):
    _, csr = make_key_and_csr()
    answer = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=set_as_active)
    description = iot.describe_certificate(certificateId=answer["certificateId"])["certificateDescription"]
    assert description["status"] == expected


def test_certificate_from_csr_defaults_to_inactive(iot):
    _, csr = make_key_and_csr()
    answer = iot.create_certificate_from_csr(certificateSigningRequest=csr)
    assert iot.describe_certificate(certificateId=answer["certificateId"])["certificateDescription"]["status"] == "INACTIVE"


@pytest.mark.parametrize(
    "csr",
    [
        "not a csr",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        csr_for(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        csr_for(ec.generate_private_key(ec.SECP256K1())),
        csr_for(ed25519.Ed25519PrivateKey.generate()),
    ],
    ids=["garbage", "bad-base64", "rsa-1024", "ec-secp256k1", "ed25519"],
)
def test_certificate_from_bad_or_weak_csr_is_invalid_request_400(iot, csr):
    before = len(iot.list_certificates()["certificates"])
    with pytest.raises(ClientError) as excinfo:
        iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=True)
    assert error_of(excinfo) == ("InvalidRequestException", 400)
    assert len(iot.list_certificates()["certificates"]) == before


# ---------------------------------------------------------------- UpdateCertificate


def new_certificate(iot, active: bool = True) -> str:
    _, csr = make_key_and_csr()
    return iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=active)["certificateId"]


def status_of(iot, certificate_id: str) -> str:
    return iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]


def test_update_certificate_moves_between_active_and_inactive(iot):
    certificate_id = new_certificate(iot)
    iot.update_certificate(certificateId=certificate_id, newStatus="INACTIVE")
    assert status_of(iot, certificate_id) == "INACTIVE"
    iot.update_certificate(certificateId=certificate_id, newStatus="ACTIVE")
    assert status_of(iot, certificate_id) == "ACTIVE"


@pytest.mark.parametrize("new_status", ["ACTIVE", "INACTIVE"])
def test_revoked_certificate_cannot_change_status_again(iot, new_status):
    certificate_id = new_certificate(iot)
    iot.update_certificate(certificateId=certificate_id, newStatus="REVOKED")
    with pytest.raises(ClientError) as excinfo:
        iot.update_certificate(certificateId=certificate_id, newStatus=new_status)
    assert error_of(excinfo) == ("CertificateStateException", 406)
    assert status_of(iot, certificate_id) == "REVOKED"


@pytest.mark.parametrize("new_status", ["ENABLED", "active", "PENDING_TRANSFER", "PENDING_ACTIVATION"])
def test_update_certificate_rejects_unknown_or_unsettable_status(iot, new_status):
    certificate_id = new_certificate(iot)
    with pytest.raises(ClientError) as excinfo:
        iot.update_certificate(certificateId=certificate_id, newStatus=new_status)
    assert error_of(excinfo) == ("InvalidRequestException", 400)
    assert status_of(iot, certificate_id) == "ACTIVE"


def test_deprecated_register_inactive_is_accepted_and_leaves_the_certificate_unusable_until_activated(iot):
    certificate_id = new_certificate(iot)
    iot.update_certificate(certificateId=certificate_id, newStatus="REGISTER_INACTIVE")
    assert status_of(iot, certificate_id) == "REGISTER_INACTIVE"
    iot.update_certificate(certificateId=certificate_id, newStatus="ACTIVE")
    assert status_of(iot, certificate_id) == "ACTIVE"


def test_update_of_unknown_certificate_is_not_found(iot):
    with pytest.raises(ClientError) as excinfo:
        iot.update_certificate(certificateId="0" * 64, newStatus="INACTIVE")
    assert error_of(excinfo)[0] == "ResourceNotFoundException"


# ---------------------------------------------------------------- DescribeEndpoint


def test_credential_provider_endpoint_is_the_stand_in_and_stable(iot, emulator):
    first = iot.describe_endpoint(endpointType="iot:CredentialProvider")["endpointAddress"]
    second = iot.describe_endpoint(endpointType="iot:CredentialProvider")["endpointAddress"]
    assert first == second == emulator.credentials_endpoint
    assert first.startswith("localhost:")


def test_data_endpoint_is_stable_across_calls(iot):
    assert (
        iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
        == iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    )


# ---------------------------------------------------------------- provisioning templates

TEMPLATE_ROLE = "arn:aws:iam::123456789012:role/provisioning"


def template_body(thing_type: str | None, group: str | None, policy: str | None) -> str:
    thing_props: dict = {
        "ThingName": {"Ref": "ThingName"},
        "AttributePayload": {
            "owner": {"Ref": "Owner"},
            "label": {"Fn::Join": ["/", [{"Ref": "Owner"}, {"Ref": "ThingName"}]]},
        },
    }
    if thing_type:
        thing_props["ThingTypeName"] = thing_type
    if group:
        thing_props["ThingGroups"] = [group]
    resources: dict = {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": thing_props,
            "OverrideSettings": {"AttributePayload": "MERGE", "ThingTypeName": "REPLACE", "ThingGroups": "DO_NOTHING"},
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
    }
    if policy:
        resources["policy"] = {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": policy}}
    return json.dumps(
        {
            "Parameters": {
                "ThingName": {"Type": "String"},
                "AWS::IoT::Certificate::Id": {"Type": "String"},
                "Owner": {"Type": "String", "Default": "unassigned"},
            },
            "Resources": resources,
        }
    )


def test_provisioning_template_create_describe_list_update_delete(iot):
    name = unique("tpl")
    body = template_body(None, None, None)
    created = iot.create_provisioning_template(
        templateName=name, templateBody=body, provisioningRoleArn=TEMPLATE_ROLE, enabled=True, description="laptops"
    )
    assert created["templateArn"] == f"arn:aws:iot:us-east-1:123456789012:provisioningtemplate/{name}"
    assert created["defaultVersionId"] == 1

    described = iot.describe_provisioning_template(templateName=name)
    assert json.loads(described["templateBody"]) == json.loads(body)
    assert described["enabled"] is True
    assert described["description"] == "laptops"
    assert described["provisioningRoleArn"] == TEMPLATE_ROLE
    assert described["type"] == "FLEET_PROVISIONING"

    assert name in [t["templateName"] for t in iot.list_provisioning_templates()["templates"]]

    iot.update_provisioning_template(templateName=name, enabled=False, description="retired")
    described = iot.describe_provisioning_template(templateName=name)
    assert (described["enabled"], described["description"]) == (False, "retired")

    new_body = template_body(None, None, None).replace("unassigned", "nobody")
    version = iot.create_provisioning_template_version(templateName=name, templateBody=new_body, setAsDefault=True)
    assert (version["versionId"], version["isDefaultVersion"]) == (2, True)
    assert "nobody" in iot.describe_provisioning_template(templateName=name)["templateBody"]
    assert [v["versionId"] for v in iot.list_provisioning_template_versions(templateName=name)["versions"]] == [1, 2]

    iot.delete_provisioning_template(templateName=name)
    with pytest.raises(ClientError) as excinfo:
        iot.describe_provisioning_template(templateName=name)
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)


def test_provisioning_template_name_is_unique(iot):
    name = unique("tpl")
    iot.create_provisioning_template(templateName=name, templateBody=template_body(None, None, None), provisioningRoleArn=TEMPLATE_ROLE)
    with pytest.raises(ClientError) as excinfo:
        iot.create_provisioning_template(templateName=name, templateBody=template_body(None, None, None), provisioningRoleArn=TEMPLATE_ROLE)
    assert error_of(excinfo) == ("ResourceAlreadyExistsException", 409)


@pytest.mark.parametrize("body", ["{not json", json.dumps({"Resources": {}}), json.dumps({"Resources": {"x": {"Type": "AWS::S3::Bucket"}}})])
def test_provisioning_template_with_invalid_body_is_refused(iot, body):
    with pytest.raises(ClientError) as excinfo:
        iot.create_provisioning_template(templateName=unique("tpl"), templateBody=body, provisioningRoleArn=TEMPLATE_ROLE)
    assert error_of(excinfo) == ("InvalidRequestException", 400)


# ---------------------------------------------------------------- RegisterThing


@pytest.fixture()
def registry(iot):
    """A thing type, group and policy like the stack's, with unique names."""
    names = {"type": unique("type"), "group": unique("group"), "policy": unique("policy")}
    iot.create_thing_type(thingTypeName=names["type"])
    iot.create_thing_group(thingGroupName=names["group"])
    iot.create_policy(
        policyName=names["policy"],
        policyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:AssumeRoleWithCertificate", "Resource": "*"}]}),
    )
    return names


def test_register_thing_creates_thing_attaches_certificate_and_policy(iot, registry):
    certificate_id = new_certificate(iot, active=False)
    thing_name = unique("laptop")
    body = template_body(registry["type"], registry["group"], registry["policy"])

    answer = iot.register_thing(templateBody=body, parameters={"ThingName": thing_name, "AWS::IoT::Certificate::Id": certificate_id, "Owner": "alice"})

    certificate_arn = f"arn:aws:iot:us-east-1:123456789012:cert/{certificate_id}"
    assert answer["resourceArns"] == {
        "thing": f"arn:aws:iot:us-east-1:123456789012:thing/{thing_name}",
        "certificate": certificate_arn,
    }
    description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    assert answer["certificatePem"] == description["certificatePem"]
    assert description["status"] == "ACTIVE"
    thing = iot.describe_thing(thingName=thing_name)
    assert thing["thingTypeName"] == registry["type"]
    assert thing["attributes"] == {"owner": "alice", "label": f"alice/{thing_name}"}
    assert iot.list_thing_principals(thingName=thing_name)["principals"] == [certificate_arn]
    assert [p["policyName"] for p in iot.list_attached_policies(target=certificate_arn)["policies"]] == [registry["policy"]]
    assert iot.list_thing_groups_for_thing(thingName=thing_name)["thingGroups"][0]["groupName"] == registry["group"]


def test_register_thing_uses_parameter_defaults(iot, registry):
    certificate_id = new_certificate(iot)
    thing_name = unique("laptop")
    iot.register_thing(
        templateBody=template_body(None, None, None),
        parameters={"ThingName": thing_name, "AWS::IoT::Certificate::Id": certificate_id},
    )
    assert iot.describe_thing(thingName=thing_name)["attributes"]["owner"] == "unassigned"


def test_register_thing_again_merges_attributes_of_existing_thing(iot, registry):
    thing_name = unique("laptop")
    body = template_body(registry["type"], registry["group"], registry["policy"])
    first = new_certificate(iot)
    iot.register_thing(templateBody=body, parameters={"ThingName": thing_name, "AWS::IoT::Certificate::Id": first, "Owner": "alice"})
    second = new_certificate(iot)
    iot.register_thing(templateBody=body, parameters={"ThingName": thing_name, "AWS::IoT::Certificate::Id": second, "Owner": "bob"})
    assert iot.describe_thing(thingName=thing_name)["attributes"]["owner"] == "bob"
    assert len(iot.list_thing_principals(thingName=thing_name)["principals"]) == 2


def snapshot(iot) -> tuple:
    things = sorted(t["thingName"] for t in iot.list_things()["things"])
    certs = sorted((c["certificateId"], c["status"]) for c in iot.list_certificates()["certificates"])
    return things, certs


@pytest.mark.parametrize(
    "breakage",
    ["missing-parameter", "missing-policy", "missing-thing-type", "missing-group", "missing-certificate", "bad-template", "unsupported-function"],
)
def test_register_thing_that_cannot_complete_creates_nothing(iot, registry, breakage):
    certificate_id = new_certificate(iot, active=False)
    thing_name = unique("laptop")
    parameters = {"ThingName": thing_name, "AWS::IoT::Certificate::Id": certificate_id}
    kwargs = {"thing_type": registry["type"], "group": registry["group"], "policy": registry["policy"]}
    if breakage == "missing-parameter":
        del parameters["ThingName"]
    elif breakage == "missing-policy":
        kwargs["policy"] = "no-such-policy"
    elif breakage == "missing-thing-type":
        kwargs["thing_type"] = "NoSuchType"
    elif breakage == "missing-group":
        kwargs["group"] = "no-such-group"
    elif breakage == "missing-certificate":
        parameters["AWS::IoT::Certificate::Id"] = "f" * 64
    body = template_body(kwargs["thing_type"], kwargs["group"], kwargs["policy"])
    if breakage == "bad-template":
        body = body[:-5]
    elif breakage == "unsupported-function":
        body = body.replace('{"Ref": "Owner"}', '{"Fn::GetAtt": ["x", "y"]}', 1)
    before = snapshot(iot)

    with pytest.raises(ClientError) as excinfo:
        iot.register_thing(templateBody=body, parameters=parameters)

    assert error_of(excinfo) == ("InvalidRequestException", 400)
    assert snapshot(iot) == before
    certificate_arn = f"arn:aws:iot:us-east-1:123456789012:cert/{certificate_id}"
    assert iot.list_attached_policies(target=certificate_arn)["policies"] == []


# ---------------------------------------------------------------- DeleteCertificate


def test_active_certificate_cannot_be_deleted(iot):
    certificate_id = new_certificate(iot)
    with pytest.raises(ClientError) as excinfo:
        iot.delete_certificate(certificateId=certificate_id)
    assert error_of(excinfo) == ("CertificateStateException", 406)


def test_force_delete_detaches_policies_and_leaves_other_deletions_working(iot, registry):
    first, second = new_certificate(iot, active=False), new_certificate(iot, active=False)
    for certificate_id in (first, second):
        iot.attach_policy(policyName=registry["policy"], target=f"arn:aws:iot:us-east-1:123456789012:cert/{certificate_id}")
    with pytest.raises(ClientError) as excinfo:
        iot.delete_certificate(certificateId=first)
    assert error_of(excinfo) == ("DeleteConflictException", 409)

    iot.delete_certificate(certificateId=first, forceDelete=True)
    iot.delete_certificate(certificateId=second, forceDelete=True)

    targets = iot.list_targets_for_policy(policyName=registry["policy"])["targets"]
    assert not [t for t in targets if first in t or second in t]


# ---------------------------------------------------------------- a client we did not write


def test_aws_cli_reaches_the_stand_in_through_aws_endpoint_url(emulator):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(emulator.env)
    result = subprocess.run(
        [sys.executable, "-m", "awscli", "iot", "describe-endpoint", "--endpoint-type", "iot:CredentialProvider", "--output", "json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"endpointAddress": emulator.credentials_endpoint}


def test_deleted_thing_leaves_its_thing_groups(iot, registry):
    thing_name = unique("laptop")
    iot.create_thing(thingName=thing_name)
    iot.add_thing_to_thing_group(thingGroupName=registry["group"], thingName=thing_name)
    assert thing_name in iot.list_things_in_thing_group(thingGroupName=registry["group"])["things"]

    iot.delete_thing(thingName=thing_name)

    assert thing_name not in iot.list_things_in_thing_group(thingGroupName=registry["group"])["things"]


# ---------------------------------------------------------------- RegisterThing: the rest of the template language


def register(iot, resources: dict, parameters: dict, mappings: dict | None = None, extra_parameters: dict | None = None):
    template: dict = {
        "Parameters": {"AWS::IoT::Certificate::Id": {"Type": "String"}, "ThingName": {"Type": "String"}, **(extra_parameters or {})},
        "Resources": resources,
    }
    if mappings is not None:
        template["Mappings"] = mappings
    return iot.register_thing(templateBody=json.dumps(template), parameters=parameters)


CERTIFICATE_BY_ID = {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}}}


def test_register_thing_activates_a_certificate_whose_template_omits_status(iot):
    certificate_id = new_certificate(iot, active=False)
    register(
        iot,
        {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "ThingName"}}}, "certificate": CERTIFICATE_BY_ID},
        {"ThingName": unique("laptop"), "AWS::IoT::Certificate::Id": certificate_id},
    )
    assert status_of(iot, certificate_id) == "ACTIVE"


def test_register_thing_keeps_a_certificate_inactive_when_the_template_says_so(iot):
    certificate_id = new_certificate(iot, active=False)
    certificate = {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "INACTIVE"}}
    register(iot, {"certificate": certificate}, {"ThingName": "unused", "AWS::IoT::Certificate::Id": certificate_id})
    assert status_of(iot, certificate_id) == "INACTIVE"


def test_register_thing_evaluates_select_split_find_in_map_and_sub(iot):
    certificate_id = new_certificate(iot, active=False)
    thing_name = unique("laptop")
    thing = {
        "Type": "AWS::IoT::Thing",
        "Properties": {
            "ThingName": {"Fn::Select": ["1", {"Fn::Split": ["/", {"Fn::Join": ["/", ["fleet", {"Ref": "ThingName"}]]}]}]},
            "AttributePayload": {
                "vendor": {"Fn::Select": [0, {"Fn::Split": ["-", {"Ref": "Serial"}]}]},
                "bucket": {"Fn::FindInMap": ["Sites", {"Ref": "Site"}, "Bucket"]},
                "label": {"Fn::Sub": "${Site}:${ThingName}"},
                "owner": {"Fn::Sub": ["${Who} ${!Literal}", {"Who": {"Fn::FindInMap": ["Sites", {"Ref": "Site"}, "Owner"]}}]},
            },
        },
    }
    answer = register(
        iot,
        {"thing": thing, "certificate": CERTIFICATE_BY_ID},
        {"ThingName": thing_name, "AWS::IoT::Certificate::Id": certificate_id, "Serial": "acme-1234-x"},
        mappings={"Sites": {"Berlin": {"Bucket": "eu-devices", "Owner": "it-berlin"}, "Austin": {"Bucket": "us-devices", "Owner": "it-austin"}}},
        extra_parameters={"Serial": {"Type": "String"}, "Site": {"Type": "String", "Default": "Berlin"}},
    )
    assert answer["resourceArns"]["thing"].endswith(f":thing/{thing_name}")
    assert iot.describe_thing(thingName=thing_name)["attributes"] == {
        "vendor": "acme",
        "bucket": "eu-devices",
        "label": f"Berlin:{thing_name}",
        "owner": "it-berlin ${Literal}",
    }


@pytest.mark.parametrize(
    "value",
    [
        {"Fn::Select": [5, {"Fn::Split": ["-", "a-b"]}]},
        {"Fn::Select": ["x", ["a"]]},
        {"Fn::Split": ["-", ["not", "a", "string"]]},
        {"Fn::FindInMap": ["Sites", "Paris", "Bucket"]},
        {"Fn::FindInMap": ["NoSuchMap", "Berlin", "Bucket"]},
        {"Fn::Sub": "${NotDeclared}"},
    ],
    ids=["select-out-of-range", "select-bad-index", "split-of-list", "map-missing-key", "map-missing", "sub-undeclared"],
)
def test_register_thing_with_an_intrinsic_that_cannot_resolve_creates_nothing(iot, value):
    certificate_id = new_certificate(iot, active=False)
    thing_name = unique("laptop")
    thing = {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "ThingName"}, "AttributePayload": {"x": value}}}
    before = snapshot(iot)
    with pytest.raises(ClientError) as excinfo:
        register(
            iot,
            {"thing": thing, "certificate": CERTIFICATE_BY_ID},
            {"ThingName": thing_name, "AWS::IoT::Certificate::Id": certificate_id},
            mappings={"Sites": {"Berlin": {"Bucket": "eu-devices"}}},
        )
    assert error_of(excinfo) == ("InvalidRequestException", 400)
    assert snapshot(iot) == before


def test_register_thing_names_an_inline_policy_after_the_sha256_of_its_document(iot):
    document = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": unique("arn:aws:iot:us-east-1:123456789012:client/x")}]}
    )
    expected_name = hashlib.sha256(document.encode()).hexdigest()
    policy = {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": document}}
    arns = []
    for _ in range(2):
        certificate_id = new_certificate(iot, active=False)
        answer = register(
            iot,
            {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "ThingName"}}}, "certificate": CERTIFICATE_BY_ID, "policy": policy},
            {"ThingName": unique("laptop"), "AWS::IoT::Certificate::Id": certificate_id},
        )
        arns.append(f"arn:aws:iot:us-east-1:123456789012:cert/{certificate_id}")
        assert answer["resourceArns"]["policy"] == f"arn:aws:iot:us-east-1:123456789012:policy/{expected_name}"

    assert json.loads(iot.get_policy(policyName=expected_name)["policyDocument"]) == json.loads(document)
    for certificate_arn in arns:
        assert [p["policyName"] for p in iot.list_attached_policies(target=certificate_arn)["policies"]] == [expected_name]
    assert sorted(iot.list_targets_for_policy(policyName=expected_name)["targets"]) == sorted(arns)


# ---------------------------------------------------------------- RegisterThing: OverrideSettings FAIL


@pytest.fixture()
def existing_thing(iot, registry):
    """A registered thing with a type, one group and one attribute, and the template that made it."""
    other_type, other_group = unique("type"), unique("group")
    iot.create_thing_type(thingTypeName=other_type)
    iot.create_thing_group(thingGroupName=other_group)
    thing_name = unique("laptop")
    properties = {
        "ThingName": {"Ref": "ThingName"},
        "ThingTypeName": registry["type"],
        "ThingGroups": [registry["group"]],
        "AttributePayload": {"owner": "alice"},
    }
    register(
        iot,
        {"thing": {"Type": "AWS::IoT::Thing", "Properties": properties}, "certificate": CERTIFICATE_BY_ID},
        {"ThingName": thing_name, "AWS::IoT::Certificate::Id": new_certificate(iot, active=False)},
    )
    return {"name": thing_name, "properties": properties, "other_type": other_type, "other_group": other_group, **registry}


def thing_state(iot, thing_name: str) -> tuple:
    thing = iot.describe_thing(thingName=thing_name)
    groups = sorted(g["groupName"] for g in iot.list_thing_groups_for_thing(thingName=thing_name)["thingGroups"])
    principals = sorted(iot.list_thing_principals(thingName=thing_name)["principals"])
    return thing.get("thingTypeName"), thing["attributes"], groups, principals


@pytest.mark.parametrize("prop", ["AttributePayload", "ThingTypeName", "ThingGroups"])
def test_override_fail_refuses_to_change_an_existing_thing_and_changes_nothing(iot, existing_thing, prop):
    changed = dict(existing_thing["properties"])
    changed[prop] = {
        "AttributePayload": {"owner": "mallory"},
        "ThingTypeName": existing_thing["other_type"],
        "ThingGroups": [existing_thing["other_group"]],
    }[prop]
    thing = {"Type": "AWS::IoT::Thing", "Properties": changed, "OverrideSettings": {"AttributePayload": "MERGE", prop: "FAIL"}}
    policy = {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": existing_thing["policy"]}}
    certificate_id = new_certificate(iot, active=False)
    thing_before = thing_state(iot, existing_thing["name"])
    before = snapshot(iot)

    with pytest.raises(ClientError) as excinfo:
        register(
            iot,
            {"thing": thing, "certificate": CERTIFICATE_BY_ID, "policy": policy},
            {"ThingName": existing_thing["name"], "AWS::IoT::Certificate::Id": certificate_id},
        )

    assert error_of(excinfo) == ("ConflictingResourceUpdateException", 409)
    assert prop in excinfo.value.response["Error"]["Message"]
    assert thing_state(iot, existing_thing["name"]) == thing_before
    assert snapshot(iot) == before
    certificate_arn = f"arn:aws:iot:us-east-1:123456789012:cert/{certificate_id}"
    assert iot.list_attached_policies(target=certificate_arn)["policies"] == []


def test_override_fail_lets_an_unchanged_existing_thing_register_another_certificate(iot, existing_thing):
    overrides = {"AttributePayload": "FAIL", "ThingTypeName": "FAIL", "ThingGroups": "FAIL"}
    thing = {"Type": "AWS::IoT::Thing", "Properties": existing_thing["properties"], "OverrideSettings": overrides}
    certificate_id = new_certificate(iot, active=False)
    register(iot, {"thing": thing, "certificate": CERTIFICATE_BY_ID}, {"ThingName": existing_thing["name"], "AWS::IoT::Certificate::Id": certificate_id})
    assert f"arn:aws:iot:us-east-1:123456789012:cert/{certificate_id}" in thing_state(iot, existing_thing["name"])[3]


def test_override_fail_does_not_apply_to_a_new_thing(iot, registry):
    thing_name = unique("laptop")
    properties = {"ThingName": {"Ref": "ThingName"}, "ThingTypeName": registry["type"], "AttributePayload": {"owner": "alice"}}
    overrides = {"AttributePayload": "FAIL", "ThingTypeName": "FAIL", "ThingGroups": "FAIL"}
    register(
        iot,
        {"thing": {"Type": "AWS::IoT::Thing", "Properties": properties, "OverrideSettings": overrides}, "certificate": CERTIFICATE_BY_ID},
        {"ThingName": thing_name, "AWS::IoT::Certificate::Id": new_certificate(iot, active=False)},
    )
    assert iot.describe_thing(thingName=thing_name)["thingTypeName"] == registry["type"]


def test_override_merge_is_refused_for_thing_type_name(iot):
    thing = {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "ThingName"}}, "OverrideSettings": {"ThingTypeName": "MERGE"}}
    with pytest.raises(ClientError) as excinfo:
        register(iot, {"thing": thing, "certificate": CERTIFICATE_BY_ID}, {"ThingName": unique("laptop"), "AWS::IoT::Certificate::Id": new_certificate(iot)})
    assert error_of(excinfo) == ("InvalidRequestException", 400)
