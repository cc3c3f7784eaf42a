"""The device profile: the directory on the laptop that holds its identity.

Layout (see docs/provisioner.md)::

    device.json       thingName, certificateId, certificateArn, credentialsEndpoint,
                      roleAlias, region, stackName, environment, notAfter
    device.key        private key, PEM, mode 0600 (directory 0700)
    device.crt        the certificate AWS IoT issued
    device.p12        PKCS#12 bundle for OS / browser certificate stores
    endpoint-ca.pem   CA bundle that verifies the credentials endpoint

All writes go through :func:`write_file_atomic` / :func:`write_secret_file`: a
temporary file in the same directory, fsync, then ``os.replace``, so a reader sees
either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from provisioner.errors import LocalFileError

DEVICE_JSON = "device.json"
DEVICE_KEY = "device.key"
DEVICE_CERT = "device.crt"
DEVICE_P12 = "device.p12"
ENDPOINT_CA = "endpoint-ca.pem"

# device.json key -> DeviceProfile attribute
_JSON_FIELDS = {
    "thingName": "thing_name",
    "certificateId": "certificate_id",
    "certificateArn": "certificate_arn",
    "credentialsEndpoint": "credentials_endpoint",
    "roleAlias": "role_alias",
    "region": "region",
    "stackName": "stack_name",
    "environment": "environment",
    "notAfter": "not_after",
}


@dataclass(frozen=True)
class DeviceProfile:
    """What a laptop knows about its own enrollment (device.json plus file locations)."""

    directory: Path
    thing_name: str
    certificate_id: str
    certificate_arn: str
    credentials_endpoint: str
    role_alias: str
    region: str
    stack_name: str
    environment: str
    not_after: str

    @property
    def key_path(self) -> Path:
        return self.directory / DEVICE_KEY

    @property
    def cert_path(self) -> Path:
        return self.directory / DEVICE_CERT

    @property
    def p12_path(self) -> Path:
        return self.directory / DEVICE_P12

    @property
    def ca_path(self) -> Path:
        return self.directory / ENDPOINT_CA

    @property
    def json_path(self) -> Path:
        return self.directory / DEVICE_JSON

    def to_json_dict(self) -> dict[str, str]:
        """The content of device.json (camelCase keys, as in DESIGN.md)."""
        return {key: getattr(self, attr) for key, attr in _JSON_FIELDS.items()}

    def to_json_bytes(self) -> bytes:
        return (json.dumps(self.to_json_dict(), indent=2, sort_keys=False) + "\n").encode()

    @classmethod
    def from_json_dict(cls, directory: Path, data: dict) -> "DeviceProfile":
        """Build a profile from device.json content; ValueError names what is missing."""
        if not isinstance(data, dict):
            raise ValueError("device.json is not a JSON object")
        missing = [key for key in _JSON_FIELDS if not isinstance(data.get(key), str) or not data.get(key)]
        if missing:
            raise ValueError(f"device.json lacks {', '.join(missing)}")
        return cls(directory=Path(directory), **{attr: data[key] for key, attr in _JSON_FIELDS.items()})


def default_profile_dir(env: str) -> Path:
    """``~/.device-trust/<env>``."""
    return Path.home() / ".device-trust" / env


def load_profile(directory: Path) -> DeviceProfile:
    """Read the profile in ``directory``; LocalFileError if it is missing or incomplete."""
    directory = Path(directory)
    json_path = directory / DEVICE_JSON
    try:
        raw = json_path.read_bytes()
    except FileNotFoundError as exc:
        raise LocalFileError(
            f"no device profile at {directory} ({DEVICE_JSON} missing): enroll this laptop first "
            "or pass --profile-dir"
        ) from exc
    except OSError as exc:
        raise LocalFileError(f"cannot read {json_path}: {exc.strerror or exc}") from exc
    try:
        profile = DeviceProfile.from_json_dict(directory, json.loads(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LocalFileError(f"{json_path} is damaged ({exc}): re-enroll with --force") from exc
    for path in (profile.key_path, profile.cert_path):
        if not path.is_file():
            raise LocalFileError(f"device profile at {directory} is incomplete ({path.name} missing): re-enroll with --force")
    return profile


def _ensure_private_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            os.chmod(directory, 0o700)
    except OSError as exc:
        raise LocalFileError(f"cannot create private directory {directory}: {exc.strerror or exc}") from exc


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path = Path(path)
    try:
        # mkstemp creates the file 0600 before any byte is written; chmod (not fchmod: Windows) sets the final mode.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise LocalFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException as exc:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise LocalFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def write_secret_file(path: Path, data: bytes) -> None:
    """Write ``data`` atomically with mode 0600; the parent directory is made (or tightened to) 0700."""
    path = Path(path)
    _ensure_private_dir(path.parent)
    _write_atomic(path, data, 0o600)


def write_file_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` atomically with ``mode``; a missing parent directory is created 0700."""
    path = Path(path)
    if not path.parent.exists():
        _ensure_private_dir(path.parent)
    _write_atomic(path, data, mode)
