"""A loopback endpoint speaking the container-credentials protocol (the core of ``serve``).

The AWS SDKs and CLI read ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and send
``AWS_CONTAINER_AUTHORIZATION_TOKEN`` as the ``Authorization`` header; the answer is
``{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}``. The SDKs refresh by
themselves shortly before ``Expiration``, so a long-running program never holds a key
for longer than one credentials lifetime.

* ``CredentialsKeeper`` holds the current credentials and refreshes them in a
  background thread ahead of expiry; it never hands out credentials that are missing
  or about to expire (``current()`` returns None instead).
* ``respond()`` is the pure request -> (status, JSON body) decision.
* ``ContainerCredentialsServer`` is the thin HTTP layer on 127.0.0.1.
"""
from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from provisioner.credentials_client import Credentials, format_expiration, mask_access_key_id
from provisioner.errors import DeviceTrustError

CREDENTIALS_PATH = "/credentials"
DEFAULT_REFRESH_MARGIN_SECONDS = 1200
# Credentials with less life than this are not handed out: an SDK would use them for a
# request that might outlive them.
MIN_VALIDITY_SECONDS = 60
RETRY_MIN_SECONDS = 5
RETRY_MAX_SECONDS = 300


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------- pure decisions
def refresh_time(fetched_at: datetime, expiration: datetime, margin_seconds: float) -> datetime:
    """When to fetch again: ``margin`` before expiry, but never before half the lifetime.

    The half-life floor keeps short credentials (a 15-minute role alias with a 20-minute
    margin) from being fetched in a tight loop.
    """
    by_margin = expiration - timedelta(seconds=margin_seconds)
    half_life = fetched_at + (expiration - fetched_at) / 2
    return max(by_margin, half_life)


def is_authorized(header_value: str | None, token: str) -> bool:
    """Constant-time comparison of the Authorization header with the token."""
    if header_value is None:
        return False
    return hmac.compare_digest(header_value.strip().encode(), token.encode())


def respond(
    *,
    method: str,
    path: str,
    authorization: str | None,
    token: str,
    credentials: Credentials | None,
    problem: str | None,
    now: datetime,
) -> tuple[int, dict]:
    """(HTTP status, JSON body) for one request."""
    if authorization is None:
        return 401, {"code": "Unauthorized", "message": "missing Authorization header"}
    if not is_authorized(authorization, token):
        return 403, {"code": "Forbidden", "message": "wrong authorization token"}
    if path.split("?", 1)[0] != CREDENTIALS_PATH:
        return 404, {"code": "NotFound", "message": f"only {CREDENTIALS_PATH} is served"}
    if method != "GET":
        return 405, {"code": "MethodNotAllowed", "message": "use GET"}
    if credentials is None or (credentials.expiration - now).total_seconds() <= MIN_VALIDITY_SECONDS:
        return 503, {
            "code": "CredentialsUnavailable",
            "message": problem or "no valid credentials yet; the device certificate could not be exchanged",
        }
    return 200, {
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "Token": credentials.session_token,
        "Expiration": format_expiration(credentials.expiration),
    }


# ---------------------------------------------------------------- credentials keeper
@dataclass
class _State:
    credentials: Credentials | None = None
    fetched_at: datetime | None = None
    problem: str | None = None


class CredentialsKeeper:
    """The current credentials, refreshed in the background ahead of expiry."""

    def __init__(
        self,
        fetch: Callable[[], Credentials],
        *,
        margin_seconds: float = DEFAULT_REFRESH_MARGIN_SECONDS,
        clock: Callable[[], datetime] = utc_now,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        self._fetch = fetch
        self._margin = margin_seconds
        self._clock = clock
        self._log = log
        self._state = _State()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._last_failure: datetime | None = None

    def refresh(self) -> Credentials:
        """Fetch now; on success the new credentials replace the old. Raises the fetch error."""
        try:
            credentials = self._fetch()
        except DeviceTrustError as exc:
            with self._lock:
                self._state.problem = str(exc)
            raise
        with self._lock:
            self._state = _State(credentials=credentials, fetched_at=self._clock(), problem=None)
        return credentials

    def current(self) -> tuple[Credentials | None, str | None]:
        """(credentials with at least MIN_VALIDITY_SECONDS left or None, last problem)."""
        with self._lock:
            state = self._state
        credentials = state.credentials
        if credentials is not None and (credentials.expiration - self._clock()).total_seconds() <= MIN_VALIDITY_SECONDS:
            credentials = None
        return credentials, state.problem

    def next_refresh(self) -> datetime:
        """When the background thread should fetch next."""
        with self._lock:
            state = self._state
        now = self._clock()
        if state.credentials is None or state.fetched_at is None:
            return now
        planned = refresh_time(state.fetched_at, state.credentials.expiration, self._margin)
        if self._failures and self._last_failure is not None:
            backoff = min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2 ** (self._failures - 1))
            # After a failure: retry after a backoff, but always before the current credentials die.
            retry_at = self._last_failure + timedelta(seconds=backoff)
            latest = state.credentials.expiration - timedelta(seconds=MIN_VALIDITY_SECONDS)
            planned = min(max(planned, retry_at), max(self._last_failure, latest))
        return planned

    def tick(self) -> None:
        """One background step: refresh if due (failures are logged and retried with backoff)."""
        if self._clock() < self.next_refresh():
            return
        try:
            credentials = self.refresh()
        except DeviceTrustError as exc:
            self._failures += 1
            self._last_failure = self._clock()
            self._log(f"refresh failed (attempt {self._failures}): {exc}")
            return
        self._failures = 0
        self._last_failure = None
        self._log(f"refreshed credentials {mask_access_key_id(credentials.access_key_id)}, valid until "
                  f"{format_expiration(credentials.expiration)}")

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.tick()
                wait = (self.next_refresh() - self._clock()).total_seconds()
                self._stop.wait(min(max(wait, 1.0), 60.0))

        self._thread = threading.Thread(target=loop, name="credentials-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# ---------------------------------------------------------------- HTTP layer
class ContainerCredentialsServer:
    """Serves ``keeper``'s credentials on http://127.0.0.1:<port>/credentials to token holders."""

    def __init__(self, keeper: CredentialsKeeper, token: str, *, host: str = "127.0.0.1", port: int = 0,
                 log: Callable[[str], None] = lambda message: None) -> None:
        if not token:
            raise ValueError("an authorization token is required")
        outer_keeper, outer_token = keeper, token

        class Handler(BaseHTTPRequestHandler):
            server_version = "device-trust-serve"
            sys_version = ""

            def version_string(self) -> str:  # http.server joins the two with a space
                return self.server_version

            def _answer(self) -> None:
                credentials, problem = outer_keeper.current()
                status, body = respond(
                    method=self.command,
                    path=self.path,
                    authorization=self.headers.get("Authorization"),
                    token=outer_token,
                    credentials=credentials,
                    problem=problem,
                    now=utc_now(),
                )
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                if status != 200:
                    log(f"{self.command} {self.path.split('?', 1)[0]} -> {status}")

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer  # noqa: N815

            def log_message(self, format, *args):  # noqa: A002 - http.server API
                pass  # never log requests: they carry the token

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{CREDENTIALS_PATH}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="credentials-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
