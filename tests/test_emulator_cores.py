"""The stand-in's pure cores: template language, IoT policy evaluation, the
credentials provider's decision order, token buckets, the CA."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from emulator.ca import build_ca, issue_server_certificate, load_or_create_ca, sign_device_csr, write_private
from emulator.cli import is_loopback_host
from emulator.credentials import (
    CertificateInfo,
    CredentialsRequest,
    IssuedCredentials,
    RoleAliasInfo,
    RoleInfo,
    ThingInfo,
    decide,
    trusts_credentials_provider,
)
from emulator.errors import CsrError, StartupError, TemplateError
from emulator.iot_policy import is_allowed
from emulator.provisioning import render_template
from emulator.throttle import TokenBuckets
from tests.fixtures.emulator import make_key_and_csr

NOW = datetime.datetime(2026, 1, 18, 8, 18, 6, tzinfo=datetime.timezone.utc)
ALIAS_ARN = "arn:aws:iot:us-east-1:123456789012:rolealias/laptops"


# ---------------------------------------------------------------- provisioning templates


def test_template_resolves_ref_join_sub_and_defaults():
    body = {
        "Parameters": {
            "ThingName": {"Type": "String"},
            "AWS::IoT::Certificate::Id": {"Type": "String"},
            "Owner": {"Type": "String", "Default": "unassigned"},
        },
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {"Ref": "ThingName"},
                    "AttributePayload": {
                        "owner": {"Ref": "Owner"},
                        "label": {"Fn::Join": [":", ["laptop", {"Ref": "ThingName"}]]},
                        "sub": {"Fn::Sub": "${Owner}@${ThingName}"},
                    },
                },
            },
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "Active"}},
        },
    }
    plan = render_template(json.dumps(body), {"ThingName": "mac-1", "AWS::IoT::Certificate::Id": "abc"})
    assert plan.thing.attributes == {"owner": "unassigned", "label": "laptop:mac-1", "sub": "unassigned@mac-1"}
    assert (plan.certificate.certificate_id, plan.certificate.status) == ("abc", "ACTIVE")


def test_certificate_status_defaults_to_active_and_inline_policy_is_named_by_sha256():
    document = '{"Version": "2012-10-17", "Statement": []}'
    body = {
        "Resources": {
            "c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": "abc"}},
            "p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": document}},
        }
    }
    plan = render_template(body, {})
    assert plan.certificate.status == "ACTIVE"
    assert plan.policies[0].policy_name == hashlib.sha256(document.encode()).hexdigest()


@pytest.mark.parametrize(
    "body, parameters, message",
    [
        ({"Parameters": {"ThingName": {"Type": "String"}}, "Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "ThingName"}}}}}, {}, "ThingName is missing"),
        ({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "Nope"}}}}}, {}, "undeclared parameter"),
        ({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::If": []}}}}}, {}, "Unsupported intrinsic"),
        ({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "bad name!"}}}}, {}, "not valid"),
        ({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a"}, "OverrideSettings": {"ThingGroups": "SOMETIMES"}}}}, {}, "OverrideSettings"),
        ({"Resources": {"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "x"}}}}, {}, "needs a certificate"),
        ({"Resources": {"c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": "x", "Status": "REVOKED"}}}}, {}, "Status"),
        ({"Resources": {}}, {}, "no Resources"),
        ({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::Select": [2, ["a", "b"]]}}}}}, {}, "out of range"),
        ({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::Select": [0, [None]]}}}}}, {}, "null"),
        ({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::FindInMap": ["M", "a", "b"]}}}}}, {}, "no mapping named M"),
        ({"Mappings": {"M": {"a": "flat"}}, "Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a"}}}}, {}, "Mappings"),
        ({"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a"}, "OverrideSettings": {"ThingTypeName": "MERGE"}}}}, {}, "OverrideSettings"),
    ],
)
def test_template_errors_say_what_is_wrong(body, parameters, message):
    with pytest.raises(TemplateError, match=message):
        render_template(body, parameters)


# ---------------------------------------------------------------- IoT policy evaluation


def statement(effect: str, action, resource) -> dict:
    return {"Effect": effect, "Action": action, "Resource": resource}


def document(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_policy_needs_an_allow():
    assert not is_allowed([], "iot:AssumeRoleWithCertificate", ALIAS_ARN)
    assert is_allowed([document(statement("Allow", "iot:AssumeRoleWithCertificate", ALIAS_ARN))], "iot:AssumeRoleWithCertificate", ALIAS_ARN)


def test_deny_in_any_policy_wins():
    allow = document(statement("Allow", "iot:*", "*"))
    deny = document(statement("Deny", "iot:AssumeRoleWithCertificate", "arn:aws:iot:*:*:rolealias/lap*"))
    assert not is_allowed([allow, deny], "iot:AssumeRoleWithCertificate", ALIAS_ARN)


def test_resource_match_is_case_sensitive_action_match_is_not():
    assert is_allowed([document(statement("Allow", "IOT:assumerolewithcertificate", ALIAS_ARN))], "iot:AssumeRoleWithCertificate", ALIAS_ARN)
    assert not is_allowed([document(statement("Allow", "iot:*", ALIAS_ARN.upper()))], "iot:AssumeRoleWithCertificate", ALIAS_ARN)


def test_policy_variables_resolve_or_match_nothing():
    doc = document(statement("Allow", "iot:AssumeRoleWithCertificate", "arn:aws:iot:us-east-1:123456789012:rolealias/${iot:Connection.Thing.ThingName}"))
    assert is_allowed([doc], "iot:AssumeRoleWithCertificate", ALIAS_ARN, {"iot:Connection.Thing.ThingName": "laptops"})
    assert not is_allowed([doc], "iot:AssumeRoleWithCertificate", ALIAS_ARN, {})
    # A variable's value is literal text, never a wildcard.
    assert not is_allowed([doc], "iot:AssumeRoleWithCertificate", ALIAS_ARN, {"iot:Connection.Thing.ThingName": "*"})


def test_not_action_and_not_resource():
    assert is_allowed([document({"Effect": "Allow", "NotAction": "iot:Connect", "Resource": "*"})], "iot:AssumeRoleWithCertificate", ALIAS_ARN)
    assert not is_allowed([document({"Effect": "Allow", "Action": "*", "NotResource": ALIAS_ARN})], "iot:AssumeRoleWithCertificate", ALIAS_ARN)


# ---------------------------------------------------------------- credentials provider decision


class Registry:
    """In-memory registry with every rule satisfied; tests break one thing at a time."""

    def __init__(self) -> None:
        self.cert = CertificateInfo("c" * 64, "arn:aws:iot:us-east-1:123456789012:cert/" + "c" * 64, "ACTIVE", {"CommonName": "mac"})
        self.things = {"mac": ThingInfo("mac", None, {})}
        self.documents = [document(statement("Allow", "iot:AssumeRoleWithCertificate", ALIAS_ARN))]
        self.alias: RoleAliasInfo | None = RoleAliasInfo("laptops", ALIAS_ARN, "arn:aws:iam::123456789012:role/device", 3600)
        trust = json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"Service": "credentials.iot.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
        self.role_info: RoleInfo | None = RoleInfo("arn:aws:iam::123456789012:role/device", 3600, trust)

    def certificate(self, certificate_id):
        return self.cert if certificate_id == self.cert.certificate_id else None

    def attached_thing(self, certificate_arn, thing_name):
        return self.things.get(thing_name)

    def policy_documents(self, certificate_arn):
        return self.documents

    def role_alias(self, name):
        return self.alias if self.alias and name == self.alias.name else None

    def role_alias_arn(self, name):
        return f"arn:aws:iot:us-east-1:123456789012:rolealias/{name}"

    def role(self, role_arn):
        return self.role_info


def assume(role_arn: str, session_name: str, duration: int) -> IssuedCredentials:
    assert session_name == "c" * 64
    return IssuedCredentials("ASIAEXAMPLE", "secret", "token", NOW + datetime.timedelta(seconds=duration))


def ask(registry: Registry, thing: str | None = "mac"):
    return decide(CredentialsRequest("c" * 64, "laptops", thing), registry, assume)


def test_decision_success_shape_and_expiration_format():
    answer = ask(Registry())
    assert answer.status == 200
    assert json.loads(answer.body_bytes) == {
        "credentials": {"accessKeyId": "ASIAEXAMPLE", "secretAccessKey": "secret", "sessionToken": "token", "expiration": "2026-01-18T09:18:06Z"}
    }


def test_decision_order_follows_aws():
    registry = Registry()
    registry.things = {}
    registry.documents = []
    registry.alias = None
    registry.role_info = None
    assert ask(registry).body == {"message": "Invalid thing name passed"}
    assert ask(registry, thing=None).body == {"message": "Access Denied"}
    registry.documents = [document(statement("Allow", "*", "*"))]
    assert ask(registry, thing=None).status == 404
    registry.alias = RoleAliasInfo("laptops", ALIAS_ARN, "arn:aws:iam::123456789012:role/device", 7200)
    assert ask(registry, thing=None).body["message"].startswith("Unable to assume the role")
    registry.role_info = Registry().role_info
    assert ask(registry, thing=None).body["message"].startswith("The requested CredentialDurationSeconds")


def test_trust_policy_must_name_the_credentials_provider():
    assert trusts_credentials_provider({"Statement": [{"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com", "credentials.iot.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}]})
    assert not trusts_credentials_provider({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    assert not trusts_credentials_provider("not json")


# ---------------------------------------------------------------- token buckets


def test_token_bucket_allows_burst_then_refills_at_rate():
    clock = [0.0]
    buckets = TokenBuckets({"iot.DescribeEndpoint": 10}, clock=lambda: clock[0])
    assert [buckets.throttled("iot.DescribeEndpoint") for _ in range(11)] == [False] * 10 + [True]
    clock[0] += 0.1
    assert buckets.throttled("iot.DescribeEndpoint") is False
    assert buckets.throttled("iot.DescribeEndpoint") is True
    assert buckets.throttled("iot.Other") is False  # separate bucket per operation


# ---------------------------------------------------------------- CA


def test_device_certificate_lasts_until_2049_like_aws_and_is_not_a_ca():
    ca_key, ca_cert = build_ca(NOW)
    _, csr = make_key_and_csr("mac")
    cert = x509.load_pem_x509_certificate(sign_device_csr(ca_key, ca_cert, csr, NOW))
    assert cert.not_valid_after_utc == datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_tampered_csr_is_refused():
    ca_key, ca_cert = build_ca(NOW)
    _, csr = make_key_and_csr("mac")
    _, other = make_key_and_csr("mac", key=ec.generate_private_key(ec.SECP256R1()))
    tampered = csr.splitlines()[:3] + other.splitlines()[3:]
    with pytest.raises(CsrError):
        sign_device_csr(ca_key, ca_cert, "\n".join(tampered), NOW)


def test_server_certificate_is_short_lived_for_browsers():
    ca_key, ca_cert = build_ca(NOW)
    _, cert_pem = issue_server_certificate(ca_key, ca_cert, NOW)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 398


def test_state_dir_ca_is_created_once(tmp_path):
    first = load_or_create_ca(tmp_path / "state")
    second = load_or_create_ca(tmp_path / "state")
    assert first.cert_pem == second.cert_pem
    assert (tmp_path / "state" / "ca.key").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------- the state directory's secret files


def _plant_symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


@pytest.mark.parametrize("planted", ["ca.key.tmp", "ca.key", "ca.pem"])
def test_ca_files_are_never_written_through_a_planted_symlink(tmp_path, planted):
    state = tmp_path / "state"
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"someone else's file\n")
    victim.chmod(0o644)
    _plant_symlink(state / planted, victim)

    ca = load_or_create_ca(state)

    assert victim.read_bytes() == b"someone else's file\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    for name in ("ca.key", "ca.pem"):
        assert not (state / name).is_symlink()
        assert (state / name).is_file()
    assert load_or_create_ca(state).cert_pem == ca.cert_pem


def test_ca_key_is_not_written_through_a_dangling_symlink(tmp_path):
    state = tmp_path / "state"
    target = tmp_path / "elsewhere" / "stolen.key"
    target.parent.mkdir()
    _plant_symlink(state / "ca.key.tmp", target)

    load_or_create_ca(state)

    assert not target.exists()
    assert b"PRIVATE KEY" in (state / "ca.key").read_bytes()


def test_ca_key_never_passes_through_a_preexisting_readable_temporary_file(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    stale = state / "ca.key.tmp"
    stale.write_bytes(b"")
    stale.chmod(0o644)
    # Someone who could read the 0644 file keeps it open: whatever is ever written into it, they see.
    with open(stale, "rb") as reader:
        load_or_create_ca(state)
        assert b"PRIVATE KEY" not in reader.read()
    assert stat.S_IMODE((state / "ca.key").stat().st_mode) == 0o600
    assert [p.name for p in state.iterdir() if p.name.endswith(".tmp") and p.name != "ca.key.tmp"] == []


def test_write_private_syncs_every_byte_at_0600_before_it_replaces_the_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.key"
    path.write_bytes(b"old")
    data = b"new secret " * 10_000
    synced: list[tuple[int, bytes]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            # The temporary file, opened write-only; read it back through /proc (Linux).
            synced.append((stat.S_IMODE(os.fstat(fd).st_mode), Path(f"/proc/self/fd/{fd}").read_bytes()))
            assert path.read_bytes() == b"old", "the file was replaced before its bytes were on disk"
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_private(path, data)
    assert synced == [(0o600, data)]
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.key"]


def test_state_dir_is_created_owner_only(tmp_path):
    load_or_create_ca(tmp_path / "new" / "state")
    assert stat.S_IMODE((tmp_path / "new" / "state").stat().st_mode) == 0o700


def test_existing_state_dir_is_tightened_to_owner_only(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    load_or_create_ca(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_state_dir_of_another_user_is_refused(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)
    with pytest.raises(StartupError, match="belongs to another user"):
        load_or_create_ca(state)
    assert list(state.iterdir()) == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True), ("LOCALHOST", True),
        ("0.0.0.0", False), ("::", False), ("", False), ("192.0.2.10", False), ("10.0.0.1", False),
        ("stand-in.example", False), ("localhost.example", False), ("127.1", False),
    ],
)
def test_only_loopback_hosts_count_as_local(host, loopback):
    assert is_loopback_host(host) is loopback
