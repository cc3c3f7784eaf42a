"""Client for the AWS IoT credentials provider (mutual TLS, stdlib only).

The protocol, as AWS documents it: ``GET https://<endpoint>/role-aliases/<alias>/credentials``
over TLS with the device's client certificate, optional header ``x-amzn-iot-thingname``.
A 200 carries ``{"credentials": {"accessKeyId", "secretAccessKey", "sessionToken",
"expiration"}}``; an error carries ``{"message": ...}`` and the header ``x-amzn-ErrorType``.

This module deliberately imports neither boto3 nor cryptography: it runs on the cold
path of ``credential_process``, before every AWS CLI command whose cache has gone stale.

The pure parts (``parse_credentials_body``, ``refusal_message``, ``retry_delay``) take
and return plain values; ``fetch_credentials`` is the only function that touches the
network or the disk.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from provisioner.errors import (
    AwsError,
    CredentialsRefusedError,
    LocalFileError,
    NetworkError,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from provisioner.profile import DeviceProfile

USER_AGENT = "device-trust-provisioner/1"
THING_NAME_HEADER = "x-amzn-iot-thingname"
ERROR_TYPE_HEADER = "x-amzn-ErrorType"
# Backoff for retried attempts: full jitter, sleep uniform(0, min(cap, base * 2**n)).
BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 2.0
# Statuses worth another attempt: throttling and server-side failures. Every other 4xx
# is a decision about this certificate or this account, and asking again won't change it.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Credentials:
    """Short-lived AWS credentials for the role behind the role alias."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime  # timezone-aware, UTC

    def __repr__(self) -> str:  # keep secrets (and the key id) out of logs and tracebacks
        return (
            f"Credentials(access_key_id={mask_access_key_id(self.access_key_id)!r}, "
            f"expiration={format_expiration(self.expiration)!r})"
        )


def mask_access_key_id(access_key_id: str) -> str:
    """``ASIAIOSFODNN7EXAMPLE`` -> ``ASIA...MPLE``: enough to tell keys apart and to find one
    in CloudTrail, not the key id itself (which identifies the account and, with the
    secret, is half of a credential). AWS key ids are at least 16 characters; a shorter
    value is not shown at all."""
    if len(access_key_id) < 16:
        return "..."
    return f"{access_key_id[:4]}...{access_key_id[-4:]}"


