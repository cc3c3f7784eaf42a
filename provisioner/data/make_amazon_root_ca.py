"""Rebuild ``amazon-root-ca.pem`` from the certifi bundle: ``python -m provisioner.data.make_amazon_root_ca``.

The credentials endpoint of real AWS IoT presents a chain that ends at one of these
roots (Amazon Trust Services; the Starfield root cross-signs them for old clients).
The profile's ``endpoint-ca.pem`` is this file for real AWS, so a laptop trusts exactly
Amazon's roots for its credentials, not whatever else the operating system trusts.
Built offline from certifi (Mozilla's root store), selected by subject.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

SUBJECTS = (
    "Amazon Root CA 1",
    "Amazon Root CA 2",
    "Amazon Root CA 3",
    "Amazon Root CA 4",
    "Starfield Services Root Certificate Authority - G2",
)
OUTPUT = Path(__file__).with_name("amazon-root-ca.pem")


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def select_roots(bundle_pem: bytes) -> bytes:
    """The certificates of ``SUBJECTS`` from a PEM bundle, in that order, as PEM."""
    with warnings.catch_warnings():  # a few unrelated roots in the bundle have odd serials
        warnings.simplefilter("ignore")
        certificates = x509.load_pem_x509_certificates(bundle_pem)
    by_name = {common_name(cert): cert for cert in certificates}
    missing = [name for name in SUBJECTS if name not in by_name]
    if missing:
        raise SystemExit(f"not in the bundle: {', '.join(missing)}")
    out = []
    for name in SUBJECTS:
        out.append(f"# {name}\n".encode() + by_name[name].public_bytes(Encoding.PEM))
    return b"".join(out)


def main() -> int:
    import certifi

    OUTPUT.write_bytes(select_roots(Path(certifi.where()).read_bytes()))
    print(f"wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
