"""The credentials-provider client against a real mutual-TLS server made in the test.

The server is a few lines of http.server behind an ssl context that requires a client
certificate from the test CA: the client under test goes through real TCP and TLS,
exactly as it does against AWS IoT. What the server answers is scripted per test.
"""
from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provisioner import credentials_client as cc
from provisioner.errors import AwsError, CredentialsRefusedError, LocalFileError, NetworkError

ALIAS = "DeviceTrust-local-role-alias"
GOOD_BODY = {
    "credentials": {
        "accessKeyId": "ASIAEXAMPLE",
        "secretAccessKey": "secret/example",
        "sessionToken": "token-example",
        "expiration": "2030-01-18T09:18:06Z",
    }
}


# ---------------------------------------------------------------- test PKI (made fresh, never committed)
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject_cn, key, issuer_cn, issuer_key, *, ca=False, sans=(), client=False):
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn))
        .issuer_name(_name(issuer_cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        import ipaddress

        names = []
        for san in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_cert(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Pki:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _issue("test endpoint CA", ca_key, "test endpoint CA", ca_key, ca=True)
        self.ca_path = self._write("ca.pem", _pem_cert(ca))
        self.ca, self.ca_key = ca, ca_key
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = _issue("localhost", server_key, "test endpoint CA", ca_key, sans=("localhost", "127.0.0.1"))
        self.server_cert = self._write("server.crt", _pem_cert(server) + _pem_cert(ca))
        self.server_key = self._write("server.key", _pem_key(server_key))
        odd_key = ec.generate_private_key(ec.SECP256R1())
        odd = _issue("elsewhere", odd_key, "test endpoint CA", ca_key, sans=("elsewhere.example",))
        self.odd_server_cert = self._write("odd.crt", _pem_cert(odd) + _pem_cert(ca))
        self.odd_server_key = self._write("odd.key", _pem_key(odd_key))
        client_key = ec.generate_private_key(ec.SECP256R1())
        client = _issue("device", client_key, "test endpoint CA", ca_key, client=True)
        self.client_cert = self._write("device.crt", _pem_cert(client))
        self.client_key = self._write("device.key", _pem_key(client_key))
        other_key = ec.generate_private_key(ec.SECP256R1())
        other_ca = _issue("some other CA", other_key, "some other CA", other_key, ca=True)
        self.other_ca_path = self._write("other-ca.pem", _pem_cert(other_ca))
        stray_key = ec.generate_private_key(ec.SECP256R1())
        self.stray_key = self._write("stray.key", _pem_key(stray_key))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


# ---------------------------------------------------------------- scripted mTLS server
class ScriptedServer:
    """mTLS HTTPS server on 127.0.0.1; answers from a script, records what it saw."""

    def __init__(self, pki: Pki, *, cert: Path, key: Path) -> None:
        self.script: list = []
        self.requests: list[dict] = []
        self.sni: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.load_verify_locations(pki.ca_path)
        context.verify_mode = ssl.CERT_REQUIRED
        context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                peer = self.connection.getpeercert()
                outer.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "peer": peer}
                )
                step = outer.script.pop(0) if outer.script else (200, GOOD_BODY, {})
                if step == "sleep":
                    time.sleep(1.5)
                    step = (200, GOOD_BODY, {})
                status, body, headers = step
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.handle_error = lambda request, address: None  # failed handshakes are expected
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(pki):
    srv = ScriptedServer(pki, cert=pki.server_cert, key=pki.server_key)
    yield srv
    srv.close()


def fetch(pki: Pki, endpoint: str, **overrides):
    kwargs = dict(
        endpoint=endpoint,
        role_alias=ALIAS,
        cert_path=pki.client_cert,
        key_path=pki.client_key,
        ca_path=pki.ca_path,
        thing_name="laptop-1",
        connect_timeout=2,
        read_timeout=2,
        max_attempts=3,
    )
    kwargs.update(overrides)
    return cc.fetch_credentials(**kwargs)


# ---------------------------------------------------------------- end to end over mTLS
def test_fetch_returns_credentials_from_a_mutual_tls_get(pki, server):
    creds = fetch(pki, f"localhost:{server.port}")
    assert creds.access_key_id == "ASIAEXAMPLE"
    assert creds.secret_access_key == "secret/example"
    assert creds.session_token == "token-example"
    assert creds.expiration == dt.datetime(2030, 1, 18, 9, 18, 6, tzinfo=dt.timezone.utc)
    (request,) = server.requests
    assert request["path"] == f"/role-aliases/{ALIAS}/credentials"
    assert request["headers"]["x-amzn-iot-thingname"] == "laptop-1"
    # the server saw our device certificate, and we sent the endpoint host as SNI
    assert dict(x[0] for x in request["peer"]["subject"])["commonName"] == "device"
    assert server.sni == ["localhost"]


def test_thing_name_header_is_omitted_when_no_thing_name(pki, server):
    fetch(pki, f"localhost:{server.port}", thing_name=None)
    headers = {k.lower() for k in server.requests[0]["headers"]}
    assert "x-amzn-iot-thingname" not in headers


def test_credentials_repr_never_shows_the_secret_or_token(pki, server):
    creds = fetch(pki, f"localhost:{server.port}")
    assert "secret/example" not in repr(creds)
    assert "token-example" not in repr(creds)
    assert "ASIAEXAMPLE" not in repr(creds)


def test_credentials_repr_and_logs_show_the_access_key_id_masked():
    from datetime import datetime, timezone

    creds = cc.Credentials("ASIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG", "IQoJb3JpZ2luX2Vj",
                           datetime(2030, 1, 18, 9, 18, 6, tzinfo=timezone.utc))
    assert repr(creds) == "Credentials(access_key_id='ASIA...MPLE', expiration='2030-01-18T09:18:06Z')"
    assert f"{creds!r} {creds}".count("IOSFODNN7EXA") == 0


@pytest.mark.parametrize("key_id,shown", [
    ("ASIAIOSFODNN7EXAMPLE", "ASIA...MPLE"),
    ("AKIA" + "X" * 124, "AKIA...XXXX"),
    ("ASIAEXAMPLE", "..."),  # shorter than any AWS key id: nothing of it is shown
    ("", "..."),
])
def test_mask_access_key_id_keeps_four_characters_at_each_end_at_most(key_id, shown):
    assert cc.mask_access_key_id(key_id) == shown


def test_server_errors_are_retried_then_succeed(pki, server):
    server.script = [(500, {"message": "Internal"}, {}), (503, {"message": "busy"}, {})]
    creds = fetch(pki, f"localhost:{server.port}")
    assert creds.access_key_id == "ASIAEXAMPLE"
    assert len(server.requests) == 3


def test_persistent_server_errors_give_network_error_after_max_attempts(pki, server):
    server.script = [(503, {"message": "busy"}, {})] * 5
    with pytest.raises(NetworkError, match=r"503 Service Unavailable: busy"):
        fetch(pki, f"localhost:{server.port}", max_attempts=2)
    assert len(server.requests) == 2


def test_throttled_answer_is_retried_then_succeeds(pki, server, monkeypatch):
    slept = []
    monkeypatch.setattr(cc.time, "sleep", slept.append)
    server.script = [(429, {"message": "Rate exceeded"}, {"x-amzn-ErrorType": "ThrottlingException:"})]
    creds = fetch(pki, f"localhost:{server.port}")
    assert creds.access_key_id == "ASIAEXAMPLE"
    assert len(server.requests) == 2
    assert len(slept) == 1 and 0 <= slept[0] <= cc.BACKOFF_CAP_SECONDS


def test_persistent_throttling_is_an_aws_error_after_max_attempts(pki, server, monkeypatch):
    monkeypatch.setattr(cc.time, "sleep", lambda seconds: None)
    server.script = [(429, {"message": "Rate exceeded"}, {"x-amzn-ErrorType": "ThrottlingException:"})] * 5
    with pytest.raises(AwsError) as info:
        fetch(pki, f"localhost:{server.port}", max_attempts=3)
    assert len(server.requests) == 3
    assert type(info.value) is AwsError and info.value.exit_code == 3  # docs/credentials.md: "429 after retries"
    message = str(info.value)
    assert "429" in message and "Rate exceeded" in message and "too many requests" in message
    assert "\n" not in message


def test_forbidden_is_not_retried_and_says_the_certificate_is_refused(pki, server):
    server.script = [(403, {"message": "Access Denied"}, {"x-amzn-ErrorType": "ForbiddenException:"})]
    with pytest.raises(CredentialsRefusedError) as info:
        fetch(pki, f"localhost:{server.port}")
    assert len(server.requests) == 1
    message = str(info.value)
    assert f"credentials endpoint localhost:{server.port} refused the certificate" in message
    assert "403 Forbidden: Access Denied [ForbiddenException]" in message
    assert "revoked, inactive or unknown" in message
    assert "\n" not in message


def test_unknown_role_alias_is_not_retried_and_names_the_alias(pki, server):
    server.script = [(404, {"message": "Role alias does not exist"}, {})]
    with pytest.raises(CredentialsRefusedError, match=f"role alias '{ALIAS}' does not exist"):
        fetch(pki, f"localhost:{server.port}")
    assert len(server.requests) == 1


def test_malformed_success_body_is_an_aws_error(pki, server):
    server.script = [(200, {"credentials": {"accessKeyId": "A"}}, {})]
    with pytest.raises(AwsError, match="without usable credentials"):
        fetch(pki, f"localhost:{server.port}")


def test_server_certificate_from_another_ca_is_rejected_before_any_request(pki, server):
    with pytest.raises(NetworkError, match="does not verify"):
        fetch(pki, f"localhost:{server.port}", ca_path=pki.other_ca_path, max_attempts=1)
    assert server.requests == []


def test_server_certificate_for_another_host_is_rejected(pki):
    odd = ScriptedServer(pki, cert=pki.odd_server_cert, key=pki.odd_server_key)
    try:
        with pytest.raises(NetworkError, match="does not verify"):
            fetch(pki, f"localhost:{odd.port}", max_attempts=1)
        assert odd.requests == []
    finally:
        odd.close()


def test_slow_answer_times_out_with_the_read_timeout(pki, server):
    server.script = ["sleep", "sleep"]
    started = time.monotonic()
    with pytest.raises(NetworkError, match=r"timed out after 0.5 s"):
        fetch(pki, f"localhost:{server.port}", read_timeout=0.5, max_attempts=2)
    assert time.monotonic() - started < 4
    assert len(server.requests) == 2


def test_closed_port_gives_network_error(pki):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NetworkError, match=f"cannot connect to credentials endpoint localhost:{port}"):
        fetch(pki, f"localhost:{port}", max_attempts=2)


