"""Every provisioner verb end to end: ``python -m provisioner`` in a subprocess against the
local stand-in (boto3 over HTTP to the control plane, mutual TLS to the credentials endpoint).

Whether the credentials endpoint accepts a certificate is checked with the stand-in's own
ssl + http.client helper, not with the provisioner. AWS refusals the stand-in cannot be
made to produce on demand (an operator without iot:UpdateCertificate, throttling) are
injected by a small HTTP proxy between the provisioner and the stand-in: the provisioner
still goes through its real door, boto3 over HTTP. The proxy can also forward a request
and lose its answer (AWS acted, the caller got an error) or answer 200 without
forwarding (the caller believes AWS acted).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from tests.fixtures.deployment import deploy_template
from tests.fixtures.emulator import credentials_get, start_emulator

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"


# ---------------------------------------------------------------- helpers

def cli_env(emulator, home: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVICE_TRUST_"))}
    env.update(emulator.env)
    env.update({"HOME": str(home), "PYTHONPATH": str(REPO), "DEVICE_TRUST_PKCS12_PASSWORD": PASSWORD,
                "DEVICE_TRUST_ENDPOINT_CA": str(emulator.ca_file)})
    env.update(overrides)
    return env


def run_cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provisioner", *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, cwd=cwd or REPO, timeout=180)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def one_line_failure(result: subprocess.CompletedProcess, exit_code: int) -> str:
    assert result.returncode == exit_code, f"exit {result.returncode}: {result.stderr}"
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("device-trust: ") and "Traceback" not in result.stderr, \
        result.stderr
    return lines[0]


def new_thing_name() -> str:
    return f"laptop-{uuid.uuid4().hex[:10]}"


def accepted(emulator, directory: Path, role_alias: str, thing_name: str,
             cert: str = "device.crt", key: str = "device.key") -> int:
    """HTTP status the credentials endpoint gives these files (stand-in helper: ssl + http.client)."""
    status, _headers, _body = credentials_get(emulator, directory / cert, directory / key, role_alias, thing_name)
    return status


def certificate_status(iot, certificate_id: str) -> str | None:
    try:
        return iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]
    except iot.exceptions.ResourceNotFoundException:
        return None


def thing_exists(iot, thing_name: str) -> bool:
    try:
        iot.describe_thing(thingName=thing_name)
        return True
    except iot.exceptions.ResourceNotFoundException:
        return False


def certificate_ids(iot) -> dict[str, str]:
    return {c["certificateId"]: c["status"] for c in iot.list_certificates(pageSize=250)["certificates"]}


class FaultProxy:
    """An HTTP proxy in front of the stand-in's control plane that refuses chosen requests
    the way AWS does (status, x-amzn-ErrorType, JSON message) and forwards the rest."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.rules: list = []  # (predicate(method, path, query) -> bool, status, error type, remaining count or None)
        self.refused: list[str] = []
        self.holds: list = []  # (predicate, threading.Event): requests held without an answer
        self.held: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                for predicate, released in proxy.holds:
                    if predicate(self.command, parts.path, query):
                        proxy.held.append(f"{self.command} {parts.path}")
                        released.wait(60)  # the client gives up (or is interrupted) first
                        self.send_error(503)
                        return
                for rule in proxy.rules:
                    predicate, status, error_type, remaining, mode = rule
                    if (remaining is None or remaining[0] > 0) and predicate(self.command, parts.path, query):
                        if remaining is not None:
                            remaining[0] -= 1
                        proxy.refused.append(f"{self.command} {parts.path}")
                        if mode == "lose":  # AWS acts on the request; its answer never arrives
                            self._forward(body)
                        payload = json.dumps({"message": f"injected {error_type}"} if mode != "fake" else {}).encode()
                        self.send_response(status)
                        if mode != "fake":
                            self.send_header("x-amzn-ErrorType", error_type)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                answer, data = self._forward(body)
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _forward(self, body: bytes):
                connection = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                    connection.request(self.command, self.path, body=body or None, headers=headers)
                    answer = connection.getresponse()
                    return answer, answer.read()
                finally:
                    connection.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def refuse(self, predicate, status: int, error_type: str, times: int | None = None) -> None:
        self.rules.append((predicate, status, error_type, None if times is None else [times], "refuse"))

    def lose_answer(self, predicate, status: int = 500, error_type: str = "InternalFailureException") -> None:
        """Forward the request (AWS acts on it), then answer with an error as if the answer was lost."""
        self.rules.append((predicate, status, error_type, None, "lose"))

    def fake_success(self, predicate) -> None:
        """Answer 200 {} without forwarding: the caller believes AWS did what it asked."""
        self.rules.append((predicate, 200, "", None, "fake"))

    def hold(self, predicate) -> None:
        self.holds.append((predicate, threading.Event()))

    def close(self) -> None:
        for _predicate, released in self.holds:
            released.set()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def stack(deployed_stack):
    return deployed_stack


@pytest.fixture(scope="module")
def emulator_(stack):
    return stack.emulator


@pytest.fixture(scope="module")
def iot(emulator_):
    return emulator_.client("iot")


