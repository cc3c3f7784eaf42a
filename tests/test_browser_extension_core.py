"""The extension's pure decisions (extension/credentials_core.js), run in Node.

Node is on every machine that runs this suite (the CDK CLI needs it). Each case is a
call into the real module; Python only feeds inputs and reads JSON back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from provisioner import browser_policy

REPO = Path(__file__).resolve().parents[1]
CORE = (REPO / "extension" / "credentials_core.js").as_uri()
EXTENSION_ID = browser_policy.EXTENSION_ID
CONFIG = {"credentialsEndpoint": "localhost:8443", "roleAlias": "alias", "thingName": "laptop-1",
          "allowedOrigins": ["https://app.example.com", "http://127.0.0.1:8000"]}


def call(function: str, *args):
    """core[function](...args) in Node; returns its JSON result, or {"thrown": message}."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: it comes with the CDK toolchain (make setup)")
    script = (f"import * as core from {json.dumps(CORE)};\n"
              f"let out; try {{ out = core[{json.dumps(function)}](...{json.dumps(list(args))}); }}"
              " catch (e) { out = {thrown: e.message}; }\n"
              "process.stdout.write(JSON.stringify(out === undefined ? null : out));\n")
    result = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def sender(origin: str, **overrides) -> dict:
    return {"id": EXTENSION_ID, "origin": origin, "frameId": 0, "tab": {"id": 1},
            "url": f"{origin}/page", **overrides}


def test_sender_on_an_allowed_origin_in_a_top_level_frame_is_answered():
    config = call("parseConfig", CONFIG)
    assert call("senderAllowed", sender("https://app.example.com"), config, EXTENSION_ID) is True
    assert call("senderAllowed", sender("http://127.0.0.1:8000"), config, EXTENSION_ID) is True


@pytest.mark.parametrize("who", [
    sender("https://evil.example.com"),
    sender("https://app.example.com.evil.example"),
    sender("http://app.example.com"),  # same host, other scheme
    sender("https://app.example.com:444"),  # same host, other port
    sender("http://127.0.0.1:8001"),
    sender("null"),  # sandboxed or opaque origin
    sender("https://app.example.com", frameId=3),  # allowed origin framed inside some other page
    sender("https://app.example.com", tab=None),  # not from a tab
    sender("https://app.example.com", id="abcdefghijklmnopabcdefghijklmnop"),  # another extension
    {"id": EXTENSION_ID, "frameId": 0, "tab": {"id": 1}, "url": "https://app.example.com/"},  # no origin
], ids=["other-host", "suffix-trick", "scheme", "port", "loopback-port", "opaque", "subframe", "no-tab",
        "other-extension", "no-origin"])
def test_sender_judged_by_its_reported_origin_is_refused_unless_exactly_allowed(who):
    config = call("parseConfig", CONFIG)
    assert call("senderAllowed", who, config, EXTENSION_ID) is False


def test_malformed_allowed_origins_allow_nothing_instead_of_widening_the_list():
    config = call("parseConfig", {**CONFIG, "allowedOrigins": [
        "*", "https://*.example.com", "http://app.example.com", "https://app.example.com/path", 42,
        "https://ok.example.com"]})
    assert config["allowedOrigins"] == ["https://ok.example.com"]


@pytest.mark.parametrize(("change", "message"), [
    ({"credentialsEndpoint": None}, "credentialsEndpoint"),
    ({"credentialsEndpoint": "https://localhost:8443"}, "credentialsEndpoint"),
    ({"credentialsEndpoint": "localhost:8443/../x"}, "credentialsEndpoint"),
    ({"roleAlias": "a/b"}, "roleAlias"),
    ({"thingName": "bad name"}, "thingName"),
])
def test_incomplete_or_unsafe_managed_configuration_is_rejected(change, message):
    assert message in call("parseConfig", {**CONFIG, **change})["thrown"]


