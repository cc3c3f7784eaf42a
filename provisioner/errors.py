"""The provisioner's one exception hierarchy.

Every failure a user can cause or meet is a :class:`DeviceTrustError` subclass whose
``exit_code`` says which kind of failure it is. Only :func:`provisioner.cli.main`
turns one into a message on stderr and an exit status. Messages are one line: what
failed and what to do about it. Raise them ``from`` the underlying cause.
"""

from __future__ import annotations


class DeviceTrustError(Exception):
    """Root of every error the provisioner reports to its user."""

    exit_code = 1


class UsageError(DeviceTrustError):
    """Bad input: an option, a name, a path or a value that fails validation."""

    exit_code = 2


class AwsError(DeviceTrustError):
    """AWS refused or is misconfigured: permissions, missing stack or outputs, API errors."""

    exit_code = 3


class NetworkError(DeviceTrustError):
    """An endpoint cannot be reached or timed out."""

    exit_code = 4


class LocalFileError(DeviceTrustError):
    """Profile files are missing, unreadable or unwritable."""

    exit_code = 5


class CredentialsRefusedError(DeviceTrustError):
    """The credentials endpoint refused the certificate (revoked, unknown, Access Denied...)."""

    exit_code = 6


EXIT_CODES: dict[str, int] = {
    cls.__name__: cls.exit_code
    for cls in (DeviceTrustError, UsageError, AwsError, NetworkError, LocalFileError, CredentialsRefusedError)
}
