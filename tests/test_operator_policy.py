"""The stack's ProvisionerPolicy against what the provisioner really calls.

Every operator verb (and ``enroll``/``rotate``, which laptops with AWS rights run) is run
through ``python -m provisioner`` against the stand-in; the stand-in logs one line per
API request naming the operation (``api iot.RegisterThing -> 200 (12 ms)``). Each
operation ``Op`` of service ``svc`` needs the IAM action ``svc:Op`` (true for every
operation the provisioner calls: see the Service Authorization Reference for AWS IoT
and CloudFormation). The test checks both directions against the synthesized
``AWS::IAM::ManagedPolicy``:

* every action a verb used is granted by the policy;
* every granted action is used by some verb, or is in :data:`NEEDED_BY_REGISTER_THING`
  with the reason it is there.

It also checks that docs/provisioner.md's "AWS permissions" section lists exactly the
granted actions. The laptop verbs ``csr`` and ``install`` must make no AWS request at all.
"""
from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

from tests.test_provisioner_e2e import FaultProxy, cli_env, new_thing_name, ok, one_line_failure, run_cli

REPO = Path(__file__).resolve().parents[1]
API_LINE = re.compile(r"\bapi (?P<service>[a-z0-9-]+)\.(?P<operation>[A-Za-z0-9]+) -> (?P<status>\d{3}|\?)")

# Granted although no verb calls it directly: RegisterThing (AWS IoT single-thing provisioning)
# creates the template's resources with the caller's permissions. The actions below are the
# ones the stack's template needs AWS IoT to perform for it; AWS lists the same ones in its
# AWSIoTThingsRegistration managed policy for template-based registration.
NEEDED_BY_REGISTER_THING = {
    "iot:CreateThing": "the template's AWS::IoT::Thing resource creates the laptop's thing",
    "iot:UpdateThing": "OverrideSettings MERGE/REPLACE update an existing thing's attributes and type "
                       "(enroll --force on a registered thing)",
    "iot:AddThingToThingGroup": "the thing resource's ThingGroups puts it in the environment's group",
    "iot:DescribeThingGroup": "RegisterThing checks that the ThingGroups named in the template exist",
    "iot:DescribeThingType": "RegisterThing checks that the ThingTypeName named in the template exists",
    "iot:GetPolicy": "the template's AWS::IoT::Policy resource names the existing device policy; "
                     "RegisterThing reads it before attaching it",
    "iot:AttachPrincipalPolicy": "the older name of AttachPolicy, which RegisterThing's policy attachment "
                                 "is authorized against (AWSIoTThingsRegistration grants both)",
}


# ---------------------------------------------------------------- the policy

def provisioner_policy_actions(template: dict) -> set[str]:
    """Actions the stack's provisioner ManagedPolicy allows (exactly one such policy)."""
    policies = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::ManagedPolicy"
                and str(r["Properties"].get("ManagedPolicyName", "")).endswith("-provisioner")]
    assert len(policies) == 1, [r["Properties"].get("ManagedPolicyName") for r in policies]
    actions: set[str] = set()
    for statement in policies[0]["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement, statement
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def granted(action: str, actions: set[str]) -> bool:
    """IAM action matching: case-insensitive, '*' and '?' wildcards."""
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in actions)


# ---------------------------------------------------------------- what the verbs call

class OperationLog:
    """The stand-in's log from a moment on: which API operations were requested since."""

    def __init__(self, emulator):
        self.emulator = emulator
        self.offset = len(emulator.log_text())

    def actions(self) -> set[str]:
        lines = [line for line in self.emulator.log_text()[self.offset:].splitlines() if " api " in f" {line}"]
        unnamed = [line for line in lines if not API_LINE.search(line)]
        assert not unnamed, f"the stand-in logged requests without an operation name: {unnamed}"
        return {f"{m['service']}:{m['operation']}" for m in map(API_LINE.search, lines)}