@pytest.fixture()
def env(emulator_, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return cli_env(emulator_, home)


@pytest.fixture()
def enrolled(env, tmp_path, stack):
    """A freshly enrolled laptop: (thing name, profile dir, device.json)."""
    thing_name = new_thing_name()
    profile = tmp_path / "profile"
    ok(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile), "--owner", "ada@example.com",
               "--serial", "C02XYZ"))
    return thing_name, profile, json.loads((profile / "device.json").read_text())


@pytest.fixture()
def proxy(emulator_):
    running = FaultProxy(emulator_.endpoint_url)
    yield running
    running.close()


# ---------------------------------------------------------------- enroll

def test_enroll_writes_the_documented_profile_and_registers_the_thing(enrolled, stack, emulator_, iot):
    thing_name, profile, device = enrolled
    outputs = stack.outputs
    assert sorted(p.name for p in profile.iterdir()) == ["device.crt", "device.json", "device.key", "device.p12",
                                                         "endpoint-ca.pem"]
    assert stat.S_IMODE(profile.stat().st_mode) == 0o700
    assert stat.S_IMODE((profile / "device.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((profile / "device.p12").stat().st_mode) == 0o600
    assert device["thingName"] == thing_name
    assert device["roleAlias"] == outputs["RoleAliasName"]
    assert device["credentialsEndpoint"] == emulator_.credentials_endpoint
    assert (device["stackName"], device["environment"], device["region"]) == ("DeviceTrust-local", "local",
                                                                                "us-east-1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", device["notAfter"])
    assert (profile / "endpoint-ca.pem").read_bytes() == emulator_.ca_file.read_bytes()

    cert = x509.load_pem_x509_certificate((profile / "device.crt").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == thing_name
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "DeviceTrust local"
    bundle = pkcs12.load_pkcs12((profile / "device.p12").read_bytes(), PASSWORD.encode())
    assert bundle.cert.certificate == cert and bundle.cert.friendly_name == thing_name.encode()

    assert certificate_status(iot, device["certificateId"]) == "ACTIVE"
    thing = iot.describe_thing(thingName=thing_name)
    assert thing["thingTypeName"] == outputs["ThingTypeName"]
    assert thing["attributes"]["owner"] == "ada@example.com" and thing["attributes"]["serialNumber"] == "C02XYZ"
    assert thing_name in iot.list_things_in_thing_group(thingGroupName=outputs["ThingGroupName"])["things"]
    principals = iot.list_thing_principals(thingName=thing_name)["principals"]
    assert principals == [device["certificateArn"]]
    policies = iot.list_attached_policies(target=device["certificateArn"])["policies"]
    assert [p["policyName"] for p in policies] == [outputs["DevicePolicyName"]]
    assert accepted(emulator_, profile, device["roleAlias"], thing_name) == 200


def test_enroll_p12_is_readable_by_openssl(enrolled, tmp_path):
    _thing, profile, _device = enrolled
    result = subprocess.run(["openssl", "pkcs12", "-info", "-in", str(profile / "device.p12"), "-passin",
                             "env:DEVICE_TRUST_PKCS12_PASSWORD", "-nokeys", "-noout"], capture_output=True, text=True,
                            env={**os.environ, "DEVICE_TRUST_PKCS12_PASSWORD": PASSWORD}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "MAC: sha1" in result.stderr and "pbeWithSHA1And3-KeyTripleDES-CBC" in result.stderr


def test_enroll_again_on_a_healthy_laptop_changes_nothing(enrolled, env, iot):
    thing_name, profile, device = enrolled
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in profile.iterdir()}
    certificates_before = certificate_ids(iot)
    result = ok(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile)))
    assert "already enrolled and healthy" in result.stdout and "nothing changed" in result.stdout
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in profile.iterdir()} == before
    assert certificate_ids(iot) == certificates_before
    again = json.loads(ok(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile),
                                  "--json")).stdout)
    assert again["changed"] is False and again["certificateId"] == device["certificateId"]


def test_enroll_needs_no_password_when_nothing_changes(enrolled, env):
    thing_name, profile, _device = enrolled
    no_password = {k: v for k, v in env.items() if k != "DEVICE_TRUST_PKCS12_PASSWORD"}
    ok(run_cli(no_password, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile)))


def test_enroll_force_reenrolls_and_revokes_the_replaced_certificate(enrolled, env, emulator_, iot, tmp_path):
    thing_name, profile, old = enrolled
    keep = tmp_path / "old"
    keep.mkdir()
    for name in ("device.crt", "device.key"):
        shutil.copy2(profile / name, keep / name)
    result = json.loads(ok(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile),
                                   "--force", "--json", "--pkcs12-encryption", "aes256", "--key-type",
                                   "rsa-2048")).stdout)
    assert result["changed"] is True and result["certificateId"] != old["certificateId"]
    assert result["revokedCertificateId"] == old["certificateId"]
    assert certificate_status(iot, old["certificateId"]) == "REVOKED"
    assert certificate_status(iot, result["certificateId"]) == "ACTIVE"
    assert accepted(emulator_, profile, old["roleAlias"], thing_name) == 200
    assert accepted(emulator_, keep, old["roleAlias"], thing_name) == 403