def test_origins_browser_policy_writes_are_accepted_unchanged_by_the_extension():
    for given in ("https://App.Example.com:443/", "http://localhost:3000", "http://[::1]:8080",
                  "https://app.example.com:8443"):
        canonical = browser_policy.canonical_origin(given)
        assert call("canonicalOrigin", canonical) == canonical


def test_credentials_url_and_thing_header_follow_the_credentials_provider_protocol():
    config = call("parseConfig", CONFIG)
    assert call("credentialsUrl", config) == "https://localhost:8443/role-aliases/alias/credentials"
    assert call("requestHeaders", config) == {"x-amzn-iot-thingname": "laptop-1"}


def test_credentials_body_maps_to_what_pages_get():
    body = {"credentials": {"accessKeyId": "ASIA1", "secretAccessKey": "s", "sessionToken": "t",
                            "expiration": "2026-01-18T09:18:06Z"}}
    assert call("parseCredentialsBody", body) == {"accessKeyId": "ASIA1", "secretAccessKey": "s",
                                                  "sessionToken": "t", "expiration": "2026-01-18T09:18:06.000Z"}
    assert "unexpected body" in call("parseCredentialsBody", {"credentials": {"accessKeyId": "x"}})["thrown"]


def test_cached_credentials_are_refreshed_five_minutes_before_expiry():
    credentials = {"expiration": "2027-01-15T08:00:00.000Z"}
    at = lambda iso: call("stillFresh", credentials, _ms(iso))  # noqa: E731
    assert at("2027-01-15T07:54:59Z") is True
    assert at("2027-01-15T07:55:01Z") is False
    assert at("2027-01-15T09:00:00Z") is False


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_endpoint_refusals_become_error_objects_with_awss_message():
    assert call("refusalError", 403, '{"message":"Access Denied"}') == {
        "code": "credentials-refused", "message": "the credentials endpoint answered 403: Access Denied"}
    assert call("refusalError", 503, "<html>") == {
        "code": "endpoint-error", "message": "the credentials endpoint answered 503"}


SERVICE_WORKER = (REPO / "extension" / "service_worker.js").as_uri()


SHIPPED_MANIFEST = json.loads((REPO / "extension" / "manifest.json").read_text())
AWS_CONFIG = {**CONFIG, "credentialsEndpoint": "c2abcdefgh1234.credentials.iot.eu-south-2.amazonaws.com"}


def ask_service_worker(config: dict, who: dict, manifest: dict = SHIPPED_MANIFEST) -> dict:
    """Load the real service_worker.js in Node with a stand-in `chrome` (its manifest ``manifest``) and a
    recording `fetch`, send it one request from ``who`` and return {"answer": ..., "fetches": [{url, init}]}."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: it comes with the CDK toolchain (make setup)")
    body = {"credentials": {"accessKeyId": "ASIA1", "secretAccessKey": "s", "sessionToken": "t",
                            "expiration": "2099-01-01T00:00:00Z"}}
    script = f"""
