"""The CDK app's one exception hierarchy.

Anything that must stop synthesis with one clear line (a bad value in ``cdk.json``,
a malformed provisioning template body) is a :class:`DeviceTrustSynthError`.
``app.py`` turns it into that line on stderr and exit status 1; nothing else in
this package prints or exits.
"""

from __future__ import annotations


class DeviceTrustSynthError(Exception):
    """Root of every error that stops synthesis of the device-trust app."""


class ConfigError(DeviceTrustSynthError):
    """The ``deviceTrust`` context (cdk.json or ``-c``) holds a missing, unknown or bad value."""


class TemplateBodyError(DeviceTrustSynthError):
    """The fleet provisioning template body file is unreadable or malformed."""
