"""browser-policy: Chrome policies rendered from a device profile, parsed back as each OS would.

The profile is made here with `cryptography` (no committed key); the command runs through
its real door, `python -m provisioner browser-policy`.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import plistlib
import re
import stat
import subprocess
import sys
from pathlib import Path

import botocore
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from provisioner import browser_policy
from provisioner.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
THING = "laptop-0042"
ENDPOINT = "localhost:8443"
ROLE_ALIAS = "DeviceTrust-local-role-alias"
P12_PASSWORD = "correct horse battery"
ENVIRONMENT = "local"


def _name(**attributes) -> x509.Name:
    oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
            "C": NameOID.COUNTRY_NAME}
    return x509.Name([x509.NameAttribute(oids[key], value) for key, value in attributes.items()])


def make_certificate(subject: x509.Name, issuer: x509.Name) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
                   .sign(issuer_key, hashes.SHA256()))
    return key, certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def device_profile(tmp_path) -> Path:
    """A device profile directory as `enroll` leaves it."""
    directory = tmp_path / "profile"
    directory.mkdir(mode=0o700)
    key, cert_pem = make_certificate(_name(CN=THING, O="DeviceTrust local"), _name(CN="Moto", O="Moto", OU="Server CA 1B"))
    (directory / "device.crt").write_bytes(cert_pem)
    key_path = directory / "device.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    (directory / "device.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        THING.encode(), key, x509.load_pem_x509_certificate(cert_pem), None,
        serialization.BestAvailableEncryption(P12_PASSWORD.encode())))
    (directory / "device.json").write_text(json.dumps({
        "thingName": THING, "certificateId": "c" * 64,
        "certificateArn": f"arn:aws:iot:us-east-1:123456789012:cert/{'c' * 64}",
        "credentialsEndpoint": ENDPOINT, "roleAlias": ROLE_ALIAS, "region": "us-east-1",
        "stackName": "DeviceTrust-local", "environment": ENVIRONMENT, "notAfter": "2030-01-01T00:00:00Z",
    }))
    return directory


def browser_policy_cli(*args: str, password: str | None = P12_PASSWORD) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "DEVICE_TRUST_PKCS12_PASSWORD"}
    if password is not None:
        env["DEVICE_TRUST_PKCS12_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "provisioner", "browser-policy", *args], cwd=REPO, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def parse_reg(data: bytes) -> dict[str, dict[str, str] | None]:
    """A small .reg reader: key path -> {value name: string}, None for a [-deleted] key, in file order.

    Only what regedit needs for these files: REG_SZ values with \\ and \" escapes.
    """
    assert data.startswith(b"\xff\xfe"), "regedit files are UTF-16 LE with a BOM"
    text = data[2:].decode("utf-16-le")
    lines = text.split("\r\n")
    assert lines[0] == "Windows Registry Editor Version 5.00"
    keys: dict[str, dict[str, str] | None] = {}
    current = None
    value_line = re.compile(r'^"((?:[^"\\]|\\.)*)"="((?:[^"\\]|\\.)*)"$')
    for line in lines[1:]:
        if not line:
            continue
        if line.startswith("[-") and line.endswith("]"):
            keys[line[2:-1]] = None
            current = None
        elif line.startswith("[") and line.endswith("]"):
            if keys.get(line[1:-1]) is None:  # new, or re-created after a [-deletion]
                keys[line[1:-1]] = {}
            current = keys[line[1:-1]]
        else:
            match = value_line.match(line)
            assert match and current is not None, f"not a REG_SZ value line: {line!r}"
            unescape = lambda s: re.sub(r"\\(.)", r"\1", s)  # noqa: E731
            current[unescape(match.group(1))] = unescape(match.group(2))
    return keys


EXPECTED_FILTER = {"ISSUER": {"CN": "Moto", "O": "Moto", "OU": "Server CA 1B"},
                   "SUBJECT": {"CN": THING, "O": "DeviceTrust local"}}
EXPECTED_EXTENSION_CONFIG = {"credentialsEndpoint": ENDPOINT, "roleAlias": ROLE_ALIAS, "thingName": THING,
                             "allowedOrigins": ["https://app.example.com", "http://127.0.0.1:8000"]}
ORIGIN_ARGS = ("--allowed-origin", "https://App.Example.com:443/", "--allowed-origin", "http://127.0.0.1:8000")


def test_linux_policy_selects_exactly_the_device_certificate_for_the_credentials_endpoint(device_profile, tmp_path):
    out = tmp_path / "out"
    result = browser_policy_cli("--os", "linux", "--profile-dir", str(device_profile), "--output-dir", str(out),
                                *ORIGIN_ARGS)
    assert result.returncode == 0, result.stderr
    path = out / "device-trust-local.json"
    assert f"wrote {path}" in result.stdout and "/etc/opt/chrome/policies/managed/" in result.stdout
    policies = json.loads(path.read_bytes())
    entries = policies["AutoSelectCertificateForUrls"]
    assert all(isinstance(entry, str) for entry in entries), "Chrome wants each entry as a JSON string"
    assert [json.loads(entry) for entry in entries] == [{"pattern": "https://localhost:8443", "filter": EXPECTED_FILTER}]
    assert policies["3rdparty"] == {"extensions": {browser_policy.EXTENSION_ID: EXPECTED_EXTENSION_CONFIG}}
    assert "ExtensionInstallForcelist" not in policies
    assert "ExtensionInstallForcelist" in result.stderr  # the guidance for the admin
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_windows_reg_file_holds_the_same_policies_under_hklm_chrome(device_profile, tmp_path):
    out = tmp_path / "out"
    result = browser_policy_cli("--os", "windows", "--profile-dir", str(device_profile), "--output-dir", str(out),
                                "--extension-update-url", "https://clients2.google.com/service/update2/crx",
                                *ORIGIN_ARGS)
    assert result.returncode == 0, result.stderr
    keys = parse_reg((out / "device-trust-local.reg").read_bytes())
    root = r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Google\Chrome"
    extension_key = rf"{root}\3rdparty\extensions\{browser_policy.EXTENSION_ID}\policy"
    assert json.loads(keys[rf"{root}\AutoSelectCertificateForUrls"]["1"]) == {
        "pattern": "https://localhost:8443", "filter": EXPECTED_FILTER}
    assert keys[rf"{root}\ExtensionInstallForcelist"] == {
        "1": f"{browser_policy.EXTENSION_ID};https://clients2.google.com/service/update2/crx"}
    assert keys[extension_key] == {"credentialsEndpoint": ENDPOINT, "roleAlias": ROLE_ALIAS, "thingName": THING}
    assert keys[rf"{extension_key}\allowedOrigins"] == {"1": "https://app.example.com", "2": "http://127.0.0.1:8000"}
    # The old origin list is deleted before the new one is written, so a removed origin does not linger.
    text = (out / "device-trust-local.reg").read_bytes()[2:].decode("utf-16-le")
    assert text.index(rf"[-{extension_key}\allowedOrigins]") < text.index(rf"[{extension_key}\allowedOrigins]")


def macos_payloads(path: Path) -> tuple[dict, dict]:
    profile = plistlib.loads(path.read_bytes())
    return profile, {payload["PayloadType"]: payload for payload in profile["PayloadContent"]}


def test_macos_profile_carries_the_identity_without_its_password_and_both_chrome_payloads(device_profile, tmp_path):
    # DEVICE_TRUST_PKCS12_PASSWORD is set (browser_policy_cli sets it): the profile still leaves it out,
    # so macOS asks for it when the profile is installed, and the command needs no terminal.
    out = tmp_path / "out"
    result = browser_policy_cli("--os", "macos", "--profile-dir", str(device_profile), "--output-dir", str(out),
                                *ORIGIN_ARGS)
    assert result.returncode == 0, result.stderr
    path = out / "device-trust-local.mobileconfig"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the profile holds the (encrypted) private key"
    assert P12_PASSWORD.encode() not in path.read_bytes()
    assert "install on that Mac itself" in result.stdout
    profile, payloads = macos_payloads(path)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    assert list(payloads) == ["com.apple.security.pkcs12", "com.google.Chrome",
                              f"com.google.Chrome.extensions.{browser_policy.EXTENSION_ID}"]
    identity = payloads["com.apple.security.pkcs12"]
    assert "Password" not in identity
    assert identity["PayloadContent"] == (device_profile / "device.p12").read_bytes()
    # Apple's defaults are AllowAllAppsAccess false, KeyIsExtractable true: both written out, the key not exportable.
    assert identity["AllowAllAppsAccess"] is False
    assert identity["KeyIsExtractable"] is False
    key, certificate, _ = pkcs12.load_key_and_certificates(identity["PayloadContent"], P12_PASSWORD.encode())
    assert certificate.subject.rfc4514_string() == f"O=DeviceTrust local,CN={THING}"
    chrome = payloads["com.google.Chrome"]
    assert [json.loads(entry) for entry in chrome["AutoSelectCertificateForUrls"]] == [
        {"pattern": "https://localhost:8443", "filter": EXPECTED_FILTER}]
    extension = payloads[f"com.google.Chrome.extensions.{browser_policy.EXTENSION_ID}"]
    assert {key: extension[key] for key in EXPECTED_EXTENSION_CONFIG} == EXPECTED_EXTENSION_CONFIG
    uuids = [profile["PayloadUUID"], *(payload["PayloadUUID"] for payload in profile["PayloadContent"])]
    assert len(set(uuids)) == len(uuids)
    # Rendering again gives the same identifiers, so installing it again replaces the profile instead of adding one.
    again = browser_policy_cli("--os", "macos", "--profile-dir", str(device_profile), "--output-dir", str(out),
                               *ORIGIN_ARGS, password=None)
    assert again.returncode == 0, again.stderr
    assert plistlib.loads(path.read_bytes())["PayloadUUID"] == profile["PayloadUUID"]


def test_macos_profile_holds_the_password_only_with_include_pkcs12_password(device_profile, tmp_path):
    out = tmp_path / "out"
    result = browser_policy_cli("--os", "macos", "--include-pkcs12-password", "--profile-dir", str(device_profile),
                                "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    assert "holds the private key AND its password" in result.stdout
    path = out / "device-trust-local.mobileconfig"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    _, payloads = macos_payloads(path)
    identity = payloads["com.apple.security.pkcs12"]
    assert identity["Password"] == P12_PASSWORD
    assert identity["AllowAllAppsAccess"] is False and identity["KeyIsExtractable"] is False
    key, _, _ = pkcs12.load_key_and_certificates(identity["PayloadContent"], identity["Password"].encode())
    assert key is not None


def test_macos_profile_lets_all_apps_use_the_key_only_with_the_opt_in(device_profile, tmp_path):
    out = tmp_path / "out"
    result = browser_policy_cli("--os", "macos", "--allow-all-apps-key-access", "--profile-dir", str(device_profile),
                                "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    _, payloads = macos_payloads(out / "device-trust-local.mobileconfig")
    identity = payloads["com.apple.security.pkcs12"]
    assert identity["AllowAllAppsAccess"] is True
    assert identity["KeyIsExtractable"] is False and "Password" not in identity


def test_old_omit_pkcs12_password_option_is_still_accepted_and_is_the_default(device_profile, tmp_path):
    out = tmp_path / "out"
    result = browser_policy_cli("--os", "macos", "--omit-pkcs12-password", "--profile-dir", str(device_profile),
                                "--output-dir", str(out), password=None)
    assert result.returncode == 0, result.stderr
    _, payloads = macos_payloads(out / "device-trust-local.mobileconfig")
    assert "Password" not in payloads["com.apple.security.pkcs12"]
    clash = browser_policy_cli("--os", "macos", "--omit-pkcs12-password", "--include-pkcs12-password",
                               "--profile-dir", str(device_profile), "--output-dir", str(tmp_path / "clash"))
    assert clash.returncode == 2 and clash.stderr.count("\n") == 1 and "not allowed with" in clash.stderr


def test_macos_without_identity_writes_only_the_chrome_policies_and_needs_no_device_p12(device_profile, tmp_path):
    (device_profile / "device.p12").unlink()  # the identity was imported on the Mac itself: the file is not read
    out = tmp_path / "out"
    result = browser_policy_cli("--os", "macos", "--macos-without-identity", "--profile-dir", str(device_profile),
                                "--output-dir", str(out), *ORIGIN_ARGS, password=None)
    assert result.returncode == 0, result.stderr
    assert "Chrome policies only" in result.stdout and "security import" in result.stdout
    path = out / "device-trust-local.mobileconfig"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644, "no key in it"
    profile, payloads = macos_payloads(path)
    assert list(payloads) == ["com.google.Chrome", f"com.google.Chrome.extensions.{browser_policy.EXTENSION_ID}"]
    assert [json.loads(entry) for entry in payloads["com.google.Chrome"]["AutoSelectCertificateForUrls"]] == [
        {"pattern": "https://localhost:8443", "filter": EXPECTED_FILTER}]
    extension = payloads[f"com.google.Chrome.extensions.{browser_policy.EXTENSION_ID}"]
    assert {key: extension[key] for key in EXPECTED_EXTENSION_CONFIG} == EXPECTED_EXTENSION_CONFIG
    # Its own identifier: installing it neither replaces nor is replaced by a profile with the identity.
    assert profile["PayloadIdentifier"] == f"com.example.device-trust.{ENVIRONMENT}.{THING}.chrome-policies"
    assert not any(isinstance(value, bytes) for payload in profile["PayloadContent"] for value in payload.values())


@pytest.mark.parametrize(("args", "message"), [
    (("--os", "macos", "--macos-without-identity", "--include-pkcs12-password"),
     "--macos-without-identity writes no PKCS#12 payload: drop --include-pkcs12-password"),
    (("--os", "macos", "--macos-without-identity", "--allow-all-apps-key-access"),
     "--macos-without-identity writes no PKCS#12 payload: drop --allow-all-apps-key-access"),
    (("--os", "linux", "--include-pkcs12-password"), "--include-pkcs12-password: only for the macOS profile"),
    (("--os", "windows", "--macos-without-identity"), "--macos-without-identity: only for the macOS profile"),
], ids=["without-identity-and-password", "without-identity-and-all-apps", "password-on-linux", "macos-on-windows"])
def test_macos_options_that_cannot_apply_are_refused_in_one_line(device_profile, tmp_path, args, message):
    out = tmp_path / "out"
    result = browser_policy_cli(*args, "--profile-dir", str(device_profile), "--output-dir", str(out))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_all_writes_one_file_per_operating_system_and_json_lists_them(device_profile, tmp_path):
    out = tmp_path / "out"
    result = browser_policy_cli("--all", "--json", "--profile-dir", str(device_profile), "--output-dir", str(out),
                                *ORIGIN_ARGS)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["extensionId"] == browser_policy.EXTENSION_ID
    assert sorted((entry["os"], Path(entry["path"]).name) for entry in listing["files"]) == [
        ("linux", "device-trust-local.json"), ("macos", "device-trust-local.mobileconfig"),
        ("windows", "device-trust-local.reg")]
    assert all(Path(entry["path"]).is_file() for entry in listing["files"])


def test_default_output_is_the_profile_browser_directory(device_profile):
    result = browser_policy_cli("--os", "linux", "--profile-dir", str(device_profile), *ORIGIN_ARGS)
    assert result.returncode == 0, result.stderr
    assert (device_profile / "browser" / "device-trust-local.json").is_file()


@pytest.mark.parametrize("origin", [
    "http://app.example.com",  # plain http off loopback
    "https://app.example.com/path",
    "https://app.example.com/?q=1",
    "https://user@app.example.com",
    "ftp://app.example.com",
    "app.example.com",
    "https://app.example.com:99999",
    "https://*.example.com",  # no wildcards: each origin is listed
    "https://app_example.com",
])
def test_browser_policy_rejects_an_allowed_origin_that_is_not_one_safe_origin(device_profile, tmp_path, origin):
    out = tmp_path / "out"
    result = browser_policy_cli("--os", "linux", "--profile-dir", str(device_profile), "--output-dir", str(out),
                                "--allowed-origin", origin)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("device-trust: invalid --allowed-origin")
    assert "Traceback" not in result.stderr
    assert not out.exists(), "nothing is written when the input is wrong"


def test_wrong_pkcs12_password_is_a_usage_error_and_writes_nothing(device_profile, tmp_path):
    out = tmp_path / "out"
    result = browser_policy_cli("--all", "--include-pkcs12-password", "--profile-dir", str(device_profile),
                                "--output-dir", str(out), *ORIGIN_ARGS, password="not the password")
    assert result.returncode == 2
    assert "DEVICE_TRUST_PKCS12_PASSWORD" in result.stderr and result.stderr.count("\n") == 1
    assert not out.exists()


def test_include_pkcs12_password_without_password_or_terminal_says_how_to_give_it(device_profile, tmp_path):
    result = browser_policy_cli("--os", "macos", "--include-pkcs12-password", "--profile-dir", str(device_profile),
                                "--output-dir", str(tmp_path / "out"), password=None)
    assert result.returncode == 2
    assert "set DEVICE_TRUST_PKCS12_PASSWORD" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_missing_profile_is_a_local_file_error(tmp_path):
    result = browser_policy_cli("--os", "linux", "--profile-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 5
    assert result.stderr.startswith("device-trust: no device profile") and "Traceback" not in result.stderr


def test_os_or_all_is_required():
    result = browser_policy_cli()
    assert result.returncode == 2 and "--os" in result.stderr


@pytest.mark.parametrize(("given", "canonical"), [
    ("https://App.Example.com", "https://app.example.com"),
    ("https://app.example.com:443/", "https://app.example.com"),
    ("https://app.example.com:8443", "https://app.example.com:8443"),
    ("http://localhost:3000", "http://localhost:3000"),
    ("http://127.0.0.1:80", "http://127.0.0.1"),
    ("http://[::1]:8080", "http://[::1]:8080"),
])
def test_allowed_origins_are_written_the_way_chrome_reports_origins(given, canonical):
    assert browser_policy.canonical_origin(given) == canonical


def test_issuer_without_cn_is_matched_by_o_and_ou_like_the_aws_iot_ca():
    # AWS IoT's own CA: OU=Amazon Web Services O=Amazon.com Inc. L=Seattle ST=Washington C=US (no CN).
    _, cert_pem = make_certificate(_name(CN=THING), _name(C="US", O="Amazon.com Inc.", OU="Amazon Web Services"))
    assert browser_policy.certificate_filter(cert_pem) == {
        "ISSUER": {"O": "Amazon.com Inc.", "OU": "Amazon Web Services"}, "SUBJECT": {"CN": THING}}


def test_certificate_without_subject_cn_cannot_be_auto_selected():
    _, cert_pem = make_certificate(_name(O="Example"), _name(CN="CA"))
    with pytest.raises(UsageError, match="no subject CN"):
        browser_policy.certificate_filter(cert_pem)


def test_auto_select_pattern_keeps_the_endpoint_port_and_filter_values_are_escaped_in_reg():
    _, cert_pem = make_certificate(_name(CN=THING, O='Quote " and \\ backslash'), _name(CN="CA"))
    policy = browser_policy.build_policy(credentials_endpoint="abc.credentials.iot.eu-west-1.amazonaws.com",
                                         certificate_pem=cert_pem, role_alias="alias", thing_name=THING,
                                         allowed_origins=[], environment="prod")
    keys = parse_reg(browser_policy.render_windows(policy))
    entry = json.loads(keys[r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Google\Chrome\AutoSelectCertificateForUrls"]["1"])
    assert entry["pattern"] == "https://abc.credentials.iot.eu-west-1.amazonaws.com"
    assert entry["filter"]["SUBJECT"]["O"] == 'Quote " and \\ backslash'


def test_extension_id_constant_is_the_one_chrome_derives_from_the_manifest_key():
    manifest = json.loads((REPO / "extension" / "manifest.json").read_text())
    digest = hashlib.sha256(base64.b64decode(manifest["key"])).hexdigest()[:32]
    assert "".join(chr(ord("a") + int(c, 16)) for c in digest) == browser_policy.EXTENSION_ID


def test_extension_manifest_asks_only_for_storage_and_the_credentials_endpoints():
    manifest = json.loads((REPO / "extension" / "manifest.json").read_text())
    assert manifest["manifest_version"] == 3
    assert manifest["permissions"] == ["storage"]
    assert manifest["storage"]["managed_schema"] == "schema.json"
    assert "https://localhost/*" not in manifest["host_permissions"], "the stand-in's endpoint is for its variant only"
    assert "externally_connectable" not in manifest and "web_accessible_resources" not in manifest
    schema = json.loads((REPO / "extension" / "schema.json").read_text())
    assert set(schema["properties"]) == {"credentialsEndpoint", "roleAlias", "thingName", "allowedOrigins"}
    # The policy's managed configuration has exactly the schema's settings.
    assert set(EXPECTED_EXTENSION_CONFIG) == set(schema["properties"])


def test_extension_runs_no_remote_code_and_writes_no_storage():
    scripts = {path.name: path.read_text() for path in (REPO / "extension").glob("*.js")}
    for name, source in scripts.items():
        assert "eval(" not in source and "new Function" not in source, name
        assert "importScripts" not in source, name
        assert not re.search(r"""import\s[^;]*from\s+["']https?:""", source), name
        assert "chrome.storage.local" not in source and "chrome.storage.sync" not in source, name
        assert "chrome.storage.session" not in source and "localStorage" not in source, name
        assert "console." not in source, f"{name} must not log (credentials must never reach a log)"