def test_enroll_under_another_name_needs_force(enrolled, env):
    _thing, profile, _device = enrolled
    line = one_line_failure(run_cli(env, "enroll", "--thing-name", new_thing_name(), "--profile-dir", str(profile)), 2)
    assert "pass --force" in line


def test_enroll_reenrolls_by_itself_when_the_certificate_was_revoked(enrolled, env, emulator_, iot):
    thing_name, profile, old = enrolled
    iot.update_certificate(certificateId=old["certificateId"], newStatus="REVOKED")
    result = ok(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile)))
    assert f"re-enrolling: certificate {old['certificateId']} is REVOKED" in result.stderr
    new = json.loads((profile / "device.json").read_text())
    assert new["certificateId"] != old["certificateId"]
    assert accepted(emulator_, profile, new["roleAlias"], thing_name) == 200


def test_after_an_operator_revoke_rotate_says_enroll_and_enroll_says_already_revoked(enrolled, env, iot):
    thing_name, profile, old = enrolled
    ok(run_cli(env, "revoke", "--thing-name", thing_name))
    line = one_line_failure(run_cli(env, "rotate", "--profile-dir", str(profile)), 3)
    assert f"thing {thing_name} is not registered" in line and "run enroll again" in line and "--force" not in line
    # plain enroll (no --force) does re-enroll, as the message says
    result = ok(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile), "--json"))
    report = json.loads(result.stdout)
    assert report["changed"] is True and report["certificateId"] != old["certificateId"]
    assert report["revokedCertificateId"] is None  # this run revoked nothing: the operator had
    text = ok(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile), "--force")).stdout
    assert f"revoked      the previous certificate {report['certificateId']}" in text
    ok(run_cli(env, "revoke", "--thing-name", thing_name))
    text = ok(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile))).stdout
    assert "was already revoked" in text and "revoked      the previous" not in text


def test_enroll_with_the_wrong_endpoint_ca_stops_before_making_a_certificate(env, iot, tmp_path):
    before = certificate_ids(iot)
    no_ca = {k: v for k, v in env.items() if k != "DEVICE_TRUST_ENDPOINT_CA"}  # default: Amazon's roots
    line = one_line_failure(run_cli(no_ca, "enroll", "--thing-name", new_thing_name(), "--profile-dir",
                                    str(tmp_path / "p")), 2)
    assert "does not verify against the bundled Amazon root CAs" in line and "--endpoint-ca" in line
    assert certificate_ids(iot) == before


def test_enroll_prompts_for_the_password_on_a_terminal_and_the_p12_opens_with_it(env, tmp_path):
    from tests.test_provisioner_cli import run_in_terminal

    env = {k: v for k, v in env.items() if k != "DEVICE_TRUST_PKCS12_PASSWORD"}
    profile = tmp_path / "profile"
    code, output = run_in_terminal(["enroll", "--thing-name", new_thing_name(), "--profile-dir", str(profile)], env,
                                   answers=["typed at the prompt", "typed at the prompt"])
    assert code == 0, output
    assert output.count("<answered>") == 2
    pkcs12.load_pkcs12((profile / "device.p12").read_bytes(), b"typed at the prompt")


def test_enroll_whose_two_passwords_differ_creates_nothing_in_aws(env, iot, tmp_path):
    # The prompt comes after the stack is read but before CreateCertificateFromCsr.
    from tests.test_provisioner_cli import run_in_terminal

    env = {k: v for k, v in env.items() if k != "DEVICE_TRUST_PKCS12_PASSWORD"}
    thing_name, before = new_thing_name(), certificate_ids(iot)
    code, output = run_in_terminal(["enroll", "--thing-name", thing_name, "--profile-dir", str(tmp_path / "p")], env,
                                   answers=["first password", "second password"])
    assert code == 2 and "the two passwords differ" in output, output
    assert certificate_ids(iot) == before and not thing_exists(iot, thing_name)


