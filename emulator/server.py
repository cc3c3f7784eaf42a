"""Wires the stand-in together: moto's AWS API on --port, the credentials endpoint
on --credentials-port, the CA and endpoint.json in the state directory.

`StandIn(...).start()` binds both ports (0 = any free port) before it touches
the state directory, locks the state directory (one stand-in per directory),
then writes the CA and server certificate, installs the extensions and writes
endpoint.json; `stop()` shuts both servers down, removes endpoint.json if it
still holds what this process wrote, and releases the lock.
"""

from __future__ import annotations

import datetime
import fcntl
import io
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs
from xml.sax.saxutils import escape as xml_escape

from . import ACCOUNT_ID, REGION
from .ca import issue_server_certificate, load_or_create_ca, prepare_state_dir, write_private, write_public
from .errors import StartupError
from .throttle import TokenBuckets

log = logging.getLogger("emulator")

ENDPOINT_FILE = "endpoint.json"
SERVER_KEY_FILE = "credentials-server.key"
SERVER_CERT_FILE = "credentials-server.pem"
LOCK_FILE = "lock"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
# Query-protocol services (XML errors) among those the stand-in serves, with their XML namespaces.
_QUERY_NAMESPACES = {
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "cloudformation": "http://cloudformation.amazonaws.com/doc/2010-05-15/",
}

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _service_of(environ: dict[str, Any]) -> str:
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        return match.group(2)
    return "unsigned"


def _region_of(environ: dict[str, Any]) -> str | None:
    """The region of a SigV4 Authorization header's credential scope (None if unsigned)."""
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else None


def known_regions() -> frozenset[str]:
    """Every region of every partition in botocore's endpoint data (aws, aws-cn, aws-us-gov, ...)."""
    from botocore.loaders import create_loader

    partitions = create_loader().load_data("endpoints")["partitions"]
    return frozenset(region for partition in partitions for region in partition["regions"])