def test_missing_key_file_is_a_local_file_error(pki, tmp_path):
    with pytest.raises(LocalFileError, match="device key .* is missing"):
        fetch(pki, "localhost:1", key_path=tmp_path / "nope.key")


def test_key_that_does_not_match_the_certificate_is_a_local_file_error(pki):
    with pytest.raises(LocalFileError, match="cannot be used together"):
        fetch(pki, "localhost:1", key_path=pki.stray_key)


def test_missing_ca_bundle_is_a_local_file_error(pki, tmp_path):
    with pytest.raises(LocalFileError, match="endpoint CA bundle .* is missing"):
        fetch(pki, "localhost:1", ca_path=tmp_path / "nope.pem")


# ---------------------------------------------------------------- pure parts
@pytest.mark.parametrize(
    ("status", "reason", "message", "expected"),
    [
        (403, "Forbidden", "Invalid thing name passed", "thing 'laptop-1' does not exist or is not attached"),
        (403, "Forbidden", "Access Denied", "revoked, inactive or unknown"),
        (404, "Not Found", "Role alias does not exist", "role alias 'alias-x' does not exist"),
        (400, "Bad Request", "Unable to assume the role, or the role to assume does not exist",
         "trusts credentials.iot.amazonaws.com"),
        (400, "Bad Request",
         "The requested CredentialDurationSeconds exceeds the MaxSessionDuration set for the role",
         "lower credentialDurationSeconds"),
    ],
)
def test_refusal_message_says_what_failed_and_what_to_do(status, reason, message, expected):
    line = cc.refusal_message(
        endpoint="abc.credentials.iot.us-east-1.amazonaws.com",
        role_alias="alias-x",
        thing_name="laptop-1",
        status=status,
        reason=reason,
        message=message,
    )
    assert line.startswith(
        "credentials endpoint abc.credentials.iot.us-east-1.amazonaws.com refused the certificate ("
        f"{status} {reason}: {message})"
    )
    assert expected in line
    assert "\n" not in line


