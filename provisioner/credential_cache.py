"""The credentials cache in the device profile, behind ``credential_process``.

``credentials-cache.json`` (mode 0600) holds the last credentials the endpoint gave,
already in ``credential_process`` form, plus what they were fetched for (certificate id,
role alias, endpoint): a rotated certificate or a changed alias never reuses them.

Warm path (the cache is fresh): read two small JSON files, compare one timestamp, done.
It imports neither the TLS client nor boto3 nor cryptography, because it runs before
every AWS CLI command. Cold path: take an exclusive lock on ``.credentials.lock``, look
at the cache again (another process may have just refreshed it), fetch over mutual TLS
only if it is still stale, replace the cache atomically, release the lock. N processes
starting on a cold cache therefore cause one request to the endpoint, and every reader
sees either the old cache file or the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from provisioner.errors import CredentialsRefusedError, LocalFileError, NetworkError, UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from provisioner.credentials_client import Credentials
    from provisioner.profile import DeviceProfile

CACHE_FILE = "credentials-cache.json"
LOCK_FILE = ".credentials.lock"
DEFAULT_REFRESH_MARGIN_SECONDS = 300
REFRESH_MARGIN_ENV = "DEVICE_TRUST_REFRESH_MARGIN"
# When the endpoint cannot be reached, cached credentials with at least this much life
# left are still handed out (with a warning): a network blip should not break the CLI.
MIN_FALLBACK_SECONDS = 60
LOCK_TIMEOUT_SECONDS = 90
_PROCESS_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")

# Where credentials came from, for callers that want to say so (never on stdout).
FROM_CACHE = "cache"
FROM_ENDPOINT = "endpoint"
FROM_CACHE_ENDPOINT_UNREACHABLE = "cache (endpoint unreachable)"


# ---------------------------------------------------------------- pure core
def process_document(credentials: "Credentials") -> dict:
    """Credentials -> the ``credential_process`` JSON document (Version 1)."""
    expiration = credentials.expiration.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Version": 1,
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "SessionToken": credentials.session_token,
        "Expiration": expiration,
    }


def cache_identity(profile: "DeviceProfile") -> dict:
    """What cached credentials were fetched for; a mismatch makes the cache unusable."""
    return {
        "certificateId": profile.certificate_id,
        "roleAlias": profile.role_alias,
        "credentialsEndpoint": profile.credentials_endpoint,
    }


def encode_cache(document: dict, identity: dict) -> bytes:
    return (json.dumps({"for": identity, "credentials": document}, indent=1) + "\n").encode()


def decode_cache(data: bytes, identity: dict) -> dict | None:
    """The cached credential_process document, or None if damaged or fetched for something else."""
    try:
        parsed = json.loads(data)
        document = parsed["credentials"]
        if parsed.get("for") != identity or document.get("Version") != 1:
            return None
        if not all(isinstance(document.get(k), str) and document[k] for k in _PROCESS_FIELDS):
            return None
        expiration_of(document)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return {"Version": 1, **{k: document[k] for k in _PROCESS_FIELDS}}


def expiration_of(document: dict) -> datetime:
    value = datetime.fromisoformat(document["Expiration"].replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def seconds_left(document: dict, now: datetime) -> float:
    return (expiration_of(document) - now).total_seconds()


def is_fresh(document: dict | None, *, now: datetime, margin_seconds: float) -> bool:
    """True while the credentials have more than ``margin_seconds`` of life left."""
    return document is not None and seconds_left(document, now) > margin_seconds


def parse_refresh_margin(option: float | None, environ: dict) -> float:
    """--refresh-margin, else $DEVICE_TRUST_REFRESH_MARGIN, else 300 s; UsageError if invalid."""
    if option is not None:
        value, source = option, "--refresh-margin"
    elif environ.get(REFRESH_MARGIN_ENV, "").strip():
        source = REFRESH_MARGIN_ENV
        try:
            value = float(environ[REFRESH_MARGIN_ENV])
        except ValueError as exc:
            raise UsageError(f"{REFRESH_MARGIN_ENV} must be a number of seconds, not "
                             f"{environ[REFRESH_MARGIN_ENV]!r}") from exc
    else:
        return float(DEFAULT_REFRESH_MARGIN_SECONDS)
    if not 0 <= value <= 12 * 3600 or value != value:
        raise UsageError(f"{source} must be between 0 and 43200 seconds, not {value:g}")
    return float(value)


# ---------------------------------------------------------------- file I/O
def cache_path(profile: "DeviceProfile") -> Path:
    return profile.directory / CACHE_FILE


def read_cache(profile: "DeviceProfile") -> dict | None:
    try:
        data = cache_path(profile).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LocalFileError(f"cannot read {cache_path(profile)}: {exc.strerror or exc}") from exc
    return decode_cache(data, cache_identity(profile))


def write_cache(profile: "DeviceProfile", document: dict) -> None:
    from provisioner.profile import write_secret_file

    write_secret_file(cache_path(profile), encode_cache(document, cache_identity(profile)))


def discard_cache(profile: "DeviceProfile") -> None:
    try:
        cache_path(profile).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise LocalFileError(f"cannot remove {cache_path(profile)}: {exc.strerror or exc}") from exc


class _ProfileLock:
    """Exclusive advisory lock on ``<profile>/.credentials.lock`` (flock; msvcrt on Windows)."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout, self.fd = path, timeout, -1

    def __enter__(self) -> "_ProfileLock":
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise LocalFileError(f"cannot open lock file {self.path}: {exc.strerror or exc}") from exc
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                _lock_nonblocking(self.fd)
                return self
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno not in (11, 13, 35, 36):  # EAGAIN/EACCES/EWOULDBLOCK/EDEADLK
                    os.close(self.fd)
                    raise LocalFileError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
            if time.monotonic() > deadline:
                os.close(self.fd)
                raise LocalFileError(
                    f"another process has held {self.path} for {self.timeout:g} s; "
                    "if none is running, delete the file and try again"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def __exit__(self, *exc_info) -> None:
        try:
            _unlock(self.fd)
        finally:
            os.close(self.fd)


if os.name == "nt":  # pragma: no cover - exercised on Windows laptops only
    import msvcrt

    def _lock_nonblocking(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock_nonblocking(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def forget_credentials(profile: "DeviceProfile", *, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
    """Delete the credentials cache under the profile lock (after the endpoint refused the certificate).

    Under the lock, a refresh that was already under way either wrote its cache before
    this deletes it, or starts after and asks the endpoint itself. If the lock cannot be
    had, the file is deleted anyway: keys of a refused certificate must not stay behind.
    Raises LocalFileError only when the file exists and cannot be removed.
    """
    try:
        with _ProfileLock(profile.directory / LOCK_FILE, lock_timeout):
            discard_cache(profile)
            return
    except LocalFileError:
        pass
    discard_cache(profile)


def refused_forgetting_cache(profile: "DeviceProfile", error: CredentialsRefusedError) -> CredentialsRefusedError:
    """Forget the cache of a refused certificate; the refusal to raise (still exit 6).

    If the cache cannot be removed, the refusal says so and where, in the same one line.
    """
    try:
        forget_credentials(profile)
    except LocalFileError as exc:
        return CredentialsRefusedError(f"{error}; and the cached credentials could not be removed ({exc}): "
                                       "delete that file by hand")
    return error


def fetch_forgetting_cache_on_refusal(
    profile: "DeviceProfile",
    fetch: Callable[["DeviceProfile"], "Credentials"] | None = None,
) -> "Credentials":
    """Fetch from the endpoint without the cache; if the endpoint refuses the certificate,
    delete the cache too (``credentials --no-cache``, ``verify``, ``serve``)."""
    if fetch is None:
        from provisioner.credentials_client import fetch_credentials_for_profile as fetch
    try:
        return fetch(profile)
    except CredentialsRefusedError as exc:
        error = refused_forgetting_cache(profile, exc)
        if error is exc:
            raise
        raise error from exc


def get_credentials(
    profile: "DeviceProfile",
    *,
    margin_seconds: float = DEFAULT_REFRESH_MARGIN_SECONDS,
    fetch: Callable[["DeviceProfile"], "Credentials"] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
) -> tuple[dict, str]:
    """The credential_process document for ``profile`` and where it came from.

    Fresh cache -> returned without a lock or a request. Otherwise one process at a time
    refreshes it. A refused certificate discards the cache and raises; an unreachable
    endpoint falls back to cached credentials that still have a minute of life.
    """
    cached = read_cache(profile)
    if is_fresh(cached, now=clock(), margin_seconds=margin_seconds):
        return cached, FROM_CACHE
    with _ProfileLock(profile.directory / LOCK_FILE, lock_timeout):
        cached = read_cache(profile)  # someone may have refreshed while we waited
        if is_fresh(cached, now=clock(), margin_seconds=margin_seconds):
            return cached, FROM_CACHE
        if fetch is None:
            from provisioner.credentials_client import fetch_credentials_for_profile as fetch
        try:
            document = process_document(fetch(profile))
        except CredentialsRefusedError as exc:
            try:
                discard_cache(profile)  # already under the lock
            except LocalFileError as failure:
                raise CredentialsRefusedError(
                    f"{exc}; and the cached credentials could not be removed ({failure}): "
                    "delete that file by hand") from exc
            raise
        except NetworkError:
            if cached is not None and seconds_left(cached, clock()) > MIN_FALLBACK_SECONDS:
                return cached, FROM_CACHE_ENDPOINT_UNREACHABLE
            raise
        write_cache(profile, document)
        return document, FROM_ENDPOINT
