"""The demo page's choice of STS endpoint (webapp/sts_endpoint.js, run in Node) and its Content-Security-Policy.

The page posts the signed GetCallerIdentity request, session token included, to the STS endpoint
named in its query string, so a link such as ``?sts=https://attacker.example`` must not make it
send them elsewhere: only AWS STS endpoints and loopback http (the local stand-in) are accepted,
and the page's connect-src names the same hosts. The real page in Chromium:
tests/test_browser_extension.py (refused setting, CSP) and tests/test_browser_e2e.py (the stand-in).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import botocore
import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE = (REPO / "webapp" / "sts_endpoint.js").as_uri()


def sts_settings(search: str):
    """stsSettings(search) in Node: its result, or {"thrown": {code, message}}."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: it comes with the CDK toolchain (make setup)")
    script = (f"import {{ stsSettings }} from {json.dumps(MODULE)};\n"
              f"let out; try {{ out = stsSettings({json.dumps(search)}); }} catch (e) {{ out = {{thrown: e}}; }}\n"
              "process.stdout.write(JSON.stringify(out));\n")
    result = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(("search", "expected"), [
    ("", {"region": "us-east-1", "sts": "https://sts.us-east-1.amazonaws.com/"}),
    ("?region=eu-west-1", {"region": "eu-west-1", "sts": "https://sts.eu-west-1.amazonaws.com/"}),
    ("?region=cn-north-1", {"region": "cn-north-1", "sts": "https://sts.cn-north-1.amazonaws.com.cn/"}),
    ("?region=us-gov-west-1", {"region": "us-gov-west-1", "sts": "https://sts.us-gov-west-1.amazonaws.com/"}),
    ("?sts=https://sts.amazonaws.com", {"region": "us-east-1", "sts": "https://sts.amazonaws.com/"}),
    ("?sts=https://STS.eu-central-1.amazonaws.com:443/", {"region": "eu-central-1",
                                                          "sts": "https://sts.eu-central-1.amazonaws.com/"}),
    ("?sts=https://sts.cn-northwest-1.amazonaws.com.cn&region=cn-northwest-1",
     {"region": "cn-northwest-1", "sts": "https://sts.cn-northwest-1.amazonaws.com.cn/"}),
    ("?sts=http://127.0.0.1:4566&region=us-east-1&auto=1", {"region": "us-east-1", "sts": "http://127.0.0.1:4566/"}),
    ("?sts=http://localhost:4566/", {"region": "us-east-1", "sts": "http://localhost:4566/"}),
], ids=["default", "region", "china", "govcloud", "global", "regional-normalised", "regional-china", "stand-in",
        "stand-in-localhost"])
def test_page_accepts_aws_sts_endpoints_and_loopback(search, expected):
    assert sts_settings(search) == expected


@pytest.mark.parametrize("search", [
    "?sts=https://attacker.example",
    "?sts=https://sts.amazonaws.com.attacker.example",
    "?sts=https://attacker.s3.amazonaws.com",  # on amazonaws.com, but not STS
    "?sts=https://sts.eu-west-1.amazonaws.com.cn",  # not China's suffix for a Region outside China
    "?sts=https://sts.cn-north-1.amazonaws.com",
    "?sts=https://sts.x.amazonaws.com",
    "?sts=https://sts.eu-west-1.amazonaws.com:8443",
    "?sts=http://sts.eu-west-1.amazonaws.com",  # plain http off loopback
    "?sts=https://sts.eu-west-1.amazonaws.com/somewhere",
    "?sts=https://sts.eu-west-1.amazonaws.com/?Action=x",
    "?sts=https://user@sts.eu-west-1.amazonaws.com",
    "?sts=http://localhost@attacker.example",
    "?sts=http://127.0.0.1.attacker.example:4566",
    "?sts=http://192.168.1.10:4566",
    "?sts=javascript:alert(1)",
    "?sts=not a url",
    "?sts=",
], ids=lambda search: search[5:] or "empty")
def test_page_refuses_every_other_sts_endpoint(search):
    thrown = sts_settings(search)["thrown"]
    assert thrown["code"] == "bad-setting"
    assert "is not allowed: use https://sts.amazonaws.com" in thrown["message"]


@pytest.mark.parametrize(("search", "message"), [
    ("?region=", "is not an AWS Region name"),
    ("?region=eu-west-1.attacker.example", "is not an AWS Region name"),
    ("?region=EU-WEST-1", "is not an AWS Region name"),
    ("?region=eu-west-1/x", "is not an AWS Region name"),
    ("?region=eu-west-1&sts=https://sts.us-east-1.amazonaws.com",
     "is the endpoint of us-east-1, but region is eu-west-1"),
    ("?region=eu-west-1&sts=https://sts.amazonaws.com", "signed for us-east-1, not eu-west-1"),
])
def test_page_refuses_a_malformed_region_or_one_that_does_not_fit_the_endpoint(search, message):
    thrown = sts_settings(search)["thrown"]
    assert thrown["code"] == "bad-setting" and message in thrown["message"]


class _MetaCsp(HTMLParser):
    def __init__(self):
        super().__init__()
        self.policies: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "meta" and (attributes.get("http-equiv") or "").lower() == "content-security-policy":
            self.policies.append(attributes["content"])


def page_csp() -> dict[str, list[str]]:
    parser = _MetaCsp()
    parser.feed((REPO / "webapp" / "index.html").read_text())
    [policy] = parser.policies
    directives = [part.split() for part in policy.split(";") if part.strip()]
    return {directive[0]: directive[1:] for directive in directives}


def aws_sts_endpoints() -> set[str]:
    """STS's endpoints in the partitions the page supports, from the endpoint data AWS ships in botocore."""
    endpoints = json.loads((Path(botocore.__file__).parent / "data" / "endpoints.json").read_text())
    origins = {"https://sts.amazonaws.com"}
    for partition in endpoints["partitions"]:
        if partition["partition"] not in ("aws", "aws-us-gov", "aws-cn"):
            continue
        for region in partition["services"]["sts"]["endpoints"]:
            if region in partition["regions"]:  # FIPS and global pseudo-regions are not Regions
                origins.add(f"https://sts.{region}.{partition['dnsSuffix']}")
    return origins


def test_page_csp_connects_only_to_itself_loopback_and_aws_sts():
    csp = page_csp()
    assert csp["default-src"] == ["'self'"] and csp["script-src"] == ["'self'"]
    sources = csp["connect-src"]
    assert len(sources) == len(set(sources))
    assert not any("*." in source for source in sources), "no wildcard host: *.amazonaws.com includes S3 buckets"
    expected = aws_sts_endpoints()
    assert {"https://sts.eu-west-1.amazonaws.com", "https://sts.us-gov-west-1.amazonaws.com",
            "https://sts.cn-north-1.amazonaws.com.cn"} <= expected  # the data is what we think
    assert set(sources) == {"'self'", "http://127.0.0.1:*", "http://localhost:*", *expected}


def test_every_sts_endpoint_in_the_csp_is_one_the_page_accepts():
    for source in page_csp()["connect-src"]:
        if source.startswith("https://"):
            region = re.match(r"https://sts\.(?:([a-z0-9-]+)\.)?amazonaws", source).group(1) or "us-east-1"
            assert sts_settings(f"?sts={source}") == {"region": region, "sts": f"{source}/"}, source
