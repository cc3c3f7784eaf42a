"""Wires the stand-in together: moto's AWS API on --port, the credentials endpoint
on --credentials-port, the CA and endpoint.json in the state directory.

`StandIn(...).start()` binds both ports (0 = any free port), installs the
extensions, writes endpoint.json once both servers listen, and `stop()` shuts
them down and removes endpoint.json.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from . import ACCOUNT_ID, REGION
from .ca import issue_server_certificate, load_or_create_ca, write_private, write_public
from .errors import StartupError
from .throttle import TokenBuckets

log = logging.getLogger("emulator")

ENDPOINT_FILE = "endpoint.json"
SERVER_KEY_FILE = "credentials-server.key"
SERVER_CERT_FILE = "credentials-server.pem"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _service_of(environ: dict[str, Any]) -> str:
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        return match.group(1)
    return "unsigned"


def _operation_of(environ: dict[str, Any], service: str, body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.split(".")[-1]
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if not action and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    if action:
        return action[0]
    if service in ("iot",):
        try:
            from moto.core.request import Request
            from moto.core.routing import get_service_router

            operation, _ = get_service_router(service).match(Request(dict(environ, **{"wsgi.input": io.BytesIO(body)})))
            return str(operation.name)
        except Exception:  # noqa: BLE001 - naming the operation is best effort, for the log only
            pass
    return f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"


def _throttled_response(service: str) -> tuple[str, list[tuple[str, str]], bytes]:
    if service in ("sts", "cloudformation", "iam"):
        body = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            "<Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
            "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        ).encode()
        return "400 Bad Request", [("Content-Type", "text/xml")], body
    body = json.dumps({"message": "Rate exceeded"}).encode()
    return "400 Bad Request", [("Content-Type", "application/json"), ("x-amzn-ErrorType", "ThrottlingException")], body


def control_plane_app(moto_app: WsgiApp, buckets: TokenBuckets | None) -> WsgiApp:
    """moto's WSGI app with one log line per request and optional throttling."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        service = _service_of(environ)
        operation = _operation_of(environ, service, body)
        if buckets is not None and buckets.throttled(f"{service}.{operation}"):
            status, headers, payload = _throttled_response(service)
            headers.append(("Content-Length", str(len(payload))))
            start_response(status, headers)
            log.info("api %s.%s -> 400 ThrottlingException", service, operation)
            return [payload]
        seen: dict[str, str] = {}

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"] = status.split(" ", 1)[0]
            for name, value in headers:
                if name.lower() == "x-amzn-errortype":
                    seen["error"] = value.split(":", 1)[0]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        result = moto_app(environ, recording_start_response)
        log.info(
            "api %s.%s -> %s%s (%.0f ms)",
            service,
            operation,
            seen.get("status", "?"),
            f" {seen['error']}" if "error" in seen else "",
            (time.monotonic() - started) * 1000,
        )
        return result

    return app


@dataclass
class StandInAddresses:
    control_plane: str
    credentials_endpoint: str
    ca_file: Path


class StandIn:
    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 4566,
        credentials_port: int = 8443,
        throttle: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.host = host
        self.port = port
        self.credentials_port = credentials_port
        self.throttle = throttle
        self._api_server: Any = None
        self._credentials_server: Any = None
        self._threads: list[threading.Thread] = []
        self.addresses: StandInAddresses | None = None

    def start(self) -> StandInAddresses:
        from werkzeug.serving import make_server

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from . import cfn, iot
        from .credentials_server import CredentialsServer, make_server_context

        ca = load_or_create_ca(self.state_dir)
        now = datetime.datetime.now(datetime.timezone.utc)
        key_pem, cert_pem = issue_server_certificate(ca.key, ca.certificate, now)
        try:
            write_private(self.state_dir / SERVER_KEY_FILE, key_pem)
            write_public(self.state_dir / SERVER_CERT_FILE, cert_pem + ca.cert_pem)
            (self.state_dir / ENDPOINT_FILE).unlink(missing_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot use state directory {self.state_dir}: {exc.strerror}") from exc

        buckets = TokenBuckets() if self.throttle else None
        context = make_server_context(
            self.state_dir / SERVER_CERT_FILE, self.state_dir / SERVER_KEY_FILE, ca.cert_path
        )
        try:
            credentials_server = CredentialsServer(
                (self.host, self.credentials_port),
                context,
                ACCOUNT_ID,
                REGION,
                throttle=(lambda op: buckets.throttled(f"credentials.{op}")) if buckets else None,
            )
        except OSError as exc:
            raise StartupError(f"cannot listen on {self.host}:{self.credentials_port}: {exc.strerror}") from exc
        credentials_address = f"localhost:{credentials_server.server_address[1]}"

        iot.install(ca, credentials_address)
        cfn.install()
        moto_app = DomainDispatcherApplication(create_backend_app)
        try:
            api_server = make_server(self.host, self.port, control_plane_app(moto_app, buckets), threaded=True)
        except (OSError, SystemExit) as exc:
            credentials_server.server_close()
            raise StartupError(f"cannot listen on {self.host}:{self.port}") from exc
        api_port = api_server.server_port
        os.environ["MOTO_PORT"] = str(api_port)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self._api_server = api_server
        self._credentials_server = credentials_server
        for name, target in (("aws-api", api_server.serve_forever), ("credentials", credentials_server.serve_forever)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

        url_host = "127.0.0.1" if self.host in ("0.0.0.0", "127.0.0.1") else self.host
        self.addresses = StandInAddresses(
            control_plane=f"http://{url_host}:{api_port}",
            credentials_endpoint=credentials_address,
            ca_file=ca.cert_path,
        )
        endpoint = {
            "controlPlane": self.addresses.control_plane,
            "credentialsEndpoint": self.addresses.credentials_endpoint,
            "caFile": str(self.addresses.ca_file),
        }
        try:
            write_public(self.state_dir / ENDPOINT_FILE, (json.dumps(endpoint, indent=2) + "\n").encode())
        except OSError as exc:
            self.stop()
            raise StartupError(f"cannot write {self.state_dir / ENDPOINT_FILE}: {exc.strerror}") from exc
        return self.addresses

    def stop(self) -> None:
        for server in (self._api_server, self._credentials_server):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        (self.state_dir / ENDPOINT_FILE).unlink(missing_ok=True)
