"""The README's first command: the whole story on the stand-in, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_demo_runs_the_whole_story_and_ends_with_the_revoked_certificate_refused():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run([sys.executable, "-m", "scripts.demo"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    steps = [line for line in out.splitlines() if line.startswith("==> ")]
    assert [s.split(" ", 2)[1] for s in steps] == [
        "Start", "Deploy", "Enroll", "Fetch", "Call", "Operator", "Lost", "The", "Stop"]
    assert '"RoleAliasName": "DeviceTrust-local-laptop"' in out
    assert "device.key mode 0o600" in out
    # verify: STS GetCallerIdentity answered with the device role, session named after the certificate.
    assert "role:         arn:aws:iam::123456789012:role/DeviceTrust-local-DeviceRole" in out
    certificate_id = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("certificate "))
    assert f"session name: {certificate_id}" in out
    assert "REVOKED" in out
    assert "refused the certificate (403" in out
    assert "(exit status 6, as expected)" in out
    assert out.rstrip().splitlines()[-2].startswith("Done:")
