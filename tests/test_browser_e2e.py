"""The browser half end to end, in a real headless Chromium against the local stand-in.

A laptop is enrolled with `python -m provisioner enroll`; its PKCS#12 and the endpoint CA
go into an NSS database under a test HOME; the Linux policy file `browser-policy` wrote
is installed as is in /etc/chromium/policies/managed; the extension's stand-in variant
(`browser-policy --stand-in-extension`) is loaded unpacked.
Then the demo page, served on an allowed origin, gets credentials from the extension
(Chromium presents the certificate by policy, with no dialog) and calls STS
GetCallerIdentity with them; the same page on another origin gets no answer at all; and
after `provisioner revoke` the allowed page gets the extension's error object.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.browser import (
    Chromium,
    installed_chromium_policy,
    make_nss_db,
    require_chromium_tools,
    stand_in_extension,
    static_site,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
WEBAPP_DIR = REPO / "webapp"
P12_PASSWORD = "browser-test-password"
ACCOUNT_ID = "123456789012"


def provisioner_cli(emulator, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(emulator.env)
    env["DEVICE_TRUST_PKCS12_PASSWORD"] = P12_PASSWORD
    result = subprocess.run([sys.executable, "-m", "provisioner", *args], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"provisioner {args[0]} failed: {result.stderr}"
    return result


@dataclass
class Laptop:
    thing_name: str
    profile_dir: Path
    home: Path
    policy_file: Path
    extension_dir: Path
    web_port: int
    sts_url: str

    def page_url(self, host: str) -> str:
        return f"http://{host}:{self.web_port}/index.html?sts={self.sts_url}&region=us-east-1"


@pytest.fixture
def web_port():
    with static_site(WEBAPP_DIR) as port:
        yield port


@pytest.fixture
def laptop(emulator, deployed_stack, web_port, tmp_path) -> Laptop:
    """An enrolled laptop: profile, NSS database and the Linux policy browser-policy wrote for it."""
    require_chromium_tools()
    thing_name = f"browser-{uuid.uuid4().hex[:10]}"
    profile_dir = tmp_path / "profile"
    provisioner_cli(emulator, "enroll", "--thing-name", thing_name, "--profile-dir", str(profile_dir),
                    "--endpoint-ca", str(emulator.ca_file))
    policy_dir = tmp_path / "policies"
    provisioner_cli(emulator, "browser-policy", "--os", "linux", "--profile-dir", str(profile_dir),
                    "--output-dir", str(policy_dir), "--allowed-origin", f"http://127.0.0.1:{web_port}")
    home = tmp_path / "home"
    make_nss_db(home, pkcs12_path=profile_dir / "device.p12", pkcs12_password=P12_PASSWORD,
                ca_path=profile_dir / "endpoint-ca.pem")
    # The stand-in's credentials endpoint is https://localhost:<port>, which only the stand-in variant may reach.
    extension_dir = stand_in_extension(tmp_path / "extension-stand-in")
    return Laptop(thing_name, profile_dir, home, policy_dir / "device-trust-local.json", extension_dir, web_port,
                  emulator.endpoint_url)


def run_demo(browser: Chromium, url: str, timeout_ms: int) -> dict:
    page = browser.open_page(url)
    page.wait_for("document.readyState === 'complete' && !!window.deviceTrustDemo")
    started = time.monotonic()
    result = page.evaluate(f"window.deviceTrustDemo.run({{timeoutMs: {timeout_ms}}})",
                           timeout=timeout_ms / 1000 + 30)
    result["seconds"] = time.monotonic() - started
    result["shown"] = page.evaluate(
        "({status: document.getElementById('status').textContent, arn: document.getElementById('arn').textContent})")
    return result


def start_browser(laptop: Laptop, tmp_path: Path, name: str) -> Chromium:
    browser = Chromium(home=laptop.home, user_data_dir=tmp_path / f"chromium-{name}",
                       extension_dir=laptop.extension_dir, log_path=tmp_path / f"chromium-{name}.log")
    # The extension's service worker must be running before a page asks.
    browser.wait_for_target(lambda t: t["type"] == "service_worker" and "/service_worker.js" in t["url"])
    return browser


def test_allowed_page_gets_credentials_without_a_dialog_and_other_origins_get_nothing(laptop, tmp_path):
    with installed_chromium_policy(laptop.policy_file):
        browser = start_browser(laptop, tmp_path, "allowed")
        try:
            allowed = run_demo(browser, laptop.page_url("127.0.0.1"), timeout_ms=20000)
            other = run_demo(browser, laptop.page_url("localhost"), timeout_ms=6000)
        finally:
            browser.close()
    assert allowed["ok"], allowed
    # Credentials for the device role, used from the page: STS knows who signed the call.
    assert allowed["arn"].startswith(f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/"), allowed
    assert allowed["account"] == ACCOUNT_ID
    assert allowed["shown"]["arn"] == allowed["arn"]
    assert allowed["seconds"] < 20, "no certificate dialog held the request up"
    # Same page, another origin (localhost is not 127.0.0.1): no answer at all, not even an error.
    assert other["ok"] is False and other["error"]["code"] == "no-answer", other
    assert other["shown"]["arn"] == "-"


def test_after_revoke_the_allowed_page_gets_the_extension_error(laptop, emulator, tmp_path):
    with installed_chromium_policy(laptop.policy_file):
        browser = start_browser(laptop, tmp_path, "before")
        try:
            before = run_demo(browser, laptop.page_url("127.0.0.1"), timeout_ms=20000)
        finally:
            browser.close()
        assert before["ok"], before

        provisioner_cli(emulator, "revoke", "--thing-name", laptop.thing_name)

        # A new browser session: the extension keeps credentials it already fetched in memory until
        # shortly before they expire (they stay valid at STS anyway); a new fetch must be refused.
        browser = start_browser(laptop, tmp_path, "after")
        try:
            after = run_demo(browser, laptop.page_url("127.0.0.1"), timeout_ms=20000)
        finally:
            browser.close()
    assert after["ok"] is False, after
    assert after["error"]["code"] == "credentials-refused", after
    assert "403" in after["error"]["message"]
    assert after["shown"]["status"].startswith("credentials-refused:")
    assert after["shown"]["arn"] == "-"