def credentials_url_path(role_alias: str) -> str:
    """The request path for one role alias."""
    if not role_alias or "/" in role_alias or any(ch.isspace() for ch in role_alias):
        raise ValueError(f"invalid role alias {role_alias!r}")
    return f"/role-aliases/{role_alias}/credentials"


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``"host[:port]"`` (no scheme, as DescribeEndpoint returns it) -> (host, port)."""
    text = endpoint.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.rstrip("/")
    if not text or "/" in text:
        raise ValueError(f"invalid credentials endpoint {endpoint!r}: expected host or host:port")
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not port_text:
        return host, 443
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid port in credentials endpoint {endpoint!r}")
    return host, int(port_text)


def parse_expiration(text: str) -> datetime:
    """ISO 8601 timestamp (``2026-01-18T09:18:06Z``) -> aware UTC datetime."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def format_expiration(value: datetime) -> str:
    """Aware datetime -> ``2026-01-18T09:18:06Z`` (the form the AWS SDKs parse)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_credentials_body(body: bytes, *, endpoint: str) -> Credentials:
    """The body of a 200 answer -> Credentials; AwsError if it is not what AWS sends."""
    try:
        document = json.loads(body)
        raw = document["credentials"]
        return Credentials(
            access_key_id=_non_empty(raw["accessKeyId"]),
            secret_access_key=_non_empty(raw["secretAccessKey"]),
            session_token=_non_empty(raw["sessionToken"]),
            expiration=parse_expiration(raw["expiration"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AwsError(
            f"credentials endpoint {endpoint} answered 200 without usable credentials "
            f"({type(exc).__name__}); check that the profile's credentialsEndpoint is the "
            "iot:CredentialProvider endpoint of the account"
        ) from exc


def _non_empty(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("empty credential field")
    return value


def error_details(body: bytes, headers: Mapping[str, str]) -> tuple[str, str]:
    """(message, error type) from an error answer; either may be empty."""
    message = ""
    try:
        document = json.loads(body)
        if isinstance(document, dict):
            message = str(document.get("message") or document.get("Message") or "")
    except ValueError:
        message = body.decode("utf-8", "replace").strip()[:200]
    error_type = ""
    for key, value in headers.items():
        if key.lower() == ERROR_TYPE_HEADER.lower():
            # AWS sometimes appends ":http://internal.amazon.com/..." to the type.
            error_type = value.split(":", 1)[0].strip()
    return " ".join(message.split()), error_type


def refusal_message(
    *,
    endpoint: str,
    role_alias: str,
    thing_name: str | None,
    status: int,
    reason: str,
    message: str,
    error_type: str = "",
) -> str:
    """One line saying what the credentials endpoint refused, and what to do about it."""
    detail = f"{status} {reason}".strip()
    if message:
        detail += f": {message}"
    if error_type and error_type not in detail:
        detail += f" [{error_type}]"
    lowered = message.lower()
    if status == 403 and "thing name" in lowered:
        advice = (
            f"thing {thing_name!r} does not exist or is not attached to this certificate; "
            "check thingName in device.json or re-enroll this laptop"
        )
    elif status == 403:
        advice = (
            "the certificate is revoked, inactive or unknown, or no IoT policy on it allows "
            f"iot:AssumeRoleWithCertificate on role alias {role_alias!r}; re-enroll this laptop "
            "or ask an operator to check its certificate"
        )
    elif status == 404:
        advice = (
            f"role alias {role_alias!r} does not exist in this account and region; "
            "check roleAlias in device.json against the stack output RoleAliasName"
        )
    elif status == 400 and "duration" in lowered:
        advice = (
            "the role alias asks for longer credentials than the role's MaxSessionDuration "
            "allows; lower credentialDurationSeconds in cdk.json or raise the role's limit"
        )
    elif status == 400:
        advice = (
            f"the role behind role alias {role_alias!r} cannot be assumed; check that it exists "
            "and trusts credentials.iot.amazonaws.com"
        )
    elif status == 429:
        advice = "too many requests; wait a minute and try again"
    else:
        advice = "check the profile's credentialsEndpoint and roleAlias"
    return f"credentials endpoint {endpoint} refused the certificate ({detail}): {advice}"


def retry_delay(attempt: int, *, rand: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): full jitter."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2 ** max(0, attempt - 1)))
    return rand(0.0, ceiling)


def https_proxy_for(host: str, environ: Mapping[str, str]) -> tuple[str, int, dict[str, str]] | None:
    """(proxy host, proxy port, CONNECT headers) from HTTPS_PROXY / NO_PROXY, as botocore reads them.

    None when no proxy is set or NO_PROXY covers ``host``. Only ``http://`` proxies (the
    TLS session to the endpoint is tunnelled through CONNECT, end to end, so the proxy
    never sees the client certificate's key or the credentials).
    """
    import base64
    from urllib.parse import unquote, urlsplit
    from urllib.request import proxy_bypass_environment

    lowered = {key.lower(): value for key, value in environ.items()}
    url = (lowered.get("https_proxy") or "").strip()
    if not url:
        return None
    no_proxy = {"no": lowered["no_proxy"]} if lowered.get("no_proxy") else {}
    if no_proxy and proxy_bypass_environment(host, no_proxy):
        return None
    parsed = urlsplit(url if "://" in url else f"http://{url}")
    if parsed.scheme != "http" or not parsed.hostname:
        raise ValueError(f"unsupported HTTPS_PROXY {parsed.scheme}://{parsed.hostname or ''}: use an http:// proxy")
    headers = {}
    if parsed.username:
        secret = f"{unquote(parsed.username)}:{unquote(parsed.password or '')}".encode()
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(secret).decode()
    return parsed.hostname, parsed.port or 8080, headers


class _RetryableFailure(Exception):
    """One failed attempt that another attempt might fix; carries the final error."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def build_tls_context(*, cert_path: Path, key_path: Path, ca_path: Path) -> ssl.SSLContext:
    """Client TLS context: server checked against ca_path with hostname check, TLS >= 1.2."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_path))
    except FileNotFoundError as exc:
        raise LocalFileError(
            f"endpoint CA bundle {ca_path} is missing; re-run `install` or re-enroll this laptop"
        ) from exc
    except PermissionError as exc:
        raise LocalFileError(f"cannot read endpoint CA bundle {ca_path}: permission denied") from exc
    except (ssl.SSLError, OSError) as exc:
        raise LocalFileError(
            f"endpoint CA bundle {ca_path} holds no usable PEM certificate ({exc}); re-enroll this laptop"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    for path, what in ((cert_path, "device certificate"), (key_path, "device key")):
        if not Path(path).is_file():
            raise LocalFileError(f"{what} {path} is missing; enroll this laptop first")
    try:
        # A password callback that gives nothing: an encrypted key fails instead of
        # prompting on the terminal of a credential_process that has no terminal.
        context.load_cert_chain(certfile=str(cert_path), keyfile=str(key_path), password=lambda: b"")
    except PermissionError as exc:
        raise LocalFileError(f"cannot read {exc.filename or key_path}: permission denied") from exc
    except (ssl.SSLError, OSError) as exc:
        raise LocalFileError(
            f"device key {key_path} and certificate {cert_path} cannot be used together "
            f"({getattr(exc, 'reason', None) or exc}); they may not match, or the key is encrypted"
        ) from exc
    return context


def fetch_credentials(
    *,
    endpoint: str,
    role_alias: str,
    cert_path: Path,
    key_path: Path,
    ca_path: Path,
    thing_name: str | None = None,
    connect_timeout: float = 5,
    read_timeout: float = 10,
    max_attempts: int = 3,
) -> Credentials:
    """Exchange the device certificate for credentials of the role behind ``role_alias``.

    Retries (full jitter, at most ``max_attempts`` attempts in all) on connection errors,
    timeouts, 429 and 5xx; never on any other 4xx. Raises CredentialsRefusedError when
    the endpoint refuses the certificate, NetworkError when it cannot be reached,
    LocalFileError when the key, certificate or CA bundle cannot be used, AwsError when
    the answer is not what AWS sends.
    """
    try:
        host, port = split_endpoint(endpoint)
        path = credentials_url_path(role_alias)
    except ValueError as exc:
        raise AwsError(f"{exc}; check credentialsEndpoint and roleAlias in device.json") from exc
    try:
        proxy = https_proxy_for(host, os.environ)
    except ValueError as exc:
        raise NetworkError(f"{exc}; or add {host} to NO_PROXY") from exc
    context = build_tls_context(cert_path=cert_path, key_path=key_path, ca_path=ca_path)
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if thing_name:
        headers[THING_NAME_HEADER] = thing_name
    attempts = max(1, int(max_attempts))
    for attempt in range(1, attempts + 1):
        try:
            return _attempt(
                host=host,
                port=port,
                path=path,
                headers=headers,
                context=context,
                proxy=proxy,
                endpoint=endpoint,
                role_alias=role_alias,
                thing_name=thing_name,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            )
        except _RetryableFailure as failure:
            if attempt == attempts:
                raise failure.error from failure.error.__cause__
            time.sleep(retry_delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def fetch_credentials_for_profile(profile: "DeviceProfile", **kwargs) -> Credentials:
    """fetch_credentials with the endpoint, alias, files and thing name of a device profile."""
    return fetch_credentials(
        endpoint=profile.credentials_endpoint,
        role_alias=profile.role_alias,
        cert_path=profile.cert_path,
        key_path=profile.key_path,
        ca_path=profile.ca_path,
        thing_name=profile.thing_name,
        **kwargs,
    )


def _attempt(
    *,
    host: str,
    port: int,
    path: str,
    headers: dict[str, str],
    context: ssl.SSLContext,
    proxy: tuple[str, int, dict[str, str]] | None,
    endpoint: str,
    role_alias: str,
    thing_name: str | None,
    connect_timeout: float,
    read_timeout: float,
) -> Credentials:
    if proxy is None:
        connection = http.client.HTTPSConnection(host, port, timeout=connect_timeout, context=context)
    else:
        # CONNECT tunnel: TLS (SNI, certificates) still runs end to end with the endpoint.
        proxy_host, proxy_port, proxy_headers = proxy
        connection = http.client.HTTPSConnection(proxy_host, proxy_port, timeout=connect_timeout, context=context)
        connection.set_tunnel(host, port, headers=proxy_headers)
    stage = "connect to" if proxy is None else f"connect (via proxy {proxy[0]}:{proxy[1]}) to"
    try:
        connection.connect()  # TCP + TLS handshake, bounded by connect_timeout
        connection.sock.settimeout(read_timeout)
        stage = "read credentials from"
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        status, reason = response.status, response.reason
        response_headers = dict(response.getheaders())
    except ssl.SSLCertVerificationError as exc:
        raise NetworkError(
            f"credentials endpoint {endpoint} presented a certificate that does not verify "
            f"against the profile's endpoint CA bundle ({exc.verify_message}); check "
            "credentialsEndpoint and endpoint-ca.pem in the profile"
        ) from exc
    except ssl.SSLError as exc:
        if _is_client_certificate_rejection(exc):
            raise CredentialsRefusedError(
                f"credentials endpoint {endpoint} rejected the device certificate during the TLS "
                f"handshake ({exc.reason or exc}): it is revoked, inactive or unknown; re-enroll this laptop"
            ) from exc
        raise _RetryableFailure(
            _network_error(stage, endpoint, f"TLS error: {exc.reason or exc}", exc)
        ) from exc
    except (socket.timeout, TimeoutError) as exc:
        limit = connect_timeout if stage.startswith("connect") else read_timeout
        raise _RetryableFailure(
            _network_error(stage, endpoint, f"timed out after {limit:g} s", exc)
        ) from exc
    except socket.gaierror as exc:
        raise _RetryableFailure(
            _network_error(stage, endpoint, f"cannot resolve {host}: {exc.strerror or exc}", exc)
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _RetryableFailure(
            _network_error(stage, endpoint, getattr(exc, "strerror", None) or str(exc) or type(exc).__name__, exc)
        ) from exc
    finally:
        connection.close()

    if status == 200:
        return parse_credentials_body(body, endpoint=endpoint)
    message, error_type = error_details(body, response_headers)
    line = refusal_message(
        endpoint=endpoint,
        role_alias=role_alias,
        thing_name=thing_name,
        status=status,
        reason=reason,
        message=message,
        error_type=error_type,
    )
    if status in RETRYABLE_STATUSES:
        if status == 429:
            error: Exception = AwsError(line)
        else:
            error = NetworkError(
                f"credentials endpoint {endpoint} failed ({status} {reason}"
                f"{': ' + message if message else ''}); try again later"
            )
        raise _RetryableFailure(error)
    if 400 <= status < 500:
        raise CredentialsRefusedError(line)
    raise AwsError(f"credentials endpoint {endpoint} answered an unexpected {status} {reason}")


def _network_error(stage: str, endpoint: str, what: str, cause: BaseException) -> NetworkError:
    error = NetworkError(
        f"cannot {stage} credentials endpoint {endpoint} ({what}); check the network "
        "and credentialsEndpoint in device.json"
    )
    error.__cause__ = cause
    return error


# TLS alerts a server sends when it does not accept the client's certificate.
_CLIENT_CERT_ALERTS = (
    "BAD_CERTIFICATE",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_REVOKED",
    "CERTIFICATE_EXPIRED",
    "UNKNOWN_CA",
    "CERTIFICATE_REQUIRED",
    "ACCESS_DENIED",
)


def _is_client_certificate_rejection(exc: ssl.SSLError) -> bool:
    reason = (exc.reason or str(exc)).upper()
    return "ALERT" in reason and any(alert in reason for alert in _CLIENT_CERT_ALERTS)


# Amazon Trust Services roots (+ the Starfield cross-signing root): the endpoint CA
# bundle for real AWS IoT. Rebuilt by ``python -m provisioner.data.make_amazon_root_ca``.
AMAZON_ROOT_CA_PATH = Path(__file__).resolve().parent / "data" / "amazon-root-ca.pem"
