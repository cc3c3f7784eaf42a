"""The shipped endpoint CA bundle for real AWS: exactly Amazon's roots, nothing else."""
from __future__ import annotations

import ssl
import warnings
from pathlib import Path

import certifi
from cryptography import x509

from provisioner.credentials_client import AMAZON_ROOT_CA_PATH
from provisioner.data.make_amazon_root_ca import SUBJECTS, common_name, select_roots


def test_amazon_root_ca_bundle_holds_exactly_the_amazon_trust_services_roots():
    with warnings.catch_warnings():  # Starfield Services Root CA G2 has serial number 0
        warnings.simplefilter("ignore")
        certificates = x509.load_pem_x509_certificates(AMAZON_ROOT_CA_PATH.read_bytes())
    assert [common_name(c) for c in certificates] == list(SUBJECTS)
    for certificate in certificates:
        assert certificate.subject == certificate.issuer  # self-signed roots only


def test_amazon_root_ca_bundle_matches_the_installed_certifi_roots():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = select_roots(Path(certifi.where()).read_bytes())
    assert AMAZON_ROOT_CA_PATH.read_bytes() == expected


def test_amazon_root_ca_bundle_loads_into_an_ssl_context():
    context = ssl.create_default_context(cafile=str(AMAZON_ROOT_CA_PATH))
    assert len(context.get_ca_certs()) == len(SUBJECTS)