def test_vendored_sigv4_library_is_the_recorded_npm_file():
    vendor = REPO / "webapp" / "vendor"
    recorded = re.search(r"file SHA-256 `([0-9a-f]{64})`", (vendor / "README.md").read_text()).group(1)
    assert hashlib.sha256((vendor / "aws4fetch.esm.mjs").read_bytes()).hexdigest() == recorded
    assert "MIT" in (vendor / "aws4fetch.LICENSE").read_text() or "Permission is hereby granted" in (
        vendor / "aws4fetch.LICENSE").read_text()


def aws_iot_credentials_endpoint_patterns() -> set[str]:
    """One host permission per Region where AWS IoT Core runs, from the endpoint data AWS ships in botocore.

    The credentials provider's endpoint is ``<prefix>.credentials.iot.<region>.<partition DNS suffix>``
    (DescribeEndpoint iot:CredentialProvider): amazonaws.com for the commercial Regions and GovCloud,
    amazonaws.com.cn for China. FIPS pseudo-regions are not Regions.
    """
    endpoints = json.loads((Path(botocore.__file__).parent / "data" / "endpoints.json").read_text())
    patterns = set()
    for partition in endpoints["partitions"]:
        if partition["partition"] not in ("aws", "aws-us-gov", "aws-cn"):
            continue
        for region in partition["services"]["iot"]["endpoints"]:
            if region in partition["regions"]:
                patterns.add(f"https://*.credentials.iot.{region}.{partition['dnsSuffix']}/*")
    return patterns


