"""Chrome policies for a device profile: pure renderers, bytes and dicts in and out.

What an administrator pushes so that Chrome presents this laptop's certificate to the
AWS IoT credentials endpoint without asking (``AutoSelectCertificateForUrls``) and so
that the Device Trust extension knows where to fetch credentials and for which web
origins (its managed configuration, ``extension/schema.json``):

* Linux: one JSON file for ``/etc/opt/chrome/policies/managed`` (Google Chrome) and
  ``/etc/chromium/policies/managed`` (Chromium);
* Windows: a ``.reg`` file under ``HKLM\\Software\\Policies\\Google\\Chrome``;
* macOS: a configuration profile (``.mobileconfig``) holding the PKCS#12 identity (without its
  password unless asked) and the ``com.google.Chrome`` and extension managed preferences, or
  those preferences alone.

Also the manifest of the extension's stand-in variant (:func:`stand_in_manifest`), which may
reach the local stand-in's endpoint on ``https://localhost`` as well.

Nothing here reads files, prompts or prints; :mod:`provisioner.commands.browser_policy`
does that.
"""

from __future__ import annotations

import json
import plistlib
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID

from provisioner.errors import UsageError

# The Device Trust extension's id: derived from the public key in extension/manifest.json
# (first 128 bits of its SHA-256, hex digits mapped to a-p). A test keeps the two in step.
EXTENSION_ID = "falaogdhcdoeedhkfachekilfiochbjn"

OPERATING_SYSTEMS = ("macos", "windows", "linux")
LINUX_POLICY_DIRS = ("/etc/opt/chrome/policies/managed", "/etc/chromium/policies/managed")
WINDOWS_POLICY_KEY = r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Google\Chrome"
MACOS_CHROME_DOMAIN = "com.google.Chrome"

# What the stand-in variant of the extension adds to the shipped manifest's host permissions: the local
# stand-in's credentials endpoint (match patterns without a port match every port). The shipped
# extension/manifest.json grants only the AWS IoT credentials provider's endpoints.
STAND_IN_HOST_PERMISSION = "https://localhost/*"

_EXTENSION_ID = re.compile(r"[a-p]{32}")
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}
# A DNS name or IPv4 address, or an IPv6 address (bracketed below): no wildcards, no odd characters.
_ORIGIN_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|[0-9a-f:.]*:[0-9a-f:.]*")
_HOST_PORT = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::\d{1,5})?")
# The names Chrome's certificate filter understands, per Chrome's AutoSelectCertificateForUrls docs.
_FILTER_ATTRIBUTES = (("CN", NameOID.COMMON_NAME), ("O", NameOID.ORGANIZATION_NAME),
                      ("OU", NameOID.ORGANIZATIONAL_UNIT_NAME))