@pytest.fixture(scope="module")
def used_by_verb(deployed_stack, tmp_path_factory) -> dict[str, set[str]]:
    """verb (and case) -> IAM actions of the API requests it made, every verb run through the command line."""
    emulator = deployed_stack.emulator
    home = tmp_path_factory.mktemp("operator-home")
    env = cli_env(emulator, home)
    laptop_env = {k: v for k, v in env.items() if not k.startswith("AWS_")}  # csr/install: no AWS rights at all
    work = tmp_path_factory.mktemp("operator-policy")
    used: dict[str, set[str]] = {}

    def run(case: str, *args: str, environment=None, expect: int = 0) -> None:
        log = OperationLog(emulator)
        result = run_cli(environment or env, *args)
        if expect == 0:
            ok(result)
        else:
            one_line_failure(result, expect)
        used[case] = log.actions()

    thing, profile = new_thing_name(), work / "laptop"
    run("enroll", "enroll", "--thing-name", thing, "--profile-dir", str(profile), "--owner", "ada@example.com")
    run("enroll (healthy, nothing to do)", "enroll", "--thing-name", thing, "--profile-dir", str(profile))
    run("enroll --force", "enroll", "--thing-name", thing, "--profile-dir", str(profile), "--force")
    run("rotate", "rotate", "--profile-dir", str(profile))
    run("status", "status")
    run("status --thing-name", "status", "--thing-name", thing)
    run("revoke --keep-thing", "revoke", "--thing-name", thing, "--keep-thing")
    run("revoke", "revoke", "--thing-name", thing)

    split, operator = new_thing_name(), work / "operator"
    operator.mkdir()
    laptop = work / "split-laptop"
    run("csr", "csr", "--thing-name", split, "--profile-dir", str(laptop), environment=laptop_env)
    run("register", "register", "--csr", str(laptop / "pending.csr"), "--output-dir", str(operator))
    run("install", "install", "--profile-dir", str(laptop), "--certificate", str(operator / f"{split}.crt"),
        "--registration", str(operator / f"{split}.json"), "--endpoint-ca", str(emulator.ca_file),
        environment=laptop_env)
    run("revoke (split flow)", "revoke", "--thing-name", split)

    # A rollback after RegisterThing: the certificate is undone and the new thing deleted.
    # DescribeCertificate (right after RegisterThing) is refused once by a proxy, as AWS would
    # refuse it to an operator without the right; everything else reaches the stand-in.
    proxy = FaultProxy(emulator.endpoint_url)
    try:
        proxy.refuse(lambda method, path, query: method == "GET" and path.startswith("/certificates/"), 403,
                     "AccessDeniedException", times=1)
        run("enroll rolled back", "enroll", "--thing-name", new_thing_name(), "--profile-dir",
            str(work / "rolled-back"), environment=cli_env(emulator, home, AWS_ENDPOINT_URL=proxy.url), expect=3)
        assert proxy.refused, "the injected refusal was never reached"
    finally:
        proxy.close()
    return used


# ---------------------------------------------------------------- the checks

def test_every_operation_a_verb_calls_is_granted_by_the_provisioner_policy(used_by_verb, local_template):
    actions = provisioner_policy_actions(local_template.template)
    missing = {case: sorted(a for a in used if not granted(a, actions)) for case, used in used_by_verb.items()}
    assert {case: m for case, m in missing.items() if m} == {}


def test_every_granted_action_is_used_or_needed_by_register_thing(used_by_verb, local_template):
    actions = provisioner_policy_actions(local_template.template)
    used = set().union(*used_by_verb.values())
    assert not any("*" in a or "?" in a for a in actions), "the policy grants exact actions, no wildcards"
    assert actions - used == set(NEEDED_BY_REGISTER_THING), (
        f"granted but unused and unexplained: {sorted(actions - used - set(NEEDED_BY_REGISTER_THING))}; "
        f"explained but no longer granted or now used: {sorted(set(NEEDED_BY_REGISTER_THING) - (actions - used))}")


def test_the_verbs_really_ran_what_the_policy_is_checked_against(used_by_verb):
    """Guard against a log that stopped naming operations: each verb's key calls are seen."""
    assert {"cloudformation:DescribeStacks", "iot:DescribeEndpoint", "iot:DescribeProvisioningTemplate",
            "iot:CreateCertificateFromCsr", "iot:RegisterThing"} <= used_by_verb["enroll"]
    assert {"iot:AttachPolicy", "iot:AttachThingPrincipal", "iot:UpdateCertificate",
            "iot:DetachThingPrincipal", "iot:DetachPolicy"} <= used_by_verb["rotate"]
    assert {"iot:DeleteCertificate", "iot:DeleteThing"} <= used_by_verb["enroll rolled back"]
    assert "iot:ListThingsInThingGroup" in used_by_verb["status"]
    assert "iot:DeleteThing" in used_by_verb["revoke"]


def test_laptop_verbs_csr_and_install_make_no_aws_request(used_by_verb):
    assert used_by_verb["csr"] == set()
    assert used_by_verb["install"] == set()


def test_docs_list_exactly_the_granted_actions(local_template):
    text = (REPO / "docs" / "provisioner.md").read_text()
    section = text.split("## AWS permissions", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`((?:iot|cloudformation):[A-Za-z]+)`", section))
    assert documented == provisioner_policy_actions(local_template.template)