def test_shipped_extension_reaches_the_credentials_provider_in_every_aws_iot_region_and_nothing_else():
    manifest = json.loads((REPO / "extension" / "manifest.json").read_text())
    expected = aws_iot_credentials_endpoint_patterns()
    assert {"https://*.credentials.iot.il-central-1.amazonaws.com/*",
            "https://*.credentials.iot.us-gov-west-1.amazonaws.com/*",
            "https://*.credentials.iot.cn-north-1.amazonaws.com.cn/*"} <= expected  # the data is what we think
    assert len(manifest["host_permissions"]) == len(set(manifest["host_permissions"]))
    assert set(manifest["host_permissions"]) == expected


def test_stand_in_manifest_adds_only_localhost_and_leaves_the_shipped_one_alone():
    manifest = json.loads((REPO / "extension" / "manifest.json").read_text())
    before = json.loads(json.dumps(manifest))
    variant = browser_policy.stand_in_manifest(manifest)
    assert manifest == before, "the input is not modified"
    assert variant["host_permissions"] == [*manifest["host_permissions"], "https://localhost/*"]
    assert {k: v for k, v in variant.items() if k != "host_permissions"} == {
        k: v for k, v in manifest.items() if k != "host_permissions"}
    assert browser_policy.stand_in_manifest(variant) == variant  # building from a variant adds nothing twice
    with pytest.raises(ValueError):
        browser_policy.stand_in_manifest({"manifest_version": 3})