def test_error_details_reads_message_and_strips_error_type_suffix():
    message, error_type = cc.error_details(
        b'{"message":"Access Denied"}',
        {"X-Amzn-ErrorType": "ForbiddenException:http://internal.amazon.com/coral/"},
    )
    assert (message, error_type) == ("Access Denied", "ForbiddenException")


def test_error_details_tolerates_a_non_json_body():
    assert cc.error_details(b"<html>bad gateway</html>", {}) == ("<html>bad gateway</html>", "")


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("localhost:8443", ("localhost", 8443)),
        ("abc-ats.credentials.iot.us-east-1.amazonaws.com", ("abc-ats.credentials.iot.us-east-1.amazonaws.com", 443)),
        ("https://abc.example/", ("abc.example", 443)),
        ("[::1]:9443", ("::1", 9443)),
    ],
)
def test_split_endpoint_accepts_what_describe_endpoint_returns(endpoint, expected):
    assert cc.split_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["", "host:99999", "host:abc", "host/path"])
def test_split_endpoint_rejects_garbage(endpoint):
    with pytest.raises(ValueError):
        cc.split_endpoint(endpoint)


def test_role_alias_with_a_slash_is_rejected():
    with pytest.raises(ValueError):
        cc.credentials_url_path("a/../b")


def test_expiration_round_trips_in_the_form_sdks_parse():
    value = cc.parse_expiration("2026-01-18T09:18:06Z")
    assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0)
    assert cc.format_expiration(value) == "2026-01-18T09:18:06Z"
    assert cc.parse_expiration("2026-01-18T10:18:06+01:00") == value


