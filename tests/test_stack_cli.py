"""`npx cdk synth` through the pinned CDK CLI: offline, no AWS credentials, every environment or one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.stack import REPO_ROOT

pytestmark = pytest.mark.slow


def _cdk_synth(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Run the pinned CLI with a bare environment: no AWS variables, an empty HOME (no ~/.aws)."""
    home = tmp_path / "home"
    home.mkdir()
    outdir = tmp_path / "cdk.out"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "CDK_DISABLE_VERSION_CHECK": "1",
    }
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", str(outdir), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    return result, outdir


def _stacks(outdir: Path) -> set[str]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {
        artifact.get("displayName", name)
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }


def test_cdk_synth_without_credentials_synthesizes_every_environment_and_the_pipeline(tmp_path):
    result, outdir = _cdk_synth(tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    assert _stacks(outdir) == {
        "DeviceTrust-local",
        "DeviceTrust-dev",
        "DeviceTrust-staging",
        "DeviceTrust-prod",
        "DeviceTrust-Pipeline",
    }
    assert not (REPO_ROOT / "cdk.context.json").exists(), "synthesis must not need context lookups"


def test_cdk_synth_with_env_prod_synthesizes_only_prod(tmp_path):
    result, outdir = _cdk_synth(tmp_path, "-c", "env=prod")

    assert result.returncode == 0, result.stderr[-3000:]
    assert _stacks(outdir) == {"DeviceTrust-prod"}
    template = json.loads((outdir / "DeviceTrust-prod.template.json").read_text())
    aliases = [r for r in template["Resources"].values() if r["Type"] == "AWS::IoT::RoleAlias"]
    assert [alias["Properties"]["RoleAlias"] for alias in aliases] == ["DeviceTrust-prod-laptop"]
