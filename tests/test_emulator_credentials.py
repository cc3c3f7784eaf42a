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
import threading
import time
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


# ---------------------------------------------------------------- quotas (--throttle)


def enroll_on(running, tmp_path: Path) -> Device:
    """One device on a private (throttled) stand-in; boto3's standard retries ride out its quotas."""
    from botocore.config import Config

    patient = Config(retries={"mode": "standard", "max_attempts": 10})
    iot, iam = running.client("iot", config=patient), running.client("iam", config=patient)
    role_alias, role_name, thing_name = unique("alias"), unique("role"), unique("laptop")
    role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(TRUST_CREDENTIALS_PROVIDER))["Role"]["Arn"]
    iot.create_role_alias(roleAlias=role_alias, roleArn=role_arn, credentialDurationSeconds=900)
    key, csr = make_key_and_csr(thing_name)
    cert = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=True)
    iot.create_policy(policyName=role_alias, policyDocument=policy_document(allow(alias_arn(role_alias))))
    iot.attach_policy(policyName=role_alias, target=cert["certificateArn"])
    iot.create_thing(thingName=thing_name)
    iot.attach_thing_principal(thingName=thing_name, principal=cert["certificateArn"])
    cert_path, key_path = write_client_files(tmp_path / thing_name, cert["certificatePem"], key)
    return Device(thing_name, cert["certificateId"], cert["certificateArn"], role_alias, role_name, cert_path, key_path)


class Hammer:
    """Keep-alive mutual-TLS connections that GET one credentials path as fast as they can."""

    def __init__(self, running, device: Device, path: str, connections: int = 4) -> None:
        self._running, self._device, self._path = running, device, path
        self.answers: list[tuple[int, dict[str, str], bytes]] = []
        self.first_throttled = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(connections)]

    def _loop(self) -> None:
        import http.client

        context = ssl.create_default_context(cafile=str(self._running.ca_file))
        context.load_cert_chain(certfile=str(self._device.cert_path), keyfile=str(self._device.key_path))
        host, port = self._running.credentials_endpoint.rsplit(":", 1)
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        try:
            while not self._stop.is_set():
                connection.request("GET", self._path)
                response = connection.getresponse()
                answer = (response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
                self.answers.append(answer)
                if answer[0] == 429:
                    self.first_throttled.set()
        finally:
            connection.close()

    def __enter__(self) -> "Hammer":
        for thread in self._threads:
            thread.start()
        assert self.first_throttled.wait(30), "the credentials endpoint never throttled the burst"
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def test_throttle_answers_a_credentials_burst_with_well_formed_429s(tmp_path):
    from tests.fixtures.emulator import start_emulator

    with start_emulator(tmp_path / "state", throttle=True) as running:
        device = enroll_on(running, tmp_path)
        with Hammer(running, device, f"/role-aliases/{device.role_alias}/credentials") as hammer:
            time.sleep(0.3)
        statuses = {status for status, _, _ in hammer.answers}
        assert statuses == {200, 429}, statuses
        for status, headers, body in hammer.answers:
            if status == 429:
                assert headers["x-amzn-errortype"] == "ThrottlingException"
                assert headers["content-type"] == "application/json"
                assert headers["x-amzn-requestid"]
                assert json.loads(body) == {"message": "Rate exceeded"}
            else:
                assert set(json.loads(body)["credentials"]) == {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}


def test_provisioner_client_retries_a_throttled_fetch_until_it_gets_credentials(tmp_path, monkeypatch):
    from provisioner.credentials_client import fetch_credentials
    from tests.fixtures.emulator import start_emulator

    for variable in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    with start_emulator(tmp_path / "state", throttle=True) as running:
        device = enroll_on(running, tmp_path)
        fetch_path = f"/role-aliases/{device.role_alias}/credentials"
        # The quota is per operation, not per alias: a burst on another alias drains it too, and
        # tells the client's attempts (on the real alias) apart in the stand-in's log.
        for _ in range(3):
            log_before = len(running.log_text().splitlines())
            with Hammer(running, device, "/role-aliases/burst/credentials") as hammer:
                timer = threading.Timer(1.0, hammer.stop)
                timer.start()
                credentials = fetch_credentials(
                    endpoint=running.credentials_endpoint,
                    role_alias=device.role_alias,
                    cert_path=device.cert_path,
                    key_path=device.key_path,
                    ca_path=running.ca_file,
                    thing_name=device.thing_name,
                    max_attempts=10,
                )
                timer.join()
            time.sleep(0.2)
            attempts = [line for line in running.log_text().splitlines()[log_before:] if f"GET {fetch_path} ->" in line]
            if len(attempts) > 1:
                break
        # Every attempt but the last was throttled; the last got the credentials.
        assert len(attempts) > 1, "the client's first attempt was never throttled"
        assert all("-> 429 ThrottlingException" in line for line in attempts[:-1]), attempts
        assert "-> 200" in attempts[-1], attempts
        assert credentials.access_key_id and credentials.session_token
        identity = boto3_session_for(running, credentials).client("sts", endpoint_url=running.endpoint_url).get_caller_identity()
        assert identity["Arn"].endswith(f":assumed-role/{device.role_name}/{device.certificate_id}")


def boto3_session_for(running, credentials):
    import boto3

    return boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        region_name="us-east-1",
    )
