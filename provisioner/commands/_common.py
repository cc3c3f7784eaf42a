"""What several verbs share: the PKCS#12 password, the endpoint CA bundle, staged
profile writes, the post-enrollment credentials check and result printing.

Not a verb: :mod:`provisioner.cli` only loads the modules it lists.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform as platform_module
import socket
import ssl
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from provisioner import keys
from provisioner.errors import AwsError, CredentialsRefusedError, LocalFileError, NetworkError, UsageError
from provisioner.profile import (
    DEVICE_CERT,
    DEVICE_JSON,
    DEVICE_KEY,
    DEVICE_P12,
    ENDPOINT_CA,
    DeviceProfile,
    write_file_atomic,
    write_secret_file,
)

PASSWORD_ENV = "DEVICE_TRUST_PKCS12_PASSWORD"
ENDPOINT_CA_ENV = "DEVICE_TRUST_ENDPOINT_CA"
STAGING_SUFFIX = ".new"
BACKUP_SUFFIX = ".old"
# Profile files that hold the private key: never readable by anyone but the user.
SECRET_FILES = frozenset({DEVICE_KEY, DEVICE_P12})
# Pending key + CSR made by the `csr` verb, consumed by `install`.
PENDING_KEY = "pending.key"
PENDING_CSR = "pending.csr"
# A certificate just made can take a moment to reach the credentials provider.
VERIFY_RETRY_DELAYS = (1.0, 2.0)


def add_pkcs12_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pkcs12-encryption", choices=keys.PKCS12_ENCRYPTIONS, default=keys.DEFAULT_PKCS12_ENCRYPTION,
                        help="legacy (default: PBE-SHA1-3DES, SHA-1 MAC; every keychain imports it) or "
                             "aes256 (PBES2 AES-256, SHA-256 MAC; modern stores only). Password from "
                             f"{PASSWORD_ENV} or a prompt")


def add_endpoint_ca_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint-ca", type=Path, metavar="FILE",
                        help="CA bundle (PEM) that verifies the credentials endpoint; default "
                             f"${ENDPOINT_CA_ENV}, else the bundled Amazon root CAs. For the local stand-in: "
                             "its caFile from <state-dir>/endpoint.json")


def add_verify_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-verify", action="store_true",
                        help="do not fetch credentials once to prove the new identity works")


def add_key_type_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-type", choices=keys.KEY_TYPES, default=keys.DEFAULT_KEY_TYPE,
                        help=f"key pair made on this laptop (default: {keys.DEFAULT_KEY_TYPE})")


def add_attribute_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--owner", help="thing attribute Owner (e.g. the user's e-mail)")
    parser.add_argument("--serial", help="thing attribute SerialNumber (the laptop's serial number)")
    parser.add_argument("--platform", help="thing attribute Platform (default: this machine's OS for enroll)")


def this_platform() -> str:
    """macos, windows or linux (or the OS name lower-cased): the Platform thing attribute."""
    name = platform_module.system().lower()
    return {"darwin": "macos"}.get(name, name or "unknown")


def pkcs12_password(*, confirm: bool = True) -> bytes:
    """The PKCS#12 password: $DEVICE_TRUST_PKCS12_PASSWORD, else an interactive prompt; never argv.

    The variable is removed from this process's environment as it is read, so no program
    the provisioner starts (none today) inherits it.
    """
    value = early_pkcs12_password()
    if value is not None:
        return value
    value = getpass.getpass("Password for device.p12: ")
    if confirm and getpass.getpass("Repeat the password: ") != value:
        raise UsageError("the two passwords differ")
    return _checked_password(value)


def early_pkcs12_password() -> bytes | None:
    """What can be known of the password before any AWS call, without prompting: the variable's
    value (checked, then removed from the environment), or None if :func:`pkcs12_password` will
    have to prompt. UsageError now if it will have to and there is no terminal to prompt on.

    Verbs call this first and prompt only once the stack and endpoint have been read, so that a
    user whose stack or network is down is not asked for a password in vain; the prompt still
    comes before anything is created in AWS.
    """
    value = os.environ.pop(PASSWORD_ENV, None)
    if value is None:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise UsageError(f"no PKCS#12 password: set {PASSWORD_ENV} (no terminal to prompt on)")
        return None
    return _checked_password(value)


def _checked_password(value: str) -> bytes:
    if len(value) < keys.MIN_PKCS12_PASSWORD_LENGTH:
        raise UsageError(f"the PKCS#12 password must be at least {keys.MIN_PKCS12_PASSWORD_LENGTH} characters")
    return value.encode()


def _has_pem_certificate(data: bytes) -> bool:
    """True if OpenSSL (as the credentials client will use it) loads ``data`` as CA certificates."""
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return False
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, ValueError, UnicodeDecodeError):
        return False
    return True


@dataclass(frozen=True)
class EndpointCa:
    """The CA bundle for the credentials endpoint and where it came from (for messages)."""

    pem: bytes
    source: str


def endpoint_ca_bundle(option: Path | None) -> bytes:
    return endpoint_ca(option).pem


def endpoint_ca(option: Path | None) -> EndpointCa:
    """The CA bundle for the credentials endpoint, by the documented rule:
    --endpoint-ca, else $DEVICE_TRUST_ENDPOINT_CA, else the bundled Amazon root CAs."""
    if option is None and os.environ.get(ENDPOINT_CA_ENV):
        option = Path(os.environ[ENDPOINT_CA_ENV])
    if option is None:
        try:
            data = resources.files("provisioner.data").joinpath("amazon-root-ca.pem").read_bytes()
        except (OSError, ModuleNotFoundError) as exc:
            raise LocalFileError("the bundled Amazon root CAs are missing from this installation: "
                                 "pass --endpoint-ca FILE") from exc
        source = "the bundled Amazon root CAs"
    else:
        option = option.expanduser()
        try:
            data = option.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read endpoint CA file {option}: {exc.strerror or exc}") from exc
        source = str(option)
    if not _has_pem_certificate(data):
        raise UsageError(f"{source} holds no PEM certificate: pass a CA bundle with --endpoint-ca")
    return EndpointCa(data, source)


def check_endpoint_trust(endpoint: str, ca: EndpointCa, *, timeout: float = 5.0) -> None:
    """Before any certificate exists: does the credentials endpoint's server certificate verify
    against the CA bundle? A TLS handshake without a client certificate answers that (the
    server's refusal of the missing client certificate comes after our verification of it)."""
    from provisioner.credentials_client import split_endpoint

    try:
        host, port = split_endpoint(endpoint)
    except ValueError as exc:
        raise AwsError(f"DescribeEndpoint returned an unusable credentials endpoint: {exc}") from exc
    context = ssl.create_default_context(cadata=ca.pem.decode("ascii"))
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                tls.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        raise UsageError(
            f"the credentials endpoint {endpoint} does not verify against {ca.source} ({exc.verify_message}): "
            f"pass --endpoint-ca (or set {ENDPOINT_CA_ENV}) to the CA that signs it; for the local stand-in "
            "that is the caFile in <state-dir>/endpoint.json"
        ) from exc
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        pass  # the server's certificate verified; it then wanted a client certificate, as it should
    except OSError as exc:
        raise NetworkError(f"cannot reach the credentials endpoint {endpoint}: {exc.strerror or exc}") from exc


def read_input_file(path: Path, what: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def check_profile_dir_usable(directory: Path) -> None:
    """Fail early (before any AWS call) if the profile directory cannot be made or written.

    Really tries: makes the directory (0700, parents too) as the profile writes will, then
    creates and removes a probe file in it. Permission bits alone do not tell (root passes
    os.access on /proc, where nothing can be created).
    """
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise LocalFileError(f"cannot use profile directory {directory}: {probe} is not a directory")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, probe_name = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=directory)
        try:
            os.write(fd, b"probe")
        finally:
            os.close(fd)
            os.unlink(probe_name)
    except OSError as exc:
        raise LocalFileError(f"cannot write to profile directory {directory}: {exc.strerror or exc}") from exc


# ---------------------------------------------------------------- staged profile writes

@dataclass(frozen=True)
class StagedProfile:
    """A complete new identity written beside the current one as ``<file>.new``."""

    profile: DeviceProfile  # final locations
    names: tuple[str, ...]  # files staged, in commit order (device.json last)

    def staged(self, name: str) -> Path:
        return self.profile.directory / (name + STAGING_SUFFIX)

    @property
    def key_path(self) -> Path:
        return self.staged(DEVICE_KEY) if DEVICE_KEY in self.names else self.profile.key_path

    @property
    def cert_path(self) -> Path:
        return self.staged(DEVICE_CERT)

    @property
    def ca_path(self) -> Path:
        return self.staged(ENDPOINT_CA) if ENDPOINT_CA in self.names else self.profile.ca_path

    def commit(self) -> None:
        """Move every staged file over the current one (each an atomic rename); device.json last."""
        for name in self.names:
            try:
                os.replace(self.staged(name), self.profile.directory / name)
            except OSError as exc:
                raise LocalFileError(
                    f"cannot install {name} in {self.profile.directory} ({exc.strerror or exc}); the new files "
                    f"are the *{STAGING_SUFFIX} ones there: rename them by hand"
                ) from exc

    def swap_in(self) -> "SwappedProfile":
        """Like :meth:`commit`, but each current file is first kept as ``<file>.old`` (a hard
        link, else a copy) so that :meth:`SwappedProfile.undo` can put the old identity back.

        If a rename fails, the files already moved are put back, the staged files removed,
        and LocalFileError raised: the old identity is as it was.
        """
        directory = self.profile.directory
        swapped = SwappedProfile(directory)
        try:
            for name in self.names:
                current, backup = directory / name, directory / (name + BACKUP_SUFFIX)
                backup.unlink(missing_ok=True)  # a stale one from an interrupted run
                if current.exists():
                    try:
                        os.link(current, backup)
                    except OSError:
                        _copy_aside(current, backup)  # a file system without hard links
                    swapped.backed_up.append(name)
                os.replace(self.staged(name), current)
                swapped.moved.append(name)
        except BaseException as exc:
            problem = swapped.undo()
            self.discard()
            if isinstance(exc, (OSError, LocalFileError)):
                what = (f"cannot install {name} in {directory} ({exc.strerror or exc})"
                        if isinstance(exc, OSError) else f"cannot install {name}: {exc}")
                raise LocalFileError(f"{what}; " + (problem or "the old files are back in place")) from exc
            raise
        return swapped

    def discard(self) -> None:
        for name in self.names:
            try:
                self.staged(name).unlink()
            except FileNotFoundError:
                pass
            except OSError:
                pass  # best effort: a stale *.new file is overwritten by the next run


def _copy_aside(current: Path, backup: Path) -> None:
    """Copy ``current`` to ``backup`` where a hard link cannot be made.

    Written like every profile file: a temporary file created 0600, renamed into place
    once complete. (``shutil.copy2`` creates the copy with umask permissions and copies the
    mode only at the end, so a key or PKCS#12 bundle would be readable by others while
    it is written, and stay so if the copy fails half-way.) Secret files are kept 0600;
    the others keep their own mode, which ``undo`` puts back with them.
    """
    data = current.read_bytes()
    if current.name in SECRET_FILES:
        write_secret_file(backup, data)
    else:
        write_file_atomic(backup, data, mode=stat.S_IMODE(current.stat().st_mode))


@dataclass
class SwappedProfile:
    """New files in place, the replaced ones kept as ``<file>.old`` until :meth:`keep` or :meth:`undo`."""

    directory: Path
    backed_up: list = field(default_factory=list)  # names with a <name>.old
    moved: list = field(default_factory=list)  # names whose new file is in place

    def undo(self) -> str | None:
        """Put the old files back (each an atomic rename; files that did not exist before are
        removed). None on success, else one sentence saying what is left to do by hand."""
        failed: list[str] = []
        for name in reversed(self.moved):
            current, backup = self.directory / name, self.directory / (name + BACKUP_SUFFIX)
            try:
                if name in self.backed_up:
                    os.replace(backup, current)
                else:
                    current.unlink(missing_ok=True)
            except OSError:
                failed.append(name)
        for name in self.backed_up:
            if name not in self.moved:  # linked but never replaced: the current file is the old one
                (self.directory / (name + BACKUP_SUFFIX)).unlink(missing_ok=True)
        self.moved, self.backed_up = [], []
        if failed:
            return (f"could not put back {', '.join(failed)} in {self.directory}: rename each "
                    f"<file>{BACKUP_SUFFIX} there over <file> by hand")
        return None

    def keep(self) -> None:
        """The new files stay: remove the kept old ones (best effort)."""
        for name in self.backed_up:
            try:
                (self.directory / (name + BACKUP_SUFFIX)).unlink(missing_ok=True)
            except OSError:
                pass
        self.moved, self.backed_up = [], []


def stage_profile(
    profile: DeviceProfile,
    *,
    cert_pem: bytes,
    p12: bytes,
    key_pem: bytes | None = None,
    ca_pem: bytes | None = None,
) -> StagedProfile:
    """Write ``<name>.new`` files for the new identity; nothing current is touched yet."""
    names: list[str] = [DEVICE_CERT]
    files: dict[str, tuple[bytes, bool]] = {DEVICE_CERT: (cert_pem, False), DEVICE_P12: (p12, True)}
    if key_pem is not None:
        names.append(DEVICE_KEY)
        files[DEVICE_KEY] = (key_pem, True)
    names.append(DEVICE_P12)
    if ca_pem is not None:
        names.append(ENDPOINT_CA)
        files[ENDPOINT_CA] = (ca_pem, False)
    names.append(DEVICE_JSON)
    files[DEVICE_JSON] = (profile.to_json_bytes(), False)
    staged = StagedProfile(profile, tuple(names))
    try:
        for name in names:
            data, secret = files[name]
            if secret:
                write_secret_file(staged.staged(name), data)
            else:
                write_file_atomic(staged.staged(name), data, 0o644)
    except BaseException:
        staged.discard()
        raise
    return staged


def install_identity(
    profile: DeviceProfile,
    *,
    cert_pem: bytes,
    p12: bytes,
    key_pem: bytes,
    ca_pem: bytes,
    verify: bool,
):
    """Stage the new identity's files, prove it works (unless ``verify`` is false), then
    move it into place. Returns the Credentials fetched, or None; on failure nothing
    current is touched and the staged files are removed."""
    staged = stage_profile(profile, cert_pem=cert_pem, p12=p12, key_pem=key_pem, ca_pem=ca_pem)
    try:
        credentials = verify_identity(staged=staged) if verify else None
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    return credentials


def verify_identity(*, staged: StagedProfile | None = None, profile: DeviceProfile | None = None):
    """Fetch credentials once with the (staged or current) identity; returns the Credentials."""
    from provisioner import credentials_client

    target = staged.profile if staged is not None else profile
    paths = dict(cert_path=staged.cert_path, key_path=staged.key_path, ca_path=staged.ca_path) if staged \
        else dict(cert_path=profile.cert_path, key_path=profile.key_path, ca_path=profile.ca_path)
    for delay in (*VERIFY_RETRY_DELAYS, None):
        try:
            return credentials_client.fetch_credentials(
                endpoint=target.credentials_endpoint, role_alias=target.role_alias,
                thing_name=target.thing_name, **paths)
        except CredentialsRefusedError:
            if delay is None:
                raise
            time.sleep(delay)


# ---------------------------------------------------------------- output

def emit(args: argparse.Namespace, result: dict, lines: list[str]) -> None:
    """Print the result: JSON with --json, else the readable lines. stdout only."""
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        for line in lines:
            print(line)


def note(message: str) -> None:
    """A diagnostic for the human watching (stderr, never stdout)."""
    print(f"device-trust: {message}", file=sys.stderr)