def canonical_origin(url: str) -> str:
    """``scheme://host[:port]`` of an allowed web application, or UsageError.

    https with any host; http only on loopback (a page served locally); no path, query,
    fragment or user info, so that what the administrator wrote is exactly one origin.
    The result is what a browser reports as the page's origin (lower case, no default port).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"invalid --allowed-origin {url!r}: {exc}") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"invalid --allowed-origin {url!r}: expected https://host[:port]")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment \
            or parts.path not in ("", "/"):
        raise UsageError(f"invalid --allowed-origin {url!r}: an origin has no path, query, fragment or user "
                         "(use e.g. https://app.example.com)")
    host = parts.hostname
    if not _ORIGIN_HOST.fullmatch(host):
        raise UsageError(f"invalid --allowed-origin {url!r}: {host!r} is not a host name or IP address "
                         "(no wildcards: list each origin)")
    if ":" in host:
        host = f"[{host}]"
    if parts.scheme == "http" and host not in _LOOPBACK_HOSTS:
        raise UsageError(f"invalid --allowed-origin {url!r}: plain http is allowed only for localhost / 127.0.0.1; "
                         "use https")
    default_port = 443 if parts.scheme == "https" else 80
    suffix = f":{port}" if port is not None and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"


def certificate_filter(certificate_pem: bytes) -> dict:
    """Chrome's certificate filter that matches exactly this certificate's names.

    SUBJECT: CN (required) and O when the certificate has one; ISSUER: whichever of
    CN, O, OU the issuer has (AWS IoT's own CA names itself by OU and O, not CN).
    """
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError as exc:
        raise UsageError(f"the device certificate is not a PEM X.509 certificate: {exc}") from exc

    def names(name: x509.Name, keys: tuple[str, ...]) -> dict:
        found = {}
        for key, oid in _FILTER_ATTRIBUTES:
            if key not in keys:
                continue
            values = name.get_attributes_for_oid(oid)
            if values:
                found[key] = str(values[0].value)
        return found

    subject = names(certificate.subject, ("CN", "O"))
    if "CN" not in subject:
        raise UsageError("the device certificate has no subject CN, so Chrome could not be told to pick it")
    issuer = names(certificate.issuer, ("CN", "O", "OU"))
    if not issuer:
        raise UsageError("the device certificate's issuer has no CN, O or OU to match on")
    return {"ISSUER": issuer, "SUBJECT": subject}


@dataclass(frozen=True)
class BrowserPolicy:
    """Everything the three renderers need, already validated."""

    credentials_endpoint: str  # host[:port], as DescribeEndpoint returns it
    certificate_filter: dict
    role_alias: str
    thing_name: str
    allowed_origins: tuple[str, ...]
    environment: str
    extension_id: str = EXTENSION_ID
    extension_update_url: str | None = None  # for ExtensionInstallForcelist; None leaves it out

    def __post_init__(self):
        if not _HOST_PORT.fullmatch(self.credentials_endpoint or ""):
            raise UsageError(f"credentials endpoint {self.credentials_endpoint!r} is not host[:port]")
        if not _EXTENSION_ID.fullmatch(self.extension_id or ""):
            raise UsageError(f"invalid extension id {self.extension_id!r}: 32 letters a-p")
        if self.extension_update_url is not None and urlsplit(self.extension_update_url).scheme != "https":
            raise UsageError(f"invalid extension update URL {self.extension_update_url!r}: use https://")

    @property
    def auto_select_entry(self) -> dict:
        return {"pattern": f"https://{self.credentials_endpoint}", "filter": self.certificate_filter}

    @property
    def extension_config(self) -> dict:
        """The extension's managed configuration (extension/schema.json)."""
        return {
            "credentialsEndpoint": self.credentials_endpoint,
            "roleAlias": self.role_alias,
            "thingName": self.thing_name,
            "allowedOrigins": list(self.allowed_origins),
        }

    @property
    def force_install_entry(self) -> str | None:
        if self.extension_update_url is None:
            return None
        return f"{self.extension_id};{self.extension_update_url}"


def build_policy(*, credentials_endpoint: str, certificate_pem: bytes, role_alias: str, thing_name: str,
                 allowed_origins: list[str] | tuple[str, ...], environment: str,
                 extension_id: str = EXTENSION_ID, extension_update_url: str | None = None) -> BrowserPolicy:
    origins: list[str] = []
    for url in allowed_origins:
        origin = canonical_origin(url)
        if origin not in origins:
            origins.append(origin)
    return BrowserPolicy(
        credentials_endpoint=credentials_endpoint.lower(),
        certificate_filter=certificate_filter(certificate_pem),
        role_alias=role_alias,
        thing_name=thing_name,
        allowed_origins=tuple(origins),
        environment=environment,
        extension_id=extension_id,
        extension_update_url=extension_update_url,
    )


def stand_in_manifest(manifest: dict) -> dict:
    """The shipped extension manifest, with the local stand-in's endpoint added to ``host_permissions``.

    Nothing else changes: in particular ``"key"`` stays, so the stand-in variant has the same
    extension id and the same managed configuration applies to it. ``manifest`` is not modified.
    ValueError when it is not an extension manifest with a ``host_permissions`` list.
    """
    permissions = manifest.get("host_permissions") if isinstance(manifest, dict) else None
    if not isinstance(permissions, list):
        raise ValueError("it has no host_permissions list")
    variant = dict(manifest)
    if STAND_IN_HOST_PERMISSION not in permissions:
        variant["host_permissions"] = [*permissions, STAND_IN_HOST_PERMISSION]
    return variant


def _auto_select_string(policy: BrowserPolicy) -> str:
    # Chrome wants each AutoSelectCertificateForUrls entry as a JSON *string*.
    return json.dumps(policy.auto_select_entry, separators=(",", ":"), sort_keys=True)


def chrome_policies(policy: BrowserPolicy) -> dict:
    """The Chrome policy dictionary (the shape of a Linux managed policy file)."""
    policies: dict = {
        "AutoSelectCertificateForUrls": [_auto_select_string(policy)],
        "3rdparty": {"extensions": {policy.extension_id: policy.extension_config}},
    }
    if policy.force_install_entry:
        policies["ExtensionInstallForcelist"] = [policy.force_install_entry]
    return policies


def render_linux(policy: BrowserPolicy) -> bytes:
    """JSON for /etc/opt/chrome/policies/managed/ and /etc/chromium/policies/managed/."""
    return (json.dumps(chrome_policies(policy), indent=2, sort_keys=False) + "\n").encode()


def _reg_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_windows(policy: BrowserPolicy) -> bytes:
    """A .reg file (UTF-16 LE with BOM and CRLF, as regedit writes them) for HKLM policies.

    List policies are subkeys with values "1", "2", ... The extension's allowedOrigins
    key is deleted before it is written, so an origin removed from the list disappears.
    """
    root = WINDOWS_POLICY_KEY
    extension_key = rf"{root}\3rdparty\extensions\{policy.extension_id}\policy"
    lines = ["Windows Registry Editor Version 5.00", "",
             f"[{root}\\AutoSelectCertificateForUrls]",
             f'"1"={_reg_string(_auto_select_string(policy))}', ""]
    if policy.force_install_entry:
        lines += [f"[{root}\\ExtensionInstallForcelist]", f'"1"={_reg_string(policy.force_install_entry)}', ""]
    lines += [f"[{extension_key}]"]
    for name in ("credentialsEndpoint", "roleAlias", "thingName"):
        lines.append(f"{_reg_string(name)}={_reg_string(policy.extension_config[name])}")
    lines += ["", f"[-{extension_key}\\allowedOrigins]", "", f"[{extension_key}\\allowedOrigins]"]
    for index, origin in enumerate(policy.allowed_origins, start=1):
        lines.append(f'"{index}"={_reg_string(origin)}')
    lines.append("")
    return "\ufeff".encode("utf-16-le") + "\r\n".join(lines + [""]).encode("utf-16-le")


def _payload_uuid(identifier: str) -> str:
    # Stable across runs, so re-pushing the profile replaces the installed one instead of adding another.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"device-trust:{identifier}")).upper()


def render_macos(policy: BrowserPolicy, *, pkcs12: bytes | None, pkcs12_password: str | None = None,
                 allow_all_apps_access: bool = False,
                 identifier_prefix: str = "com.example.device-trust") -> bytes:
    """A configuration profile (.mobileconfig, XML plist) for one Mac.

    Payloads: the PKCS#12 identity (``com.apple.security.pkcs12``) unless ``pkcs12`` is None,
    Chrome's managed preferences (``com.google.Chrome``) and the extension's managed configuration
    (``com.google.Chrome.extensions.<id>``).

    The identity payload holds the device's private key, encrypted with the PKCS#12 password.
    ``pkcs12_password`` None (the default) leaves the password out, so macOS asks for it when the
    profile is installed; a profile with the password in it holds the key in effect in clear (Apple:
    profiles are obfuscated, not encrypted). The key is marked not extractable
    (``KeyIsExtractable`` false), and apps other than those the keychain lets in may not use it
    unless ``allow_all_apps_access`` (``AllowAllAppsAccess``; Apple's default is false).

    With ``pkcs12`` None the profile carries only the two Chrome payloads, for a Mac whose identity
    was imported into its keychain on the Mac itself; it has its own PayloadIdentifier, so it
    neither replaces nor is replaced by the profile with the identity.
    """
    if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", identifier_prefix):
        raise UsageError(f"invalid profile identifier {identifier_prefix!r}: use reverse DNS, e.g. com.example.it")
    if pkcs12 is None and (pkcs12_password is not None or allow_all_apps_access):
        raise UsageError("a profile without the identity payload takes no PKCS#12 password or key access setting")
    base = f"{identifier_prefix}.{policy.environment}.{policy.thing_name}"
    if pkcs12 is None:
        base = f"{base}.chrome-policies"
    payloads = []
    if pkcs12 is not None:
        identity = {
            "PayloadType": "com.apple.security.pkcs12",
            "PayloadVersion": 1,
            "PayloadIdentifier": f"{base}.identity",
            "PayloadUUID": _payload_uuid(f"{base}.identity"),
            "PayloadDisplayName": f"Device certificate {policy.thing_name}",
            "PayloadCertificateFileName": f"{policy.thing_name}.p12",
            "PayloadContent": pkcs12,
            # Nobody can export the key from the keychain again.
            "KeyIsExtractable": False,
            # Which apps may use the key without asking: only with the administrator's explicit opt-in all of them.
            "AllowAllAppsAccess": allow_all_apps_access,
        }
        if pkcs12_password is not None:
            identity["Password"] = pkcs12_password
        payloads.append(identity)
    chrome: dict = {
        "PayloadType": MACOS_CHROME_DOMAIN,
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{base}.chrome",
        "PayloadUUID": _payload_uuid(f"{base}.chrome"),
        "PayloadDisplayName": "Google Chrome: device certificate selection",
        "AutoSelectCertificateForUrls": [_auto_select_string(policy)],
    }
    if policy.force_install_entry:
        chrome["ExtensionInstallForcelist"] = [policy.force_install_entry]
    extension = {
        "PayloadType": f"{MACOS_CHROME_DOMAIN}.extensions.{policy.extension_id}",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{base}.extension",
        "PayloadUUID": _payload_uuid(f"{base}.extension"),
        "PayloadDisplayName": "Device Trust extension configuration",
        **policy.extension_config,
    }
    payloads += [chrome, extension]
    if pkcs12 is not None:
        display_name = f"Device Trust ({policy.environment}): {policy.thing_name}"
        description = ("This Mac's device certificate and private key (encrypted) and the Chrome policies that "
                       "present it to AWS IoT and configure the Device Trust extension.")
    else:
        display_name = f"Device Trust ({policy.environment}): Chrome policies for {policy.thing_name}"
        description = ("The Chrome policies that present this Mac's device certificate (imported into its keychain "
                       "separately) to AWS IoT and configure the Device Trust extension.")
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": base,
        "PayloadUUID": _payload_uuid(base),
        "PayloadDisplayName": display_name,
        "PayloadDescription": description,
        "PayloadScope": "System",
        "PayloadContent": payloads,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=False)
