"""The deployed DeviceTrust-local stack in the stand-in carries the whole story with
plain boto3 and TLS: CSR -> certificate -> RegisterThing with the stack's template ->
credentials over mutual TLS -> STS -> revoke -> refused."""

from __future__ import annotations

import uuid

import boto3

from tests.fixtures.emulator import credentials_get, make_key_and_csr, write_client_files


def test_enrolled_laptop_gets_credentials_until_its_certificate_is_revoked(deployed_stack, tmp_path):
    emulator = deployed_stack.emulator
    outputs = deployed_stack.outputs
    iot = emulator.client("iot")
    thing_name = f"laptop-{uuid.uuid4().hex[:8]}"

    key, csr = make_key_and_csr(thing_name)
    certificate = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=False)
    body = iot.describe_provisioning_template(templateName=outputs["ProvisioningTemplateName"])["templateBody"]
    registered = iot.register_thing(
        templateBody=body,
        parameters={"ThingName": thing_name, "AWS::IoT::Certificate::Id": certificate["certificateId"], "Owner": "alice"},
    )
    assert registered["resourceArns"]["certificate"] == certificate["certificateArn"]
    thing = iot.describe_thing(thingName=thing_name)
    assert thing["thingTypeName"] == outputs["ThingTypeName"]
    assert thing["attributes"]["owner"] == "alice"
    groups = iot.list_thing_groups_for_thing(thingName=thing_name)["thingGroups"]
    assert [g["groupName"] for g in groups] == [outputs["ThingGroupName"]]

    cert_path, key_path = write_client_files(tmp_path, registered["certificatePem"], key)
    status, _, answer = credentials_get(emulator, cert_path, key_path, outputs["RoleAliasName"], thing_name)
    assert status == 200, answer
    credentials = answer["credentials"]
    identity = boto3.client(
        "sts",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=credentials["accessKeyId"],
        aws_secret_access_key=credentials["secretAccessKey"],
        aws_session_token=credentials["sessionToken"],
    ).get_caller_identity()
    role_name = outputs["DeviceRoleArn"].rsplit("/", 1)[1]
    assert identity["Arn"] == f"arn:aws:sts::123456789012:assumed-role/{role_name}/{certificate['certificateId']}"

    iot.update_certificate(certificateId=certificate["certificateId"], newStatus="REVOKED")
    status, headers, answer = credentials_get(emulator, cert_path, key_path, outputs["RoleAliasName"], thing_name)
    assert (status, headers["x-amzn-errortype"]) == (403, "AccessDeniedException")
