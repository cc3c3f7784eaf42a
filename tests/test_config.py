"""cdk.json's deviceTrust context: parsed into typed config, bad values stopped with one clear line."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from stacks.config import AppConfig, EnvironmentConfig, PipelineConfig, parse_config
from stacks.errors import ConfigError
from tests.fixtures.stack import REPO_ROOT, cdk_json_context


@pytest.fixture()
def raw() -> dict:
    return cdk_json_context()["deviceTrust"]


def _with(raw: dict, path: str, value) -> dict:
    """Copy of ``raw`` with the dotted ``path`` set to ``value`` (or deleted when value is ...)."""
    changed = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node = changed
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return changed


def test_shipped_cdk_json_parses_into_typed_frozen_config(raw):
    config = parse_config(raw)

    assert isinstance(config, AppConfig)
    assert [env.name for env in config.environments] == ["local", "dev", "staging", "prod"]
    assert all(isinstance(env, EnvironmentConfig) for env in config.environments)
    prod = config.environment("prod")
    assert prod.requires_approval is True
    assert prod.account == "333333333333"
    assert prod.stack_name == "DeviceTrust-prod"
    assert prod.role_policy_statements == ()
    assert prod.confused_deputy_condition is False
    assert config.environment("dev").account == "111111111111"
    assert config.environment("staging").account == "222222222222"
    local = config.environment("local")
    assert (local.account, local.region, local.bootstrapless) == ("123456789012", "us-east-1", True)
    assert isinstance(config.pipeline, PipelineConfig)
    assert config.pipeline.stage_order == ("dev", "staging", "prod")
    assert config.pipeline.account == "444444444444"
    with pytest.raises(AttributeError):
        prod.credential_duration_seconds = 1  # type: ignore[misc]


def test_optional_environment_keys_take_documented_defaults(raw):
    minimal = {"account": "111111111111", "region": "eu-west-1", "credentialDurationSeconds": 900, "requiresApproval": False}
    config = parse_config({"environments": {"dev": minimal}})

    env = config.environment("dev")
    assert env.max_session_duration_seconds == 3600
    assert env.role_policy_statements == ()
    assert env.role_managed_policy_arns == ()
    assert env.confused_deputy_condition is False
    assert env.bootstrapless is False
    assert config.pipeline is None


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("environments.dev.credentialDurationSeconds", 60, "credentialDurationSeconds: 60 is outside the range AWS allows (900..43200"),
        ("environments.dev.credentialDurationSeconds", 50000, "50000 is outside the range AWS allows (900..43200"),
        ("environments.dev.credentialDurationSeconds", "3600", "must be a whole number of seconds"),
        ("environments.dev.credentialDurationSeconds", True, "must be a whole number of seconds"),
        ("environments.dev.credentialDurationSeconds", 7200, "7200 exceeds maxSessionDurationSeconds (3600)"),
        ("environments.dev.maxSessionDurationSeconds", 1800, "maxSessionDurationSeconds: 1800 is outside the range AWS allows (3600..43200"),
        ("environments.dev.account", 111111111111, "account must be a 12-digit AWS account id in quotes"),
        ("environments.dev.account", "1234", "account must be a 12-digit AWS account id"),
        ("environments.dev.region", "us-east", "region must be an AWS region"),
        ("environments.dev.requiresApproval", "yes", "requiresApproval must be true or false"),
        ("environments.dev.requiresApproval", ..., "requiresApproval must be true or false, got nothing"),
        ("environments.dev.confusedDeputyCondition", 1, "confusedDeputyCondition must be true or false"),
        ("environments.dev.credentialsDuration", 900, "unknown key 'credentialsDuration'"),
        ("environments.dev.roleManagedPolicyArns", ["ReadOnlyAccess"], "roleManagedPolicyArns must be a list of IAM managed policy ARNs"),
        ("environments.dev.rolePolicyStatements", {"Effect": "Allow"}, "rolePolicyStatements must be a list of IAM policy statements"),
        ("environments.dev.rolePolicyStatements", [{"Effect": "Permit", "Action": "s3:GetObject", "Resource": "*"}], "rolePolicyStatements[0].Effect must be 'Allow' or 'Deny'"),
        ("environments.dev.rolePolicyStatements", [{"Effect": "Allow", "Resource": "*"}], "rolePolicyStatements[0] needs exactly one of Action or NotAction"),
        ("environments.dev.rolePolicyStatements", [{"Effect": "Allow", "Action": [], "Resource": "*"}], "rolePolicyStatements[0].Action must be a string or a non-empty list"),
        ("environments.dev.rolePolicyStatements", [{"Effect": "Allow", "Action": "s3:GetObject", "Resources": "*"}], "rolePolicyStatements[0]: unknown key 'Resources'"),
        ("pipeline.stageOrder", ["dev", "qa"], "stageOrder names 'qa', which is not in deviceTrust.environments"),
        ("pipeline.stageOrder", ["dev", "dev"], "stageOrder lists an environment twice"),
        ("pipeline.stageOrder", ["local", "prod"], "names 'local', a bootstrapless environment"),
        ("pipeline.stageOrder", [], "stageOrder must be a non-empty list"),
        ("pipeline.connectionArn", "arn:aws:iam::444444444444:role/x", "is not a CodeStar/CodeConnections connection ARN"),
        ("pipeline.repository", "device-trust", "repository: 'device-trust' must be 'owner/name'"),
        ("pipeline.branch", "", "branch must be a non-empty string"),
        ("environments", {}, "environments is empty"),
    ],
)
def test_bad_value_is_rejected_with_one_line_naming_the_key(raw, path, value, expected):
    with pytest.raises(ConfigError) as raised:
        parse_config(_with(raw, path, value))

    message = str(raised.value)
    assert expected in message
    assert "\n" not in message
    assert message.startswith("deviceTrust")


def test_environment_name_that_would_overflow_resource_names_is_rejected(raw):
    raw["environments"]["a-very-long-environment"] = raw["environments"].pop("dev")
    raw["pipeline"]["stageOrder"] = ["staging", "prod"]

    with pytest.raises(ConfigError, match="environment name 'a-very-long-environment' must be 1-17 lowercase"):
        parse_config(raw)


def test_missing_context_key_says_what_to_add():
    with pytest.raises(ConfigError, match="cdk.json has no context key 'deviceTrust'"):
        parse_config(None)


def test_unknown_environment_lists_the_known_ones(raw):
    with pytest.raises(ConfigError, match="unknown environment 'qa': cdk.json deviceTrust.environments defines local, dev, staging, prod"):
        parse_config(raw).environment("qa")


def _run_app(context: dict, tmp_path) -> subprocess.CompletedProcess:
    """Run app.py the way the CDK CLI does: context in CDK_CONTEXT_JSON, output in CDK_OUTDIR."""
    env = dict(os.environ, CDK_CONTEXT_JSON=json.dumps(context), CDK_OUTDIR=str(tmp_path / "cdk.out"))
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    return subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_app_stops_synthesis_with_one_line_for_a_bad_credential_duration(tmp_path):
    context = cdk_json_context()
    context["deviceTrust"]["environments"]["prod"]["credentialDurationSeconds"] = 60
    context["env"] = "prod"

    result = _run_app(context, tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        "device-trust: deviceTrust.environments.prod.credentialDurationSeconds: 60 is outside the range AWS allows"
        " (900..43200 seconds)"
    ) in result.stderr
    assert not list((tmp_path / "cdk.out").glob("*.template.json"))


def test_cdk_cli_refuses_an_unknown_environment_name_in_one_line(tmp_path):
    env = dict(os.environ, JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1")
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "-c", "env=qa", "--output", str(tmp_path / "cdk.out")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )

    assert result.returncode != 0
    assert "device-trust: unknown environment 'qa': cdk.json deviceTrust.environments defines local, dev, staging, prod" in result.stderr
    assert "Traceback" not in result.stderr
