"""The pure identity core: names, key pairs, CSRs, PKCS#12 bundles (provisioner/keys.py).

PKCS#12 bundles are also read back with the openssl binary, a reader we did not
write: the point of the legacy format is that other importers accept it.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from provisioner import keys
from provisioner.enrollment import certificate_id_from_arn, device_attributes, template_parameters
from provisioner.errors import UsageError

PASSWORD = b"correct horse battery"


def _self_signed(key, cn="laptop-1", org="DeviceTrust local", days=365) -> bytes:
    """A certificate for ``key`` the way a CA would issue one from the CSR (test-made, never committed)."""
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca_key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=days)).sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["a", "laptop-1", "Mac_Book:2026", "x" * 128, "0-9_:"])
def test_valid_thing_names_are_accepted(name):
    assert keys.validate_thing_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 129, "with space", "slash/name", "dot.name", "ümlaut", "semi;colon",
                                  "new\nline", "$(id)"])
def test_invalid_thing_names_are_refused_with_the_rule(name):
    with pytest.raises(UsageError, match="invalid thing name.*1-128 characters"):
        keys.validate_thing_name(name)


@pytest.mark.parametrize("value", ["a b", "x" * 801, "quote'", "tab\t"])
def test_invalid_attribute_values_are_refused(value):
    with pytest.raises(UsageError, match="invalid --owner"):
        keys.validate_attribute("--owner", value)


def test_email_like_owner_is_a_valid_attribute():
    assert keys.validate_attribute("--owner", "ada.lovelace@example.com") == "ada.lovelace@example.com"


# ---------------------------------------------------------------- keys and CSRs

@pytest.mark.parametrize("key_type,kind,size", [
    ("ec-p256", ec.EllipticCurvePrivateKey, 256), ("ec-p384", ec.EllipticCurvePrivateKey, 384),
    ("rsa-2048", rsa.RSAPrivateKey, 2048), ("rsa-3072", rsa.RSAPrivateKey, 3072)])
def test_each_key_type_makes_the_promised_key(key_type, kind, size):
    key = keys.generate_private_key(key_type)
    assert isinstance(key, kind) and key.key_size == size


def test_unknown_key_type_is_a_usage_error():
    with pytest.raises(UsageError, match="invalid key type 'dsa-1024'"):
        keys.generate_private_key("dsa-1024")


def test_private_key_pem_is_unencrypted_pkcs8_and_round_trips():
    key = keys.generate_private_key()
    pem = keys.private_key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert keys.load_private_key(pem).private_numbers() == key.private_numbers()


def test_csr_subject_names_the_thing_and_the_environment_and_is_signed_by_the_key():
    key = keys.generate_private_key("ec-p384")
    csr = x509.load_pem_x509_csr(keys.build_csr(key, "laptop-7", "staging"))
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "laptop-7"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "DeviceTrust staging"
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)


def test_inspect_csr_reports_name_org_and_key_type():
    summary = keys.inspect_csr(keys.build_csr(keys.generate_private_key("rsa-2048"), "lap", "dev"))
    assert (summary.common_name, summary.organization, summary.public_key_type) == ("lap", "DeviceTrust dev", "rsa-2048")


def test_inspect_csr_refuses_garbage():
    with pytest.raises(UsageError, match="not a PEM certificate signing request"):
        keys.inspect_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n")


def test_inspect_csr_refuses_a_cn_that_is_not_a_thing_name():
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad name")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(UsageError, match="invalid thing name 'bad name'"):
        keys.inspect_csr(csr)


def test_inspect_csr_refuses_weak_rsa_keys():
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lap")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(UsageError, match="rsa-1024.*not accepted"):
        keys.inspect_csr(csr)


def test_certificate_matches_only_its_own_key():
    key, other = keys.generate_private_key(), keys.generate_private_key()
    cert = _self_signed(key)
    assert keys.certificate_matches_key(cert, key)
    assert not keys.certificate_matches_key(cert, other)


def test_certificate_id_is_aws_iot_style_sha256_of_der():
    cert = _self_signed(keys.generate_private_key())
    der = x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
    import hashlib

    assert keys.certificate_id(cert) == hashlib.sha256(der).hexdigest()


def test_timestamps_are_utc_with_z():
    moment = dt.datetime(2026, 1, 18, 10, 18, 6, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert keys.format_timestamp(moment) == "2026-01-18T09:18:06Z"


# ---------------------------------------------------------------- template parameters

def test_template_parameters_carry_only_given_attributes():
    assert template_parameters("lap", "ab" * 32) == {"ThingName": "lap", "AWS::IoT::Certificate::Id": "ab" * 32}
    attributes = device_attributes(owner="o@x.io", serial_number="SN1", platform="macos")
    assert template_parameters("lap", "c", attributes) == {
        "ThingName": "lap", "AWS::IoT::Certificate::Id": "c", "Owner": "o@x.io", "SerialNumber": "SN1",
        "Platform": "macos"}


def test_template_parameters_validate_before_any_call():
    with pytest.raises(UsageError, match="--serial"):
        device_attributes(serial_number="has space")


def test_certificate_id_is_read_from_certificate_arns_only():
    assert certificate_id_from_arn("arn:aws:iot:us-east-1:123456789012:cert/abc123") == "abc123"
    assert certificate_id_from_arn("arn:aws:cognito-identity:us-east-1:123456789012:identitypool/x") is None


# ---------------------------------------------------------------- PKCS#12

def _p12(encryption, key_type="ec-p256"):
    key = keys.generate_private_key(key_type)
    cert = _self_signed(key)
    return key, cert, keys.build_pkcs12(key, cert, friendly_name="laptop-1", password=PASSWORD, encryption=encryption)


@pytest.mark.parametrize("encryption", ["legacy", "aes256"])
def test_pkcs12_holds_key_certificate_and_friendly_name(encryption):
    key, cert, data = _p12(encryption)
    bundle = pkcs12.load_pkcs12(data, PASSWORD)
    assert bundle.key.private_numbers() == key.private_numbers()
    assert bundle.cert.certificate.public_bytes(serialization.Encoding.PEM) == cert
    assert bundle.cert.friendly_name == b"laptop-1"


def test_pkcs12_refuses_the_wrong_password():
    _, _, data = _p12("legacy")
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(data, b"wrong password")


def test_pkcs12_refuses_short_passwords_and_unknown_encryptions():
    key = keys.generate_private_key()
    cert = _self_signed(key)
    with pytest.raises(UsageError, match="at least 8"):
        keys.build_pkcs12(key, cert, friendly_name="l", password=b"short")
    with pytest.raises(UsageError, match="invalid PKCS#12 encryption 'des'"):
        keys.build_pkcs12(key, cert, friendly_name="l", password=PASSWORD, encryption="des")


def _openssl_info(data: bytes, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "device.p12"
    path.write_bytes(data)
    env = {**os.environ, "P12_PASSWORD": PASSWORD.decode()}
    return subprocess.run(["openssl", "pkcs12", "-info", "-in", str(path), "-passin", "env:P12_PASSWORD",
                           "-nokeys", "-noout", *extra], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture(scope="module")
def openssl_binary() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("the openssl binary is needed to check PKCS#12 compatibility (apt-get install openssl)")
    return path


def test_legacy_pkcs12_uses_3des_and_sha1_mac_as_openssl_reports(tmp_path, openssl_binary):
    _, _, data = _p12("legacy")
    # PBE-SHA1-3DES with a SHA-1 MAC is what the macOS keychain and older importers expect;
    # OpenSSL 3's default provider still reads it (only RC2-40 needs -legacy).
    result = _openssl_info(data, tmp_path)
    assert result.returncode == 0, result.stderr
    report = result.stderr + result.stdout
    assert "MAC: sha1" in report
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in report
    assert "Iteration 2048" in report


def test_aes256_pkcs12_is_read_by_openssl_without_legacy_provider(tmp_path, openssl_binary):
    _, _, data = _p12("aes256", "rsa-2048")
    result = _openssl_info(data, tmp_path)
    assert result.returncode == 0, result.stderr
    report = result.stderr + result.stdout
    assert "MAC: sha256" in report
    assert "AES-256-CBC" in report


def test_openssl_extracts_the_same_certificate_from_the_legacy_bundle(tmp_path, openssl_binary):
    _, cert, data = _p12("legacy")
    path = tmp_path / "device.p12"
    path.write_bytes(data)
    env = {**os.environ, "P12_PASSWORD": PASSWORD.decode()}
    result = subprocess.run(["openssl", "pkcs12", "-in", str(path), "-passin", "env:P12_PASSWORD", "-nokeys",
                             "-clcerts"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "friendlyName: laptop-1" in result.stdout
    extracted = x509.load_pem_x509_certificate(result.stdout[result.stdout.index("-----BEGIN"):].encode())
    assert extracted == x509.load_pem_x509_certificate(cert)


def test_openssl_decrypts_the_private_key_from_the_legacy_bundle(tmp_path, openssl_binary):
    key, _, data = _p12("legacy")
    path = tmp_path / "device.p12"
    path.write_bytes(data)
    env = {**os.environ, "P12_PASSWORD": PASSWORD.decode()}
    result = subprocess.run(["openssl", "pkcs12", "-in", str(path), "-passin", "env:P12_PASSWORD", "-nocerts",
                             "-nodes"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    pem = result.stdout[result.stdout.index("-----BEGIN"):].encode()
    assert keys.load_private_key(pem).private_numbers() == key.private_numbers()
