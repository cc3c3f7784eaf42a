"""The real CDK CLI deploys DeviceTrust-local into the stand-in and destroys it again
(the same door `make demo` and a user go through)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.fixtures.emulator import REPO_ROOT, start_emulator

CONTRACT_OUTPUTS = {
    "RoleAliasName", "RoleAliasArn", "DeviceRoleArn", "DevicePolicyName",
    "ProvisioningTemplateName", "ThingGroupName", "ThingTypeName", "ProvisionerPolicyArn",
}


def cdk(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    npx = shutil.which("npx")
    assert npx, "npx (Node.js) is required for the CDK CLI"
    return subprocess.run(
        [npx, "cdk", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=540, check=False
    )


@pytest.mark.slow
def test_cdk_cli_deploys_and_destroys_the_local_stack(tmp_path):
    with start_emulator(tmp_path / "state") as emulator:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(emulator.env, JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1", CI="true")
        assembly = tmp_path / "cdk.out"

        deployed = cdk(
            ["deploy", "DeviceTrust-local", "-c", "env=local", "--require-approval", "never",
             "--output", str(assembly), "--progress", "events"],
            env,
        )
        assert deployed.returncode == 0, deployed.stderr[-4000:] + emulator.log_text()[-3000:]

        cloudformation = emulator.client("cloudformation")
        stack = cloudformation.describe_stacks(StackName="DeviceTrust-local")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        assert CONTRACT_OUTPUTS <= set(outputs)
        assert all(value and "Ref" not in value and "Fn::" not in value for value in outputs.values())
        iot = emulator.client("iot")
        assert iot.describe_provisioning_template(templateName=outputs["ProvisioningTemplateName"])["templateBody"]
        assert iot.describe_thing_group(thingGroupName=outputs["ThingGroupName"])
        # The CLI printed the outputs it read back, as after a real deployment.
        assert f"DeviceTrust-local.RoleAliasArn = {outputs['RoleAliasArn']}" in deployed.stdout + deployed.stderr

        again = cdk(
            ["deploy", "DeviceTrust-local", "--app", str(assembly), "--require-approval", "never"], env
        )
        assert again.returncode == 0, again.stderr[-4000:]

        destroyed = cdk(["destroy", "DeviceTrust-local", "--app", str(assembly), "--force"], env)
        assert destroyed.returncode == 0, destroyed.stderr[-4000:] + emulator.log_text()[-3000:]
        assert all(s["StackName"] != "DeviceTrust-local" for s in cloudformation.list_stacks(
            StackStatusFilter=["CREATE_COMPLETE", "UPDATE_COMPLETE"])["StackSummaries"])
        with pytest.raises(Exception):
            iot.describe_provisioning_template(templateName=outputs["ProvisioningTemplateName"])
