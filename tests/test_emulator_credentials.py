"""The stand-in's mutual-TLS credentials endpoint: each AWS rule and its error answer,
over real TLS (ssl + http.client, curl, AWS's own awsiot-credentialhelper)."""

from __future__ import annotations

import datetime
import json
import re
import shutil
import socket
import ssl
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fixtures.emulator import credentials_get, make_key_and_csr, write_client_files

ACCOUNT = "123456789012"
TRUST_CREDENTIALS_PROVIDER = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "credentials.iot.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def alias_arn(name: str) -> str:
    return f"arn:aws:iot:us-east-1:{ACCOUNT}:rolealias/{name}"


def policy_document(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(resource: str, action: str = "iot:AssumeRoleWithCertificate") -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


@dataclass
class Device:
    thing_name: str
    certificate_id: str
    certificate_arn: str
    role_alias: str
    role_name: str
    cert_path: Path
    key_path: Path


@pytest.fixture()
def make_device(emulator, tmp_path):
    """Enroll a device the way the stack and provisioner do, with knobs to break each rule."""
    iot = emulator.client("iot")
    iam = emulator.client("iam")

    def make(
        *,
        statements: list[dict] | None = None,
        attach_policy: bool = True,
        alias_duration: int = 900,
        max_session: int = 3600,
        trust: dict | None = None,
        create_role: bool = True,
        create_alias: bool = True,
        attach_thing: bool = True,
        key: object = None,
    ) -> Device:
        role_alias = unique("alias")
        role_name = unique("role")
        thing_name = unique("laptop")
        role_arn = f"arn:aws:iam::{ACCOUNT}:role/{role_name}"
        if create_role:
            role_arn = iam.create_role(
                RoleName=role_name,
                AssumeRolePolicyDocument=json.dumps(trust or TRUST_CREDENTIALS_PROVIDER),
                MaxSessionDuration=max_session,
            )["Role"]["Arn"]
        if create_alias:
            iot.create_role_alias(roleAlias=role_alias, roleArn=role_arn, credentialDurationSeconds=alias_duration)
        key, csr = make_key_and_csr(thing_name, key)
        cert = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=True)
        if attach_policy:
            policy_name = unique("policy")
            iot.create_policy(policyName=policy_name, policyDocument=policy_document(*(statements or [allow(alias_arn(role_alias))])))
            iot.attach_policy(policyName=policy_name, target=cert["certificateArn"])
        iot.create_thing(thingName=thing_name, attributePayload={"attributes": {"alias": role_alias}})
        if attach_thing:
            iot.attach_thing_principal(thingName=thing_name, principal=cert["certificateArn"])
        cert_path, key_path = write_client_files(tmp_path / thing_name, cert["certificatePem"], key)
        return Device(thing_name, cert["certificateId"], cert["certificateArn"], role_alias, role_name, cert_path, key_path)

    return make


def fetch(emulator, device: Device, thing_name: str | None = "same", alias: str | None = None):
    return credentials_get(
        emulator,
        device.cert_path,
        device.key_path,
        alias or device.role_alias,
        device.thing_name if thing_name == "same" else thing_name,
    )


def assert_refused(answer, status: int, error_type: str, message: str) -> None:
    got_status, headers, body = answer
    assert (got_status, headers.get("x-amzn-errortype"), body) == (status, error_type, {"message": message})


# ---------------------------------------------------------------- success