def _error_response(
    service: str, status: str, query_code: str, json_type: str, message: str
) -> tuple[str, list[tuple[str, str]], bytes]:
    """An error in the service's protocol: query (XML ErrorResponse) or JSON / REST-JSON."""
    if service in _QUERY_NAMESPACES:
        body = (
            f'<ErrorResponse xmlns="{_QUERY_NAMESPACES[service]}"><Error><Type>Sender</Type>'
            f"<Code>{query_code}</Code><Message>{xml_escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ).encode()
        return status, [("Content-Type", "text/xml")], body
    body = json.dumps({"message": message}).encode()
    return status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", json_type)], body


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
    return _error_response(service, "400 Bad Request", "Throttling", "ThrottlingException", "Rate exceeded")


def _unknown_region_response(service: str, region: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """AWS's answer to a signature scoped to a region the endpoint does not serve:
    403 SignatureDoesNotMatch (query protocol) / InvalidSignatureException (JSON)."""
    message = f"Credential should be scoped to a valid region, not '{region}'. "
    return _error_response(service, "403 Forbidden", "SignatureDoesNotMatch", "InvalidSignatureException", message)


def _internal_error_response(service: str) -> tuple[str, list[tuple[str, str]], bytes]:
    message = "The stand-in failed to answer this request; see its log"
    return _error_response(service, "500 Internal Server Error", "InternalFailure", "InternalFailure", message)


def control_plane_app(moto_app: WsgiApp, buckets: TokenBuckets | None) -> WsgiApp:
    """moto's WSGI app with one log line per request, optional throttling, a 403
    for a signature scoped to a region that does not exist, and a one-line 500
    (never a traceback) if moto fails."""
    regions = known_regions()

    def answer(
        start_response: Callable[..., Any],
        response: tuple[str, list[tuple[str, str]], bytes],
        exc_info: Any = None,
    ) -> Iterable[bytes]:
        status, headers, payload = response
        headers.append(("Content-Length", str(len(payload))))
        if exc_info is not None:  # moto may have started its own response before it failed
            start_response(status, headers, exc_info)
        else:
            start_response(status, headers)
        return [payload]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        service = _service_of(environ)
        operation = _operation_of(environ, service, body)
        region = _region_of(environ)
        if region is not None and region not in regions:
            log.info("api %s.%s -> 403 unknown region %r", service, operation, region)
            return answer(start_response, _unknown_region_response(service, region))
        if buckets is not None and buckets.throttled(f"{service}.{operation}"):
            log.info("api %s.%s -> 400 ThrottlingException", service, operation)
            return answer(start_response, _throttled_response(service))
        seen: dict[str, str] = {}

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"] = status.split(" ", 1)[0]
            for name, value in headers:
                if name.lower() == "x-amzn-errortype":
                    seen["error"] = value.split(":", 1)[0]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            result = moto_app(environ, recording_start_response)
        except Exception as exc:  # noqa: BLE001 - one log line and a 500 instead of werkzeug's traceback
            log.info("api %s.%s -> 500 %s: %s", service, operation, type(exc).__name__, exc)
            return answer(start_response, _internal_error_response(service), sys.exc_info())
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


def _listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) and listening, as werkzeug would make it."""
    from werkzeug.serving import get_sockaddr, select_address_family

    family = select_address_family(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(get_sockaddr(host, port, family))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def lock_state_dir(state_dir: Path) -> int:
    """Hold an exclusive lock on `<state_dir>/lock` (holding this process's pid) for as long
    as the returned descriptor is open: one stand-in per state directory."""
    try:
        prepare_state_dir(state_dir)
        fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StartupError(f"cannot use state directory {state_dir}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip()
        os.close(fd)
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise StartupError(
            f"state directory {state_dir} is in use by another stand-in{pid}; stop it or use another --state-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class _DeferredApp:
    """The AWS API's WSGI app, filled in once the state directory is ready: the port
    is bound before the app (which needs the CA) exists, and serving starts only
    after `target` is set."""

    target: WsgiApp | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        assert self.target is not None, "served before the stand-in was ready"
        return self.target(environ, start_response)


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
        self._endpoint_bytes: bytes | None = None
        self._lock_fd: int | None = None
        self.addresses: StandInAddresses | None = None

    def start(self) -> StandInAddresses:
        from werkzeug.serving import make_server

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from . import cfn, iot
        from .credentials_server import CredentialsServer, make_server_context

        # Both ports first: a second stand-in started on a running one's ports (or a
        # busy port) stops here, before it touches the state directory; one started
        # on other ports stops at the state directory's lock, before it writes there.
        buckets = TokenBuckets() if self.throttle else None
        try:
            credentials_server = CredentialsServer(
                (self.host, self.credentials_port),
                None,
                ACCOUNT_ID,
                REGION,
                throttle=(lambda op: buckets.throttled(f"credentials.{op}")) if buckets else None,
            )
        except OSError as exc:
            raise StartupError(f"cannot listen on {self.host}:{self.credentials_port}: {exc.strerror}") from exc
        app = _DeferredApp()
        try:
            api_socket = _listening_socket(self.host, self.port)
        except OSError as exc:
            credentials_server.server_close()
            raise StartupError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        try:
            # werkzeug binds nothing itself when given the socket (its own bind error is a
            # three-line message and sys.exit); it serves a duplicate of the descriptor.
            api_server = make_server(self.host, self.port, app, threaded=True, fd=api_socket.fileno())
        except BaseException:
            credentials_server.server_close()
            raise
        finally:
            api_socket.close()
        try:
            self._lock_fd = lock_state_dir(self.state_dir)
            ca = load_or_create_ca(self.state_dir)
            now = datetime.datetime.now(datetime.timezone.utc)
            key_pem, cert_pem = issue_server_certificate(ca.key, ca.certificate, now)
            try:
                (self.state_dir / ENDPOINT_FILE).unlink(missing_ok=True)
                write_private(self.state_dir / SERVER_KEY_FILE, key_pem)
                write_public(self.state_dir / SERVER_CERT_FILE, cert_pem + ca.cert_pem)
            except OSError as exc:
                raise StartupError(f"cannot use state directory {self.state_dir}: {exc.strerror}") from exc
            credentials_server.context = make_server_context(
                self.state_dir / SERVER_CERT_FILE, self.state_dir / SERVER_KEY_FILE, ca.cert_path
            )
        except BaseException:
            credentials_server.server_close()
            api_server.server_close()
            self._unlock()
            raise
        credentials_address = f"localhost:{credentials_server.server_address[1]}"

        iot.install(ca, credentials_address)
        cfn.install()
        app.target = control_plane_app(DomainDispatcherApplication(create_backend_app), buckets)
        api_port = api_server.server_address[1]
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
        endpoint_bytes = (json.dumps(endpoint, indent=2) + "\n").encode()
        self._endpoint_bytes = endpoint_bytes
        try:
            write_public(self.state_dir / ENDPOINT_FILE, endpoint_bytes)
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
        self._remove_own_endpoint_file()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _remove_own_endpoint_file(self) -> None:
        """Remove endpoint.json if it still holds what this process wrote (another
        stand-in sharing the state directory may have replaced it since)."""
        if self._endpoint_bytes is None:
            return
        path = self.state_dir / ENDPOINT_FILE
        try:
            if path.read_bytes() == self._endpoint_bytes:
                path.unlink()
        except OSError:
            pass
        self._endpoint_bytes = None