def test_stand_in_extension_command_copies_the_extension_and_adds_only_the_localhost_permission(tmp_path):
    out = tmp_path / "stand-in" / "extension"
    result = browser_policy_cli("--stand-in-extension", str(out), password=None)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout and "--load-extension" in result.stdout
    shipped = REPO / "extension"
    shipped_files = sorted(p.name for p in shipped.iterdir() if p.is_file())
    assert sorted(p.name for p in out.iterdir()) == shipped_files
    for name in shipped_files:
        if name != "manifest.json":
            assert (out / name).read_bytes() == (shipped / name).read_bytes(), name
    manifest = json.loads((shipped / "manifest.json").read_text())
    variant = json.loads((out / "manifest.json").read_text())
    assert variant == {**manifest, "host_permissions": [*manifest["host_permissions"], "https://localhost/*"]}
    # Same key, so the same extension id, so the same managed configuration reaches the stand-in variant.
    digest = hashlib.sha256(base64.b64decode(variant["key"])).hexdigest()[:32]
    assert "".join(chr(ord("a") + int(c, 16)) for c in digest) == browser_policy.EXTENSION_ID

    # Building again replaces the earlier build (a file left in it does not survive); --json says where.
    (out / "stale.js").write_text("left over")
    again = browser_policy_cli("--stand-in-extension", str(out), "--json", password=None)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"extensionId": browser_policy.EXTENSION_ID, "extensionDir": str(out),
                                        "addedHostPermission": "https://localhost/*"}
    assert sorted(p.name for p in out.iterdir()) == shipped_files
    assert sorted(p.name for p in out.parent.iterdir()) == ["extension"], "no staging directory left behind"


@pytest.mark.parametrize(("where", "extra", "message"), [
    ("not-empty", (), "is not empty and holds no extension"),
    ("a-file", (), "is not a directory"),
    ("new", ("--allowed-origin", "https://app.example.com"), "writes no policies: drop --allowed-origin"),
    ("new", ("--output-dir", "elsewhere"), "writes no policies: drop --output-dir"),  # DIR is where it goes
], ids=["unrelated-directory", "file", "policy-option", "output-dir"])
def test_stand_in_extension_refuses_to_overwrite_other_things_or_take_policy_options(tmp_path, where, extra, message):
    target = tmp_path / where
    if where == "not-empty":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    elif where == "a-file":
        target.write_text("mine")
    result = browser_policy_cli("--stand-in-extension", str(target), *extra, password=None)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    if where == "not-empty":
        assert [p.name for p in target.iterdir()] == ["notes.txt"]
    elif where == "a-file":
        assert target.read_text() == "mine"
    else:
        assert not target.exists()