def test_valid_device_gets_credentials_in_aws_shape_for_alias_duration(emulator, make_device):
    device = make_device(alias_duration=900)
    before = datetime.datetime.now(datetime.timezone.utc)

    status, headers, body = fetch(emulator, device)

    assert status == 200
    assert headers["content-type"] == "application/json"
    assert list(body) == ["credentials"]
    credentials = body["credentials"]
    assert set(credentials) == {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", credentials["expiration"])
    expiration = datetime.datetime.strptime(credentials["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((expiration - before).total_seconds() - 900) < 30


def test_issued_credentials_are_the_role_session_named_after_the_certificate(emulator, make_device):
    import boto3

    device = make_device()
    _, _, body = fetch(emulator, device)
    credentials = body["credentials"]
    sts = boto3.client(
        "sts",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=credentials["accessKeyId"],
        aws_secret_access_key=credentials["secretAccessKey"],
        aws_session_token=credentials["sessionToken"],
    )
    identity = sts.get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{device.role_name}/{device.certificate_id}"
    assert identity["Account"] == ACCOUNT


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP521R1()], ids=["p384", "p521"])
def test_device_with_any_curve_aws_accepts_completes_the_handshake(emulator, make_device, curve):
    device = make_device(key=ec.generate_private_key(curve))
    status, _, body = fetch(emulator, device)
    assert status == 200, body
    assert set(body["credentials"]) == {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}


def test_thing_name_header_is_optional(emulator, make_device):
    device = make_device()
    assert fetch(emulator, device, thing_name=None)[0] == 200


def test_one_keep_alive_connection_serves_several_requests(emulator, make_device):
    import http.client

    device = make_device()
    context = ssl.create_default_context(cafile=str(emulator.ca_file))
    context.load_cert_chain(device.cert_path, device.key_path)
    host, port = emulator.credentials_endpoint.split(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    statuses = []
    for _ in range(3):
        connection.request("GET", f"/role-aliases/{device.role_alias}/credentials")
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
    connection.close()
    assert statuses == [200, 200, 200]


# ---------------------------------------------------------------- refusals, in AWS's order


def test_thing_not_attached_to_certificate_is_invalid_thing_name(emulator, make_device):
    device = make_device(attach_thing=False)
    assert_refused(fetch(emulator, device), 403, "AccessDeniedException", "Invalid thing name passed")


def test_unknown_thing_name_is_invalid_thing_name(emulator, make_device):
    device = make_device()
    assert_refused(fetch(emulator, device, thing_name="no-such-thing"), 403, "AccessDeniedException", "Invalid thing name passed")


def test_certificate_without_policy_is_access_denied(emulator, make_device):
    device = make_device(attach_policy=False)
    assert_refused(fetch(emulator, device), 403, "AccessDeniedException", "Access Denied")


def test_policy_for_another_alias_is_access_denied(emulator, make_device):
    device = make_device(statements=[allow(alias_arn("some-other-alias"))])
    assert_refused(fetch(emulator, device), 403, "AccessDeniedException", "Access Denied")


def test_policy_for_another_action_is_access_denied(emulator, make_device):
    device = make_device(statements=[allow("*", action="iot:Connect")])
    assert_refused(fetch(emulator, device), 403, "AccessDeniedException", "Access Denied")


def test_explicit_deny_wins_over_allow(emulator, make_device):
    device = make_device(statements=[allow("*"), {"Effect": "Deny", "Action": "iot:AssumeRole*", "Resource": "*"}])
    assert_refused(fetch(emulator, device), 403, "AccessDeniedException", "Access Denied")


@pytest.mark.parametrize(
    "statement",
    [
        allow("*"),
        allow(f"arn:aws:iot:us-east-1:{ACCOUNT}:rolealias/alias-*"),
        allow(f"arn:aws:iot:*:{ACCOUNT}:rolealias/alias-??????????"),
        allow("*", action="iot:*"),
        allow("*", action=["iot:Connect", "IOT:ASSUMEROLEWITHCERTIFICATE"]),
    ],
    ids=["any-resource", "prefix-wildcard", "question-marks", "action-wildcard", "action-case"],
)
def test_wildcard_policies_allow(emulator, make_device, statement):
    device = make_device(statements=[statement])
    assert fetch(emulator, device)[0] == 200


def test_policy_variable_resolves_from_the_attached_thing(emulator, make_device):
    # Every test thing carries the attribute alias=<its role alias>.
    device = make_device(statements=[allow(f"arn:aws:iot:us-east-1:{ACCOUNT}:rolealias/${{iot:Connection.Thing.Attributes[alias]}}")])
    assert fetch(emulator, device)[0] == 200


def test_policy_variable_of_another_thing_does_not_match(emulator, make_device):
    device = make_device(statements=[allow(f"arn:aws:iot:us-east-1:{ACCOUNT}:rolealias/${{iot:Connection.Thing.ThingName}}")])
    assert_refused(fetch(emulator, device), 403, "AccessDeniedException", "Access Denied")


def test_unresolvable_policy_variable_matches_nothing(emulator, make_device):
    device = make_device(statements=[allow(f"arn:aws:iot:us-east-1:{ACCOUNT}:rolealias/${{iot:Connection.Thing.Attributes[alias]}}")])
    # Without the thing-name header the variable cannot be resolved, so nothing allows.
    assert_refused(fetch(emulator, device, thing_name=None), 403, "AccessDeniedException", "Access Denied")


def test_missing_role_alias_is_not_found(emulator, make_device):
    device = make_device(statements=[allow("*")])
    assert_refused(
        fetch(emulator, device, alias="no-such-alias"), 404, "ResourceNotFoundException", "Role alias does not exist"
    )


def test_policy_is_checked_before_alias_existence(emulator, make_device):
    device = make_device()
    assert_refused(fetch(emulator, device, alias="no-such-alias"), 403, "AccessDeniedException", "Access Denied")


def test_alias_pointing_at_missing_role_cannot_assume(emulator, make_device):
    device = make_device(create_role=False)
    assert_refused(
        fetch(emulator, device), 400, "InvalidRequestException", "Unable to assume the role, or the role to assume does not exist"
    )


def test_role_that_does_not_trust_credentials_provider_cannot_be_assumed(emulator, make_device):
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    device = make_device(trust=trust)
    assert_refused(
        fetch(emulator, device), 400, "InvalidRequestException", "Unable to assume the role, or the role to assume does not exist"
    )


def test_alias_duration_over_role_max_session_is_refused(emulator, make_device):
    device = make_device(alias_duration=7200, max_session=3600)
    assert_refused(
        fetch(emulator, device),
        400,
        "InvalidRequestException",
        "The requested CredentialDurationSeconds exceeds the MaxSessionDuration set for the role",
    )


@pytest.mark.parametrize("status", ["INACTIVE", "REVOKED", "REGISTER_INACTIVE"])
def test_inactive_or_revoked_certificate_is_refused(emulator, make_device, status):
    device = make_device()
    emulator.client("iot").update_certificate(certificateId=device.certificate_id, newStatus=status)
    got_status, headers, _ = fetch(emulator, device)
    assert (got_status, headers["x-amzn-errortype"]) == (403, "AccessDeniedException")


def test_certificate_deleted_from_registry_is_refused(emulator, make_device):
    device = make_device(attach_policy=False, attach_thing=False)
    iot = emulator.client("iot")
    iot.update_certificate(certificateId=device.certificate_id, newStatus="INACTIVE")
    iot.delete_certificate(certificateId=device.certificate_id)
    assert_refused(fetch(emulator, device, thing_name=None), 403, "AccessDeniedException", "Certificate is invalid on this endpoint")


def test_other_paths_answer_404_json(emulator, make_device):
    device = make_device()
    status, headers, body = credentials_get(emulator, device.cert_path, device.key_path, device.role_alias, path="/")
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert "message" in body


# ---------------------------------------------------------------- TLS


def tls_handshake(emulator, context: ssl.SSLContext) -> bytes:
    host, port = emulator.credentials_endpoint.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"GET /role-aliases/x/credentials HTTP/1.1\r\nHost: localhost\r\n\r\n")
            return tls.recv(1024)


def test_connection_without_client_certificate_is_refused(emulator):
    context = ssl.create_default_context(cafile=str(emulator.ca_file))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_handshake(emulator, context)


def test_client_certificate_from_another_ca_is_refused(emulator, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    cert_path, key_path = write_client_files(tmp_path, cert.public_bytes(serialization.Encoding.PEM).decode(), key)
    context = ssl.create_default_context(cafile=str(emulator.ca_file))
    context.load_cert_chain(cert_path, key_path)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_handshake(emulator, context)


def test_tls_older_than_1_2_is_refused(emulator, make_device):
    device = make_device()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(emulator.ca_file)
    context.load_cert_chain(device.cert_path, device.key_path)
    try:
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    except ValueError:
        pytest.fail("this OpenSSL cannot even offer TLS 1.1")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_handshake(emulator, context)


def test_server_certificate_names_localhost_and_loopback_ip(emulator):
    host, port = emulator.credentials_endpoint.split(":")
    pem = ssl.get_server_certificate((host, int(port)))
    cert = x509.load_pem_x509_certificate(pem.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    ca = x509.load_pem_x509_certificate(emulator.ca_file.read_bytes())
    cert.verify_directly_issued_by(ca)


# ---------------------------------------------------------------- clients we did not write


def test_curl_fetches_credentials_like_from_aws(emulator, make_device):
    curl = shutil.which("curl")
    assert curl, "curl is required (Debian package curl)"
    device = make_device()
    result = subprocess.run(
        [
            curl, "--silent", "--show-error", "--fail-with-body",
            "--cacert", str(emulator.ca_file), "--cert", str(device.cert_path), "--key", str(device.key_path),
            "-H", f"x-amzn-iot-thingname: {device.thing_name}",
            f"https://{emulator.credentials_endpoint}/role-aliases/{device.role_alias}/credentials",
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert set(json.loads(result.stdout)["credentials"]) == {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}


def test_aws_credentialhelper_library_gets_a_working_boto3_session(emulator, make_device):
    from awsiot_credentialhelper.boto3_session import Boto3SessionProvider

    device = make_device()
    session = Boto3SessionProvider(
        endpoint=emulator.credentials_endpoint,
        role_alias=device.role_alias,
        thing_name=device.thing_name,
        certificate=device.cert_path.read_bytes(),
        private_key=device.key_path.read_bytes(),
        ca=emulator.ca_file.read_bytes(),
    ).get_session()
    identity = session.client("sts", endpoint_url=emulator.endpoint_url).get_caller_identity()
    assert identity["Arn"].endswith(f":assumed-role/{device.role_name}/{device.certificate_id}")


def test_silent_client_does_not_stall_other_devices(emulator, make_device):
    device = make_device()
    host, port = emulator.credentials_endpoint.split(":")
    with socket.create_connection((host, int(port)), timeout=10):
        # This connection never starts its TLS handshake.
        assert fetch(emulator, device)[0] == 200


def test_parallel_devices_are_served_concurrently(emulator, make_device):
    from concurrent.futures import ThreadPoolExecutor

    devices = [make_device() for _ in range(3)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda i: fetch(emulator, devices[i % 3])[0], range(24)))
    assert statuses == [200] * 24