const fetches = [];
let listener = null;
globalThis.chrome = {{
  runtime: {{ id: {json.dumps(EXTENSION_ID)}, getManifest: () => ({json.dumps(manifest)}),
             onMessage: {{ addListener: (f) => {{ listener = f; }} }} }},
  storage: {{ managed: {{ get: async () => ({json.dumps(config)}) }}, onChanged: {{ addListener: () => {{}} }} }},
}};
globalThis.fetch = async (url, init) => {{
  fetches.push({{ url: String(url), init }});
  return {{ ok: true, status: 200, text: async () => {json.dumps(json.dumps(body))} }};
}};
await import({json.dumps(SERVICE_WORKER)});
const answer = await new Promise((resolve) => {{
  const asynchronous = listener({{ type: "device-trust:get-credentials" }}, {json.dumps(who)}, resolve);
  if (!asynchronous) resolve("no answer");
}});
process.stdout.write(JSON.stringify({{ answer, fetches }}));
"""
    result = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_service_worker_asks_for_the_client_certificate_and_nothing_cached_or_redirected():
    # credentials "omit" would leave Chrome free to send no client certificate (Chromium presents one then
    # only because of crbug.com/775438): the mutual-TLS endpoint needs the certificate, so ask for it.
    out = ask_service_worker(AWS_CONFIG, sender("https://app.example.com"))
    assert out["answer"]["type"] == "device-trust:credentials", out
    [request] = out["fetches"]
    assert request["url"] == f"https://{AWS_CONFIG['credentialsEndpoint']}/role-aliases/alias/credentials"
    assert request["init"] == {"method": "GET", "headers": {"x-amzn-iot-thingname": "laptop-1"},
                               "credentials": "include", "cache": "no-store", "redirect": "error"}


def test_service_worker_does_not_fetch_for_a_sender_it_does_not_answer():
    out = ask_service_worker(AWS_CONFIG, sender("https://evil.example.com"))
    assert out == {"answer": None, "fetches": []}


def test_shipped_service_worker_refuses_an_endpoint_its_manifest_does_not_name_and_fetches_nothing():
    # Chrome would let the worker fetch from any https host (the content scripts match them all), so the
    # worker itself keeps to the manifest's host_permissions: the shipped extension never calls localhost.
    for endpoint in ("localhost:8443", "credentials.iot.us-east-1.amazonaws.com.evil.example", "evil.example"):
        out = ask_service_worker({**CONFIG, "credentialsEndpoint": endpoint}, sender("https://app.example.com"))
        assert out["fetches"] == [], endpoint
        assert out["answer"] == {"type": "device-trust:error", "error": {
            "code": "endpoint-not-permitted",
            "message": f"this extension may not fetch from {endpoint}: its manifest's host_permissions do not name it"}}


def test_stand_in_variant_service_worker_fetches_from_the_local_stand_in():
    manifest = browser_policy.stand_in_manifest(SHIPPED_MANIFEST)
    out = ask_service_worker(CONFIG, sender("https://app.example.com"), manifest=manifest)
    assert out["answer"]["type"] == "device-trust:credentials", out
    assert [f["url"] for f in out["fetches"]] == ["https://localhost:8443/role-aliases/alias/credentials"]


@pytest.mark.parametrize(("endpoint", "permitted"), [
    ("abc123.credentials.iot.us-east-1.amazonaws.com", True),
    ("ABC123.Credentials.IoT.us-east-1.amazonaws.com", True),  # host names are case-insensitive
    ("abc123.credentials.iot.us-east-1.amazonaws.com:443", True),  # no port in the pattern: any port
    ("abc123.credentials.iot.cn-north-1.amazonaws.com.cn", True),
    ("abc123.credentials.iot.us-gov-west-1.amazonaws.com", True),
    ("abc123.credentials.iot.us-east-1.amazonaws.com.evil.example", False),
    ("abc123.iot.us-east-1.amazonaws.com", False),  # the data endpoint, not the credentials provider
    ("evilcredentials.iot.us-east-1.amazonaws.com", False),  # "*." needs a dot before the suffix
    ("localhost:8443", False),
    ("127.0.0.1:8443", False),
    ("abc123.credentials.iot.xx-nowhere-9.amazonaws.com", False),
    ("abc/../x", False),
])
def test_endpoint_is_permitted_only_when_a_shipped_host_permission_names_it(endpoint, permitted):
    assert call("endpointPermitted", endpoint, SHIPPED_MANIFEST["host_permissions"]) is permitted


def test_host_permission_patterns_are_read_the_way_chrome_reads_them():
    assert call("endpointPermitted", "localhost:8443", ["https://localhost/*"]) is True  # any port
    assert call("endpointPermitted", "example.com", ["https://*.example.com/*"]) is True  # *. covers the host too
    assert call("endpointPermitted", "localhost:8443", ["http://localhost/*"]) is False  # we fetch https only
    assert call("endpointPermitted", "localhost:8443", ["https://localhost/other/*"]) is False
    assert call("endpointPermitted", "localhost:8443", ["<all_urls>", "*://*/*", 42, None]) is False
    assert call("endpointPermitted", "localhost:8443", None) is False