def test_retry_delay_is_full_jitter_capped():
    assert cc.retry_delay(1, rand=lambda lo, hi: hi) == pytest.approx(0.2)
    assert cc.retry_delay(3, rand=lambda lo, hi: hi) == pytest.approx(0.8)
    assert cc.retry_delay(30, rand=lambda lo, hi: hi) == pytest.approx(cc.BACKOFF_CAP_SECONDS)
    assert cc.retry_delay(5, rand=lambda lo, hi: lo) == 0.0


def test_client_module_does_not_import_boto3_or_cryptography():
    import subprocess
    import sys

    code = (
        "import sys, provisioner.credentials_client;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3','botocore','cryptography')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- HTTPS_PROXY (CONNECT tunnel)
class ConnectProxy:
    """A minimal HTTP CONNECT proxy on 127.0.0.1 that records the targets it tunnels to."""

    def __init__(self, *, require_auth: str | None = None) -> None:
        self.targets: list[str] = []
        self.auth_seen: list[str | None] = []
        self.require_auth = require_auth
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        lines = head.decode().split("\r\n")
        method, target, _ = lines[0].split(" ")
        auth = next((l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("proxy-authorization:")), None)
        self.targets.append(target)
        self.auth_seen.append(auth)
        if self.require_auth is not None and auth != self.require_auth:
            client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy():
    p = ConnectProxy()
    yield p
    p.close()


def test_https_proxy_tunnels_the_mutual_tls_session_end_to_end(pki, server, proxy, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    creds = fetch(pki, f"localhost:{server.port}")
    assert creds.access_key_id == "ASIAEXAMPLE"
    assert proxy.targets == [f"localhost:{server.port}"]
    assert server.sni == ["localhost"]  # SNI and certificate checks still against the endpoint
    assert dict(x[0] for x in server.requests[0]["peer"]["subject"])["commonName"] == "device"


def test_no_proxy_bypasses_the_proxy(pki, server, proxy, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    fetch(pki, f"localhost:{server.port}")
    assert proxy.targets == []


def test_proxy_credentials_are_sent_on_connect_and_a_407_is_a_network_error(pki, server, monkeypatch):
    guarded = ConnectProxy(require_auth="Basic dXNlcjpwQHNz")  # user:p@ss
    try:
        monkeypatch.setenv("HTTPS_PROXY", f"http://user:p%40ss@127.0.0.1:{guarded.port}")
        assert fetch(pki, f"localhost:{server.port}").access_key_id == "ASIAEXAMPLE"
        monkeypatch.setenv("HTTPS_PROXY", f"http://user:wrong@127.0.0.1:{guarded.port}")
        with pytest.raises(NetworkError, match=r"via proxy 127.0.0.1:\d+.*407 Proxy Authentication Required"):
            fetch(pki, f"localhost:{server.port}", max_attempts=1)
    finally:
        guarded.close()


def test_https_proxy_for_reads_the_environment_like_botocore():
    assert cc.https_proxy_for("h.example", {}) is None
    assert cc.https_proxy_for("h.example", {"https_proxy": "proxy.corp:3128"}) == ("proxy.corp", 3128, {})
    assert cc.https_proxy_for("h.example", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".example"}) is None
    with pytest.raises(ValueError, match="use an http:// proxy"):
        cc.https_proxy_for("h.example", {"HTTPS_PROXY": "socks5://p:1080"})
