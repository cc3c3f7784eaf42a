"""The mutual-TLS credentials endpoint (AWS IoT credentials provider stand-in).

GET /role-aliases/<alias>/credentials over TLS 1.2+, client certificate required
and verified against the stand-in CA. The certificate is looked up in moto's IoT
registry by its SHA-256 fingerprint (= certificateId); emulator.credentials
decides the answer. Any other path gets a 404 JSON answer. Handshakes run in the
per-connection thread, so one slow client cannot stall the others.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

from .credentials import Answer, CredentialsRequest, decide, moto_assume_role, MotoRegistry
from .ca import fingerprint_of_der

log = logging.getLogger("emulator")

_PATH = re.compile(r"^/role-aliases/([^/]+)/credentials/?$")
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0

# Checks a request against the quotas; returns True when it must be throttled.
Throttle = Callable[[str], bool]


def make_server_context(cert_path: Path, key_path: Path, client_ca_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(cert_path), keyfile=str(key_path))
    context.load_verify_locations(cafile=str(client_ca_path))
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["http/1.1"])
    return context


class CredentialsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AmazonIoTCredentialsStandIn"
    sys_version = ""
    server: "CredentialsServer"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(IDLE_TIMEOUT)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return None

    def _send(self, answer: Answer, started: float) -> None:
        body = answer.body_bytes
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if answer.error_type:
            self.send_header("x-amzn-ErrorType", answer.error_type)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        elapsed = (time.monotonic() - started) * 1000
        log.info(
            "credentials %s %s -> %d %s (%.0f ms)",
            self.command,
            self.path,
            answer.status,
            answer.error_type or "",
            elapsed,
        )

    def _handle(self) -> None:
        started = time.monotonic()
        path = urlsplit(self.path).path
        match = _PATH.match(path)
        if match is None:
            self._send(Answer(404, {"message": "Not Found"}, "ResourceNotFoundException"), started)
            return
        if self.command not in ("GET", "HEAD"):
            self._send(Answer(405, {"message": "Method Not Allowed"}, "MethodNotAllowedException"), started)
            return
        if self.server.throttle is not None and self.server.throttle("AssumeRoleWithCertificate"):
            self._send(Answer(429, {"message": "Rate exceeded"}, "ThrottlingException"), started)
            return
        der = self.connection.getpeercert(binary_form=True)
        if not der:
            self._send(Answer(403, {"message": "Access Denied"}, "AccessDeniedException"), started)
            return
        thing_name = self.headers.get("x-amzn-iot-thingname")
        request = CredentialsRequest(
            certificate_id=fingerprint_of_der(der),
            role_alias=unquote(match.group(1)),
            thing_name=thing_name if thing_name is not None else None,
        )
        from .iot import REGISTRY_LOCK

        with REGISTRY_LOCK:
            answer = decide(request, self.server.registry(), self.server.assume_role)
        self._send(answer, started)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        self._handle()

    do_PUT = do_POST
    do_PATCH = do_POST
    do_DELETE = do_GET
    do_OPTIONS = do_GET


class CredentialsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        context: ssl.SSLContext | None,
        account_id: str,
        region: str,
        throttle: Throttle | None = None,
    ) -> None:
        super().__init__(address, CredentialsHandler)
        # May be None while binding; the stand-in sets it before serving starts.
        self.context = context
        self.account_id = account_id
        self.region = region
        self.throttle = throttle
        self.assume_role = moto_assume_role(account_id, region)

    def registry(self) -> MotoRegistry:
        return MotoRegistry(self.account_id, self.region)

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        """Runs in the connection's own thread: TLS handshake first, then HTTP."""
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc.__class__.__name__
            log.info("credentials TLS handshake from %s refused: %s", client_address[0], reason)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, ConnectionError, TimeoutError, socket.timeout):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        log.info("credentials connection from %s ended with an error", client_address[0])


def serve_in_thread(server: CredentialsServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="credentials-endpoint", daemon=True)
    thread.start()
    return thread


__all__ = ["CredentialsServer", "make_server_context", "serve_in_thread"]
