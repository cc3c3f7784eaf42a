"""The stand-in certificate authority.

It plays two Amazon roles at once: the issuer of device certificates
(CreateCertificateFromCsr, like AWS IoT's own CA) and the root that the
credentials endpoint's server certificate chains to (like Amazon Root CA 1).

The functions that build certificates are pure (keys and PEM bytes in, PEM bytes
out); only `load_or_create_ca` and the writers below touch the state directory.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import CsrError, StartupError

CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.pem"
CA_COMMON_NAME = "Device Trust Stand-in CA"

# AWS IoT issues CreateCertificateFromCsr certificates valid until the end of 2049.
DEVICE_NOT_AFTER = datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
# Browsers refuse server certificates valid for more than 398 days.
SERVER_VALIDITY = datetime.timedelta(days=90)
CA_VALIDITY = datetime.timedelta(days=3650)
MIN_RSA_BITS = 2048
# CreateCertificateFromCsr (botocore model): RSA >= 2048 bits or ECC on NIST P-256, P-384 or P-521.
ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


@dataclass(frozen=True)
class StandInCa:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    cert_path: Path

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def certificate_id(cert_pem: bytes | str) -> str:
    """AWS IoT's certificateId: lowercase hex SHA-256 of the certificate's DER."""
    if isinstance(cert_pem, str):
        cert_pem = cert_pem.encode()
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def fingerprint_of_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def build_ca(now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "device-trust local stand-in"),
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _check_public_key(public_key: object) -> None:
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise CsrError(f"RSA key of {public_key.key_size} bits is too small (minimum {MIN_RSA_BITS})")
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ACCEPTED_CURVES):
            raise CsrError(f"elliptic curve {public_key.curve.name} is not supported (use P-256, P-384 or P-521)")
        return
    raise CsrError(f"key type {type(public_key).__name__} is not supported (use EC P-256/P-384/P-521 or RSA >= 2048)")


def parse_csr(csr_pem: bytes | str) -> x509.CertificateSigningRequest:
    """Parse and check a CSR the way CreateCertificateFromCsr does; raises CsrError."""
    if isinstance(csr_pem, str):
        csr_pem = csr_pem.encode()
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CsrError("the certificate signing request is not a valid PEM CSR") from exc
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CsrError("the CSR's public key cannot be read") from exc
    _check_public_key(public_key)
    if not csr.is_signature_valid:
        raise CsrError("the CSR's signature does not match its public key")
    return csr


def sign_device_csr(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    csr_pem: bytes | str,
    now: datetime.datetime,
) -> bytes:
    """Issue a device certificate for the CSR's own key and subject; returns PEM."""
    csr = parse_csr(csr_pem)
    public_key = csr.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=1))
        .not_valid_after(DEVICE_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def issue_server_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    now: datetime.datetime,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
) -> tuple[bytes, bytes]:
    """A TLS server certificate for the credentials endpoint; returns (key PEM, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + SERVER_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` atomically with `data`, readable as `mode` from the first byte.

    The bytes go to a fresh file that `mkstemp` creates with O_EXCL under an
    unpredictable name (mode 0600, then `mode`), are flushed to disk, and the file is then
    renamed over `path`. Nothing that already exists in the directory (a stale
    or planted temporary file, a symlink at `path` or next to it) is opened,
    truncated or followed: a symlink at `path` is replaced, not written through.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file: mode 0600 from its first byte, atomic, never through a symlink."""
    write_file(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    """Write a non-secret file (certificates, endpoint.json) the same safe way, mode 0644."""
    write_file(path, data, 0o644)


def prepare_state_dir(state_dir: Path) -> None:
    """Create the state directory 0700, or make an existing one of ours 0700.

    It holds the CA's private key, so nobody else may list it, read from it or
    plant files in it; a directory that belongs to another user is refused.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.stat(state_dir)
    if info.st_uid != os.geteuid():
        raise StartupError(
            f"cannot use state directory {state_dir}: it belongs to another user (uid {info.st_uid}); "
            "use a directory of your own"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(state_dir, 0o700)


def load_or_create_ca(state_dir: Path, now: datetime.datetime | None = None) -> StandInCa:
    """The CA kept in the state directory; made on first start, reused afterwards."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key_path = state_dir / CA_KEY_FILE
    cert_path = state_dir / CA_CERT_FILE
    try:
        prepare_state_dir(state_dir)
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise StartupError(f"{key_path} is not an EC private key; remove the state directory")
            return StandInCa(key=key, certificate=cert, cert_path=cert_path.resolve())
        key, cert = build_ca(now)
        write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return StandInCa(key=key, certificate=cert, cert_path=cert_path.resolve())
    except OSError as exc:
        raise StartupError(f"cannot use state directory {state_dir}: {exc.strerror}") from exc
    except ValueError as exc:
        raise StartupError(f"the CA files in {state_dir} are unreadable; remove them to start afresh") from exc
