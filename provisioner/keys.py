"""Pure cryptography for the device identity: key pairs, CSRs, PKCS#12, names.

Bytes and objects in, bytes and objects out: nothing here touches files, the
network or AWS. The private key is made here, on the laptop, and only ever leaves
this module as PEM for :func:`provisioner.profile.write_secret_file` or inside a
password-protected PKCS#12 bundle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from provisioner.errors import UsageError

# AWS IoT thing names: https://docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html
THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
# AWS IoT attribute values (Owner, SerialNumber, Platform): API_AttributePayload
ATTRIBUTE_VALUE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{1,800}")

KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072")
DEFAULT_KEY_TYPE = "ec-p256"

PKCS12_ENCRYPTIONS = ("legacy", "aes256")
DEFAULT_PKCS12_ENCRYPTION = "legacy"
MIN_PKCS12_PASSWORD_LENGTH = 8

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def validate_thing_name(name: str) -> str:
    """Return ``name`` if AWS IoT accepts it as a thing name, else raise UsageError."""
    if not isinstance(name, str) or not THING_NAME.fullmatch(name):
        raise UsageError(
            f"invalid thing name {name!r}: use 1-128 characters from letters, digits, ':', '_' and '-'"
        )
    return name


def validate_attribute(option: str, value: str | None) -> str | None:
    """Return ``value`` if AWS IoT accepts it as a thing attribute value (None passes)."""
    if value is None:
        return None
    if not ATTRIBUTE_VALUE.fullmatch(value):
        raise UsageError(
            f"invalid {option} {value!r}: use 1-800 characters from letters, digits and _.,@/:#=[]-"
        )
    return value


def environment_organization(environment: str) -> str:
    """The O of the device certificate's subject: names the environment for browser filters."""
    return f"DeviceTrust {environment}"


def generate_private_key(key_type: str = DEFAULT_KEY_TYPE) -> PrivateKey:
    """A new private key of ``key_type`` (one of KEY_TYPES)."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type in ("rsa-2048", "rsa-3072"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type.split("-")[1]))
    raise UsageError(f"invalid key type {key_type!r}: choose one of {', '.join(KEY_TYPES)}")


def private_key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: the file is protected by mode 0600 in a 0700 directory."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> PrivateKey:
    """Parse a PEM private key; ValueError if it is not an EC or RSA key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError("not an EC or RSA private key")
    return key


def build_csr(key: PrivateKey, thing_name: str, environment: str) -> bytes:
    """A PEM CSR with subject CN=<thing name>, O=DeviceTrust <environment>, signed with SHA-256."""
    validate_thing_name(thing_name)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, thing_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, environment_organization(environment)),
    ])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class CsrSummary:
    """What an operator needs to know about a CSR before turning it into a certificate."""

    common_name: str
    organization: str | None
    public_key_type: str


def _key_type_of(public_key) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"ec-{public_key.curve.name}"
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    return type(public_key).__name__


def inspect_csr(pem: bytes) -> CsrSummary:
    """Parse and check a CSR: valid PEM, valid self-signature, acceptable key, CN a thing name.

    Raises UsageError with a one-line reason otherwise.
    """
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise UsageError("the CSR file is not a PEM certificate signing request") from exc
    if not csr.is_signature_valid:
        raise UsageError("the CSR's signature does not verify: make a new one with the csr verb")
    public_key = csr.public_key()
    key_type = _key_type_of(public_key)
    allowed = {"ec-secp256r1", "ec-secp384r1"} | {f"rsa-{n}" for n in (2048, 3072, 4096)}
    if key_type not in allowed:
        raise UsageError(f"the CSR's key ({key_type}) is not accepted: use EC P-256/P-384 or RSA 2048/3072")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise UsageError("the CSR's subject must have exactly one CN (the thing name)")
    common_name = validate_thing_name(str(names[0].value))
    orgs = csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return CsrSummary(common_name, str(orgs[0].value) if orgs else None, key_type)


def load_certificate(pem: bytes) -> x509.Certificate:
    """Parse a PEM certificate; UsageError if it is not one."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise UsageError("the certificate file is not a PEM X.509 certificate") from exc


def certificate_matches_key(cert_pem: bytes, key: PrivateKey) -> bool:
    """True if the certificate carries the public half of ``key``."""
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    cert_public = load_certificate(cert_pem).public_key().public_bytes(serialization.Encoding.DER, public)
    return cert_public == key.public_key().public_bytes(serialization.Encoding.DER, public)


def certificate_not_after(cert_pem: bytes) -> datetime:
    """The certificate's notAfter, UTC-aware."""
    return load_certificate(cert_pem).not_valid_after_utc


def certificate_id(cert_pem: bytes) -> str:
    """AWS IoT's certificate id: lowercase hex SHA-256 of the DER encoding."""
    return load_certificate(cert_pem).fingerprint(hashes.SHA256()).hex()


def format_timestamp(moment: datetime) -> str:
    """``2026-01-18T09:18:06Z``: the format device.json and AWS use."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_pkcs12(
    key: PrivateKey,
    cert_pem: bytes,
    *,
    friendly_name: str,
    password: bytes,
    encryption: str = DEFAULT_PKCS12_ENCRYPTION,
) -> bytes:
    """A password-protected PKCS#12 bundle of key + certificate.

    ``legacy`` (default): PBE-SHA1-3DES for key and certificate, SHA-1 MAC, 2048
    rounds. The macOS keychain and older Windows/NSS importers reject OpenSSL 3's
    AES/PBKDF2 default; this format every importer reads. ``aes256``: PBES2 with
    AES-256-CBC and an HMAC-SHA256 MAC for modern stores. Both use 2048 KDF rounds,
    OpenSSL's own default: the bundle sits beside device.key (0600), so its password
    guards the import into a store, not the key at rest.
    """
    if encryption not in PKCS12_ENCRYPTIONS:
        raise UsageError(f"invalid PKCS#12 encryption {encryption!r}: choose one of {', '.join(PKCS12_ENCRYPTIONS)}")
    if len(password) < MIN_PKCS12_PASSWORD_LENGTH:
        raise UsageError(f"the PKCS#12 password must be at least {MIN_PKCS12_PASSWORD_LENGTH} characters")
    if encryption == "legacy":
        algorithm = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(password)
        )
    else:
        algorithm = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password)
        )
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode(), key, load_certificate(cert_pem), None, algorithm
    )