def test_enroll_into_a_profile_dir_that_cannot_be_written_touches_nothing_in_aws(env, iot):
    thing_name = new_thing_name()
    before = certificate_ids(iot)
    line = one_line_failure(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir", "/proc/dt"), 5)
    assert "cannot write to profile directory /proc/dt" in line and "rolled back" not in line
    assert certificate_ids(iot) == before and not thing_exists(iot, thing_name)


def test_enroll_against_a_missing_stack_is_an_aws_error(env, tmp_path, iot):
    before = certificate_ids(iot)
    line = one_line_failure(run_cli(env, "enroll", "--env", "nowhere", "--thing-name", new_thing_name(),
                                    "--profile-dir", str(tmp_path / "p")), 3)
    assert "stack DeviceTrust-nowhere does not exist" in line
    assert certificate_ids(iot) == before


# ---------------------------------------------------------------- operator split

def test_csr_register_install_keeps_the_key_on_the_laptop(env, emulator_, iot, tmp_path):
    thing_name = new_thing_name()
    laptop, operator = tmp_path / "laptop", tmp_path / "operator"
    operator.mkdir()
    laptop_env = {k: v for k, v in env.items() if not k.startswith("AWS_")}  # the laptop holds no AWS rights
    ok(run_cli(laptop_env, "csr", "--thing-name", thing_name, "--profile-dir", str(laptop)))
    shutil.copy2(laptop / "pending.csr", operator / "request.csr")  # the only file that travels to the operator

    registered = json.loads(ok(run_cli(env, "register", "--csr", "request.csr", "--owner", "bob@example.com",
                                       "--json", cwd=operator)).stdout)
    assert sorted(p.name for p in operator.iterdir()) == sorted(["request.csr", f"{thing_name}.crt",
                                                                 f"{thing_name}.json"])
    assert not any("PRIVATE KEY" in p.read_text() for p in operator.iterdir())
    assert certificate_status(iot, registered["certificateId"]) == "ACTIVE"

    for name in (f"{thing_name}.crt", f"{thing_name}.json"):
        shutil.copy2(operator / name, laptop / name)
    result = json.loads(ok(run_cli(laptop_env, "install", "--profile-dir", str(laptop), "--certificate",
                                   str(laptop / f"{thing_name}.crt"), "--registration",
                                   str(laptop / f"{thing_name}.json"), "--endpoint-ca", str(emulator_.ca_file),
                                   "--json")).stdout)
    assert result["verified"] is True and result["certificateId"] == registered["certificateId"]
    assert not (laptop / "pending.key").exists() and not (laptop / "pending.csr").exists()
    assert stat.S_IMODE((laptop / "device.key").stat().st_mode) == 0o600
    assert accepted(emulator_, laptop, result["roleAlias"], thing_name) == 200

    # the same two files again (documented): the installed key is found, the profile rebuilt, no note
    again = run_cli(laptop_env, "install", "--profile-dir", str(laptop), "--certificate",
                    str(laptop / f"{thing_name}.crt"), "--registration", str(laptop / f"{thing_name}.json"),
                    "--endpoint-ca", str(emulator_.ca_file), "--pkcs12-encryption", "aes256")
    assert ok(again).stderr == ""
    assert accepted(emulator_, laptop, result["roleAlias"], thing_name) == 200


def test_register_twice_refuses_to_overwrite_or_to_add_a_second_active_certificate(env, iot, tmp_path):
    thing_name = new_thing_name()
    laptop, operator, elsewhere = tmp_path / "laptop", tmp_path / "operator", tmp_path / "elsewhere"
    operator.mkdir()
    elsewhere.mkdir()
    ok(run_cli(env, "csr", "--thing-name", thing_name, "--profile-dir", str(laptop)))
    csr = str(laptop / "pending.csr")
    first = json.loads(ok(run_cli(env, "register", "--csr", csr, "--output-dir", str(operator), "--json")).stdout)
    files = {p.name: p.read_bytes() for p in operator.iterdir()}
    before = certificate_ids(iot)

    # the same command again: the files of the first registration are kept, nothing is asked of AWS
    line = one_line_failure(run_cli(env, "register", "--csr", csr, "--output-dir", str(operator)), 2)
    assert f"{operator / (thing_name + '.crt')}" in line and "already exist" in line and "--force" in line
    # elsewhere: the thing already has an ACTIVE certificate
    line = one_line_failure(run_cli(env, "register", "--csr", csr, "--output-dir", str(elsewhere)), 3)
    assert f"thing {thing_name} already has the ACTIVE certificate {first['certificateId']}" in line
    assert "revoke" in line and "--force" in line
    assert certificate_ids(iot) == before and list(elsewhere.iterdir()) == []
    assert {p.name: p.read_bytes() for p in operator.iterdir()} == files

    # --force: a second certificate, the files overwritten, and a note that the first is still ACTIVE
    result = run_cli(env, "register", "--csr", csr, "--output-dir", str(operator), "--force", "--json")
    second = json.loads(ok(result).stdout)
    assert second["certificateId"] != first["certificateId"]
    assert f"keeps its ACTIVE certificate {first['certificateId']}" in result.stderr
    assert json.loads((operator / f"{thing_name}.json").read_text())["certificateId"] == second["certificateId"]
    assert certificate_status(iot, first["certificateId"]) == "ACTIVE"

    # after revoke, a plain register works again
    ok(run_cli(env, "revoke", "--thing-name", thing_name))
    ok(run_cli(env, "register", "--csr", csr, "--output-dir", str(elsewhere)))


def test_install_refuses_a_certificate_made_for_another_laptop(env, tmp_path):
    first, second, operator = tmp_path / "first", tmp_path / "second", tmp_path / "operator"
    operator.mkdir()
    thing_name = new_thing_name()
    ok(run_cli(env, "csr", "--thing-name", thing_name, "--profile-dir", str(first)))
    ok(run_cli(env, "csr", "--thing-name", thing_name, "--profile-dir", str(second)))
    ok(run_cli(env, "register", "--csr", str(first / "pending.csr"), "--output-dir", str(operator)))
    line = one_line_failure(run_cli(env, "install", "--profile-dir", str(second), "--certificate",
                                    str(operator / f"{thing_name}.crt"), "--registration",
                                    str(operator / f"{thing_name}.json")), 2)
    assert "not for this laptop's key" in line
    assert not (second / "device.json").exists()


# ---------------------------------------------------------------- revoke

def test_revoke_revokes_detaches_deletes_and_the_endpoint_refuses(enrolled, env, emulator_, iot, stack):
    thing_name, profile, device = enrolled
    report = json.loads(ok(run_cli(env, "revoke", "--thing-name", thing_name, "--json")).stdout)
    assert report["revokedCertificates"] == [device["certificateId"]]
    assert report["detachedPolicies"] == [stack.outputs["DevicePolicyName"]]
    assert report["thingDeleted"] is True and report["changed"] is True
    assert certificate_status(iot, device["certificateId"]) == "REVOKED"
    assert iot.list_attached_policies(target=device["certificateArn"])["policies"] == []
    assert not thing_exists(iot, thing_name)
    assert accepted(emulator_, profile, device["roleAlias"], thing_name) == 403
    assert accepted(emulator_, profile, device["roleAlias"], None) == 403

    again = ok(run_cli(env, "revoke", "--thing-name", thing_name))
    assert "nothing to do" in again.stdout


def test_revoke_keep_thing_keeps_it_without_certificates_and_is_idempotent(enrolled, env, emulator_, iot):
    thing_name, profile, device = enrolled
    ok(run_cli(env, "revoke", "--thing-name", thing_name, "--keep-thing"))
    assert thing_exists(iot, thing_name)
    assert iot.list_thing_principals(thingName=thing_name)["principals"] == []
    assert certificate_status(iot, device["certificateId"]) == "REVOKED"
    assert accepted(emulator_, profile, device["roleAlias"], None) == 403
    again = json.loads(ok(run_cli(env, "revoke", "--thing-name", thing_name, "--keep-thing", "--json")).stdout)
    assert again["changed"] is False


def test_revoke_of_an_unknown_thing_says_there_is_nothing_to_do(env):
    result = ok(run_cli(env, "revoke", "--thing-name", new_thing_name()))
    assert "is not registered: nothing to do" in result.stdout


# ---------------------------------------------------------------- rotate

def test_rotate_new_certificate_accepted_old_refused(enrolled, env, emulator_, iot, tmp_path):
    thing_name, profile, old = enrolled
    keep = tmp_path / "old"
    keep.mkdir()
    for name in ("device.crt", "device.key", "device.p12"):
        shutil.copy2(profile / name, keep / name)
    result = json.loads(ok(run_cli(env, "rotate", "--profile-dir", str(profile), "--json")).stdout)
    new = json.loads((profile / "device.json").read_text())
    assert result["oldCertificateId"] == old["certificateId"]
    assert new["certificateId"] == result["newCertificateId"] != old["certificateId"]
    assert {k: v for k, v in new.items() if k not in ("certificateId", "certificateArn", "notAfter")} == \
        {k: v for k, v in old.items() if k not in ("certificateId", "certificateArn", "notAfter")}
    assert (profile / "device.key").read_bytes() != (keep / "device.key").read_bytes()
    assert (profile / "device.p12").read_bytes() != (keep / "device.p12").read_bytes()
    assert not list(profile.glob("*.new"))
    assert stat.S_IMODE((profile / "device.key").stat().st_mode) == 0o600
    assert certificate_status(iot, old["certificateId"]) == "REVOKED"
    assert certificate_status(iot, new["certificateId"]) == "ACTIVE"
    assert iot.list_thing_principals(thingName=thing_name)["principals"] == [new["certificateArn"]]
    assert accepted(emulator_, profile, new["roleAlias"], thing_name) == 200
    assert accepted(emulator_, keep, old["roleAlias"], thing_name) == 403


def test_rotate_that_cannot_revoke_the_old_certificate_leaves_the_old_identity_working(
        enrolled, emulator_, iot, proxy, tmp_path):
    thing_name, profile, old = enrolled
    before = {p.name: p.read_bytes() for p in profile.iterdir()}
    certificates_before = certificate_ids(iot)
    # An operator policy without iot:UpdateCertificate on the old certificate: AWS says AccessDenied.
    proxy.refuse(lambda method, path, query: method == "PUT" and path == f"/certificates/{old['certificateId']}"
                 and query.get("newStatus") == "REVOKED", 403, "AccessDeniedException")
    env = cli_env(emulator_, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    line = one_line_failure(run_cli(env, "rotate", "--profile-dir", str(profile)), 3)
    assert "AccessDeniedException" in line and "rolled back: certificate" in line and "deleted" in line
    assert proxy.refused, "the injected refusal was never reached"
    assert {p.name: p.read_bytes() for p in profile.iterdir()} == before
    assert certificate_ids(iot) == certificates_before  # the new certificate is gone again
    assert iot.list_thing_principals(thingName=thing_name)["principals"] == [old["certificateArn"]]
    assert accepted(emulator_, profile, old["roleAlias"], thing_name) == 200


def profile_files(profile: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in profile.iterdir()}


def assert_old_identity_untouched(emulator, iot, profile: Path, before: dict, certificates_before: dict,
                                  thing_name: str, old: dict) -> None:
    """Files byte for byte as before (no *.new, no *.old), no certificate left over (the new one is
    deleted, not merely INACTIVE), the old one ACTIVE, attached, and accepted by the endpoint."""
    assert profile_files(profile) == before
    assert certificate_ids(iot) == certificates_before
    assert certificate_status(iot, old["certificateId"]) == "ACTIVE"
    assert iot.list_thing_principals(thingName=thing_name)["principals"] == [old["certificateArn"]]
    assert accepted(emulator, profile, old["roleAlias"], thing_name) == 200


def test_rotate_refused_create_certificate_from_csr_leaves_the_old_identity_working(
        enrolled, emulator_, iot, proxy, tmp_path):
    thing_name, profile, old = enrolled
    before, certificates_before = profile_files(profile), certificate_ids(iot)
    proxy.refuse(lambda method, path, query: method == "POST" and path == "/certificates", 403,
                 "AccessDeniedException")
    env = cli_env(emulator_, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    line = one_line_failure(run_cli(env, "rotate", "--profile-dir", str(profile)), 3)
    assert "creating the certificate from the CSR failed: AccessDeniedException" in line
    assert proxy.refused == ["POST /certificates"]
    assert_old_identity_untouched(emulator_, iot, profile, before, certificates_before, thing_name, old)


def test_rotate_refused_attach_thing_principal_rolls_the_new_certificate_back(
        enrolled, emulator_, iot, proxy, tmp_path):
    thing_name, profile, old = enrolled
    before, certificates_before = profile_files(profile), certificate_ids(iot)
    proxy.refuse(lambda method, path, query: method == "PUT" and path == f"/things/{thing_name}/principals", 403,
                 "AccessDeniedException")
    env = cli_env(emulator_, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    line = one_line_failure(run_cli(env, "rotate", "--profile-dir", str(profile)), 3)
    assert f"attaching the new certificate to thing {thing_name} failed: AccessDeniedException" in line
    assert "rolled back: certificate" in line and "deactivated and deleted" in line
    assert proxy.refused == [f"PUT /things/{thing_name}/principals"]
    assert_old_identity_untouched(emulator_, iot, profile, before, certificates_before, thing_name, old)


def test_rotate_whose_new_certificate_the_endpoint_refuses_leaves_the_old_identity_working(
        enrolled, emulator_, iot, proxy, tmp_path):
    """The activation of the new certificate is answered 200 but never reaches the stand-in: the
    certificate stays INACTIVE and the credentials endpoint refuses it (403), as AWS would."""
    thing_name, profile, old = enrolled
    before, certificates_before = profile_files(profile), certificate_ids(iot)
    proxy.fake_success(lambda method, path, query: method == "PUT" and path.startswith("/certificates/")
                       and path != f"/certificates/{old['certificateId']}" and query.get("newStatus") == "ACTIVE")
    env = cli_env(emulator_, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    line = one_line_failure(run_cli(env, "rotate", "--profile-dir", str(profile)), 6)
    assert "refused the certificate" in line and "403" in line
    assert "rolled back: certificate" in line and "deactivated and deleted" in line
    assert len(proxy.refused) == 1
    assert_old_identity_untouched(emulator_, iot, profile, before, certificates_before, thing_name, old)


def test_rotate_whose_revocation_answer_is_lost_checks_and_keeps_the_new_identity(
        enrolled, emulator_, iot, proxy, tmp_path):
    """UpdateCertificate REVOKED reaches AWS but every answer is a 500: the old certificate is
    REVOKED all the same, so putting the old files back would leave a dead laptop."""
    thing_name, profile, old = enrolled
    keep = tmp_path / "old"
    keep.mkdir()
    for name in ("device.crt", "device.key"):
        shutil.copy2(profile / name, keep / name)
    proxy.lose_answer(lambda method, path, query: method == "PUT" and path == f"/certificates/{old['certificateId']}"
                      and query.get("newStatus") == "REVOKED")
    env = cli_env(emulator_, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    result = json.loads(ok(run_cli(env, "rotate", "--profile-dir", str(profile), "--json")).stdout)
    assert proxy.refused, "the revocation was never attempted"
    new = json.loads((profile / "device.json").read_text())
    assert new["certificateId"] == result["newCertificateId"] != old["certificateId"]
    assert not list(profile.glob("*.new")) and not list(profile.glob("*.old"))
    assert certificate_status(iot, old["certificateId"]) == "REVOKED"
    assert accepted(emulator_, profile, new["roleAlias"], thing_name) == 200
    assert accepted(emulator_, keep, old["roleAlias"], thing_name) == 403


def test_rotate_that_can_neither_revoke_nor_read_the_old_certificate_keeps_the_working_new_identity(
        enrolled, emulator_, iot, proxy, tmp_path):
    thing_name, profile, old = enrolled
    keep = tmp_path / "old"
    keep.mkdir()
    for name in ("device.crt", "device.key"):
        shutil.copy2(profile / name, keep / name)
    old_path = f"/certificates/{old['certificateId']}"
    proxy.refuse(lambda method, path, query: method == "PUT" and path == old_path
                 and query.get("newStatus") == "REVOKED", 403, "AccessDeniedException")
    reads = []  # the first DescribeCertificate (before the revocation) goes through, later ones are refused

    def later_reads(method, path, query):
        if method == "GET" and path == old_path:
            reads.append(path)
            return len(reads) > 1
        return False

    proxy.refuse(later_reads, 403, "AccessDeniedException")
    env = cli_env(emulator_, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    line = one_line_failure(run_cli(env, "rotate", "--profile-dir", str(profile)), 3)
    new = json.loads((profile / "device.json").read_text())
    assert new["certificateId"] != old["certificateId"]
    assert f"revoking certificate {old['certificateId']} failed: AccessDeniedException" in line
    assert f"this laptop now uses certificate {new['certificateId']}, which works" in line
    assert f"old certificate {old['certificateId']} may still be ACTIVE" in line
    assert not list(profile.glob("*.new")) and not list(profile.glob("*.old"))
    assert certificate_status(iot, new["certificateId"]) == "ACTIVE"
    assert accepted(emulator_, profile, new["roleAlias"], thing_name) == 200
    iot.update_certificate(certificateId=old["certificateId"], newStatus="REVOKED")  # what the message says to do
    assert accepted(emulator_, keep, old["roleAlias"], thing_name) == 403


def test_rotate_without_a_profile_is_a_local_file_error(env, tmp_path):
    line = one_line_failure(run_cli(env, "rotate", "--profile-dir", str(tmp_path / "none")), 5)
    assert "enroll this laptop first" in line


# ---------------------------------------------------------------- status

def test_status_lists_the_group_with_certificate_status_and_expiry(enrolled, env, stack):
    thing_name, _profile, device = enrolled
    table = ok(run_cli(env, "status")).stdout
    assert table.splitlines()[0].split() == ["THING", "CERTIFICATE", "STATUS", "NOT", "AFTER"]
    row = next(line for line in table.splitlines() if line.startswith(thing_name + " "))
    assert row.split() == [thing_name, device["certificateId"], "ACTIVE", device["notAfter"]]
    report = json.loads(ok(run_cli(env, "status", "--json")).stdout)
    assert report["thingGroup"] == stack.outputs["ThingGroupName"]
    mine = next(t for t in report["things"] if t["thingName"] == thing_name)
    assert mine["certificates"] == [{"certificateId": device["certificateId"], "status": "ACTIVE",
                                     "notAfter": device["notAfter"]}]


def test_status_of_one_thing_shows_a_revoked_certificate(enrolled, env, iot):
    thing_name, _profile, device = enrolled
    iot.update_certificate(certificateId=device["certificateId"], newStatus="REVOKED")
    report = json.loads(ok(run_cli(env, "status", "--thing-name", thing_name, "--json")).stdout)
    assert report["things"][0]["certificates"][0]["status"] == "REVOKED"
    assert json.loads(ok(run_cli(env, "status", "--thing-name", new_thing_name(), "--json")).stdout)[
        "things"][0]["registered"] is False


# ---------------------------------------------------------------- region

def test_aws_region_alone_is_enough(enrolled, env):
    """The pinned boto3 (and the AWS CLI v1) read only AWS_DEFAULT_REGION; the provisioner
    also takes AWS_REGION, which newer SDKs and most shells' habits use."""
    thing_name, _profile, device = enrolled
    env = {k: v for k, v in env.items() if k != "AWS_DEFAULT_REGION"}
    assert env["AWS_REGION"] == "us-east-1" and not Path(env["AWS_CONFIG_FILE"]).read_text().strip()
    report = json.loads(ok(run_cli(env, "status", "--thing-name", thing_name, "--json")).stdout)
    assert report["things"][0]["certificates"][0]["certificateId"] == device["certificateId"]


def test_no_region_anywhere_is_one_line_naming_both_ways_to_give_one(env):
    env = {k: v for k, v in env.items() if k not in ("AWS_DEFAULT_REGION", "AWS_REGION")}
    line = one_line_failure(run_cli(env, "status"), 3)
    assert "no AWS region" in line and "--region" in line
    assert "AWS_DEFAULT_REGION" in line and "AWS_REGION" in line
    assert "iot" not in line  # status's first call is CloudFormation: the message names no service


# ---------------------------------------------------------------- throttling

def test_throttled_calls_are_retried_by_botocore(enrolled, emulator_, proxy, tmp_path):
    thing_name, _profile, device = enrolled
    proxy.refuse(lambda method, path, query: method == "GET" and path == f"/things/{thing_name}", 400,
                 "ThrottlingException", times=2)
    env = cli_env(emulator_, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    report = json.loads(ok(run_cli(env, "status", "--thing-name", thing_name, "--json")).stdout)
    assert report["things"][0]["certificates"][0]["certificateId"] == device["certificateId"]
    assert len(proxy.refused) == 2


def test_endless_throttling_gives_up_after_bounded_retries(emulator_, proxy, tmp_path):
    thing_name = new_thing_name()
    proxy.refuse(lambda method, path, query: path == f"/things/{thing_name}", 400, "ThrottlingException")
    env = cli_env(emulator_, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    line = one_line_failure(run_cli(env, "status", "--thing-name", thing_name), 3)
    assert "ThrottlingException" in line and "try again" in line
    assert len(proxy.refused) == 5  # 1 call + 4 retries (standard mode, max_attempts 5)


def test_ctrl_c_during_register_thing_rolls_the_certificate_back(emulator_, iot, proxy, tmp_path):
    import signal
    import time

    before = certificate_ids(iot)
    proxy.hold(lambda method, path, query: method == "POST" and path == "/things")  # RegisterThing hangs
    env = cli_env(emulator_, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    thing_name = new_thing_name()
    process = subprocess.Popen([sys.executable, "-m", "provisioner", "enroll", "--thing-name", thing_name,
                                "--profile-dir", str(tmp_path / "p")], env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not proxy.held and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert proxy.held, "enroll never reached RegisterThing"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 2 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("device-trust: rolled back: certificate ") and "deactivated and deleted" in lines[0]
    assert lines[1] == "device-trust: interrupted"
    assert certificate_ids(iot) == before
    assert not thing_exists(iot, thing_name)
    assert not (tmp_path / "p" / "device.json").exists()


# ---------------------------------------------------------------- rollback (a private stand-in we may break)

@pytest.fixture(scope="module")
def private_stack(local_template, tmp_path_factory):
    with start_emulator(tmp_path_factory.mktemp("private-emulator")) as emulator:
        yield deploy_template(emulator, local_template.template)


def test_rollback_when_register_thing_fails_leaves_no_active_certificate(private_stack, tmp_path):
    emulator = private_stack.emulator
    iot = emulator.client("iot")
    policy_name = private_stack.outputs["DevicePolicyName"]
    document = iot.get_policy(policyName=policy_name)["policyDocument"]
    iot.delete_policy(policyName=policy_name)  # the template's policy is gone: RegisterThing refuses
    try:
        before = certificate_ids(iot)
        thing_name = new_thing_name()
        env = cli_env(emulator, tmp_path)
        line = one_line_failure(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir",
                                        str(tmp_path / "p")), 3)
        assert "RegisterThing" in line and "rolled back: certificate" in line and "deactivated and deleted" in line
        assert certificate_ids(iot) == before
        assert "ACTIVE" not in certificate_ids(iot).values()
        assert not thing_exists(iot, thing_name)
        assert not (tmp_path / "p" / "device.json").exists() and not (tmp_path / "p" / "device.key").exists()
    finally:
        iot.create_policy(policyName=policy_name, policyDocument=document)


def test_failure_after_registration_rolls_back_certificate_and_the_new_thing(private_stack, tmp_path):
    emulator = private_stack.emulator
    iot = emulator.client("iot")
    alias = private_stack.outputs["RoleAliasName"]
    described = iot.describe_role_alias(roleAlias=alias)["roleAliasDescription"]
    iot.delete_role_alias(roleAlias=alias)  # the credentials endpoint now answers 404 for every laptop
    try:
        before = certificate_ids(iot)
        thing_name = new_thing_name()
        env = cli_env(emulator, tmp_path)
        line = one_line_failure(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir",
                                        str(tmp_path / "p")), 6)
        assert "Role alias does not exist" in line
        assert f"thing {thing_name} deleted" in line and "deactivated and deleted" in line
        assert certificate_ids(iot) == before
        assert not thing_exists(iot, thing_name)
        assert sorted(p.name for p in (tmp_path / "p").iterdir()) == []
    finally:
        iot.create_role_alias(roleAlias=alias, roleArn=described["roleArn"],
                              credentialDurationSeconds=described["credentialDurationSeconds"])


def test_failed_forced_reenroll_keeps_the_thing_and_the_old_identity(private_stack, tmp_path):
    emulator = private_stack.emulator
    iot = emulator.client("iot")
    env = cli_env(emulator, tmp_path)
    thing_name, profile = new_thing_name(), tmp_path / "p"
    ok(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile)))
    old = json.loads((profile / "device.json").read_text())
    before = {p.name: p.read_bytes() for p in profile.iterdir()}
    alias = old["roleAlias"]
    described = iot.describe_role_alias(roleAlias=alias)["roleAliasDescription"]
    iot.delete_role_alias(roleAlias=alias)
    try:
        line = one_line_failure(run_cli(env, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile),
                                        "--force"), 6)
        assert "rolled back" in line and f"thing {thing_name} deleted" not in line
    finally:
        iot.create_role_alias(roleAlias=alias, roleArn=described["roleArn"],
                              credentialDurationSeconds=described["credentialDurationSeconds"])
    assert thing_exists(iot, thing_name)
    assert {p.name: p.read_bytes() for p in profile.iterdir()} == before
    assert iot.list_thing_principals(thingName=thing_name)["principals"] == [old["certificateArn"]]
    assert accepted(emulator, profile, alias, thing_name) == 200
