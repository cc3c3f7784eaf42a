"""Environment configuration: the ``deviceTrust`` context in ``cdk.json``, parsed and checked.

A pure core: :func:`parse_config` takes the raw context value (dicts and lists as
JSON gives them) and returns frozen, typed dataclasses, or raises
:class:`~stacks.errors.ConfigError` with one line naming the key, the bad value and
what is allowed. Nothing downstream reads the raw dicts by string keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from stacks.errors import ConfigError

CONTEXT_KEY = "deviceTrust"

# Bounds AWS enforces (IoT CreateRoleAlias, IAM CreateRole).
CREDENTIAL_DURATION_RANGE = (900, 43200)
MAX_SESSION_DURATION_RANGE = (3600, 43200)
DEFAULT_MAX_SESSION_DURATION = 3600

# The environment name ends up in every physical name; the longest is the
# provisioning template "DeviceTrust-<env>-laptop", and IoT caps template names at 36.
_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,16}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_CONNECTION_ARN = re.compile(r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[\w-]+$")
_REPOSITORY = re.compile(r"^[\w.-]+/[\w.-]+$")
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"})

_ENVIRONMENT_KEYS = frozenset(
    {
        "account",
        "region",
        "credentialDurationSeconds",
        "maxSessionDurationSeconds",
        "requiresApproval",
        "rolePolicyStatements",
        "roleManagedPolicyArns",
        "confusedDeputyCondition",
        "bootstrapless",
    }
)
_PIPELINE_KEYS = frozenset({"connectionArn", "repository", "branch", "account", "region", "stageOrder"})


@dataclass(frozen=True)
class EnvironmentConfig:
    """One deployment target: an account and region with its own device-trust stack."""

    name: str
    account: str
    region: str
    credential_duration_seconds: int
    requires_approval: bool
    max_session_duration_seconds: int = DEFAULT_MAX_SESSION_DURATION
    # IAM statements (JSON policy grammar) granted to the device role; default none:
    # the credentials then prove identity and nothing more.
    role_policy_statements: tuple[Mapping[str, Any], ...] = ()
    role_managed_policy_arns: tuple[str, ...] = ()
    # Opt-in aws:SourceAccount / aws:SourceArn condition on the device role's trust policy.
    confused_deputy_condition: bool = False
    # Synthesize with the template inline and no bootstrap resources (the local stand-in).
    bootstrapless: bool = False

    @property
    def stack_name(self) -> str:
        return f"DeviceTrust-{self.name}"


@dataclass(frozen=True)
class PipelineConfig:
    """The promotion pipeline: where it lives, what it watches, and the environments it deploys in order."""

    connection_arn: str
    repository: str
    branch: str
    account: str
    region: str
    stage_order: tuple[str, ...]

    stack_name = "DeviceTrust-Pipeline"


@dataclass(frozen=True)
class AppConfig:
    """Every environment (in cdk.json order) and the optional pipeline."""

    environments: tuple[EnvironmentConfig, ...]
    pipeline: PipelineConfig | None = None

    def environment(self, name: str) -> EnvironmentConfig:
        for environment in self.environments:
            if environment.name == name:
                return environment
        known = ", ".join(env.name for env in self.environments)
        raise ConfigError(f"unknown environment {name!r}: cdk.json {CONTEXT_KEY}.environments defines {known}")


def parse_config(raw: Any) -> AppConfig:
    """Turn the raw ``deviceTrust`` context value into an :class:`AppConfig`, or raise ConfigError."""
    where = CONTEXT_KEY
    if raw is None:
        raise ConfigError(f"cdk.json has no context key {CONTEXT_KEY!r}: add {CONTEXT_KEY}.environments")
    _require_mapping(raw, where)
    _reject_unknown_keys(raw, frozenset({"environments", "pipeline"}), where)
    raw_environments = raw.get("environments")
    _require_mapping(raw_environments, f"{where}.environments")
    if not raw_environments:
        raise ConfigError(f"{where}.environments is empty: define at least one environment")
    environments = tuple(
        parse_environment(name, value, f"{where}.environments.{name}") for name, value in raw_environments.items()
    )
    pipeline = None
    if raw.get("pipeline") is not None:
        pipeline = parse_pipeline(raw["pipeline"], f"{where}.pipeline")
        known = {env.name: env for env in environments}
        for stage in pipeline.stage_order:
            if stage not in known:
                raise ConfigError(
                    f"{where}.pipeline.stageOrder names {stage!r}, which is not in {where}.environments"
                    f" ({', '.join(known)})"
                )
            if known[stage].bootstrapless:
                raise ConfigError(
                    f"{where}.pipeline.stageOrder names {stage!r}, a bootstrapless environment"
                    " (the local stand-in): the pipeline deploys only to real accounts"
                )
    return AppConfig(environments=environments, pipeline=pipeline)


def parse_environment(name: str, raw: Any, where: str) -> EnvironmentConfig:
    """Check one ``environments.<name>`` entry."""
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise ConfigError(
            f"{where}: environment name {name!r} must be 1-17 lowercase letters, digits or '-',"
            " starting with a letter (it becomes part of every resource name)"
        )
    _require_mapping(raw, where)
    _reject_unknown_keys(raw, _ENVIRONMENT_KEYS, where)
    account = _account(raw, "account", where)
    region = _region(raw, "region", where)
    credential_duration = _int_in_range(raw, "credentialDurationSeconds", where, CREDENTIAL_DURATION_RANGE)
    max_session = _int_in_range(
        raw, "maxSessionDurationSeconds", where, MAX_SESSION_DURATION_RANGE, default=DEFAULT_MAX_SESSION_DURATION
    )
    if credential_duration > max_session:
        raise ConfigError(
            f"{where}.credentialDurationSeconds: {credential_duration} exceeds maxSessionDurationSeconds"
            f" ({max_session}); the credentials provider would refuse every request: lower it or raise"
            " maxSessionDurationSeconds"
        )
    return EnvironmentConfig(
        name=name,
        account=account,
        region=region,
        credential_duration_seconds=credential_duration,
        max_session_duration_seconds=max_session,
        requires_approval=_bool(raw, "requiresApproval", where),
        role_policy_statements=_statements(raw.get("rolePolicyStatements", []), f"{where}.rolePolicyStatements"),
        role_managed_policy_arns=_managed_policy_arns(
            raw.get("roleManagedPolicyArns", []), f"{where}.roleManagedPolicyArns"
        ),
        confused_deputy_condition=_bool(raw, "confusedDeputyCondition", where, default=False),
        bootstrapless=_bool(raw, "bootstrapless", where, default=False),
    )


def parse_pipeline(raw: Any, where: str) -> PipelineConfig:
    """Check the ``pipeline`` section."""
    _require_mapping(raw, where)
    _reject_unknown_keys(raw, _PIPELINE_KEYS, where)
    connection_arn = _string(raw, "connectionArn", where)
    if not _CONNECTION_ARN.match(connection_arn):
        raise ConfigError(
            f"{where}.connectionArn: {connection_arn!r} is not a CodeStar/CodeConnections connection ARN"
            " (arn:aws:codeconnections:<region>:<account>:connection/<id>)"
        )
    repository = _string(raw, "repository", where)
    if not _REPOSITORY.match(repository):
        raise ConfigError(f"{where}.repository: {repository!r} must be 'owner/name'")
    stage_order = raw.get("stageOrder")
    if (
        not isinstance(stage_order, list)
        or not stage_order
        or not all(isinstance(stage, str) and stage for stage in stage_order)
    ):
        raise ConfigError(f"{where}.stageOrder must be a non-empty list of environment names, got {stage_order!r}")
    if len(set(stage_order)) != len(stage_order):
        raise ConfigError(f"{where}.stageOrder lists an environment twice: {stage_order!r}")
    return PipelineConfig(
        connection_arn=connection_arn,
        repository=repository,
        branch=_string(raw, "branch", where),
        account=_account(raw, "account", where),
        region=_region(raw, "region", where),
        stage_order=tuple(stage_order),
    )


def _require_mapping(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a JSON object, got {_shown(value)}")


def _reject_unknown_keys(raw: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _string(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key} must be a non-empty string, got {_shown(value)}")
    return value


def _account(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not _ACCOUNT.match(value):
        raise ConfigError(f"{where}.{key} must be a 12-digit AWS account id in quotes, got {_shown(value)}")
    return value


def _region(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not _REGION.match(value):
        raise ConfigError(f"{where}.{key} must be an AWS region such as 'us-east-1', got {_shown(value)}")
    return value


def _bool(raw: Mapping[str, Any], key: str, where: str, *, default: bool | None = None) -> bool:
    if key not in raw and default is not None:
        return default
    value = raw.get(key)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key} must be true or false, got {_shown(value)}")
    return value


def _int_in_range(
    raw: Mapping[str, Any], key: str, where: str, bounds: tuple[int, int], *, default: int | None = None
) -> int:
    if key not in raw and default is not None:
        return default
    value = raw.get(key)
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}.{key} must be a whole number of seconds ({low}..{high}), got {_shown(value)}")
    if not low <= value <= high:
        raise ConfigError(f"{where}.{key}: {value} is outside the range AWS allows ({low}..{high} seconds)")
    return value


def _statements(value: Any, where: str) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of IAM policy statements, got {_shown(value)}")
    statements = []
    for index, statement in enumerate(value):
        here = f"{where}[{index}]"
        _require_mapping(statement, here)
        _reject_unknown_keys(statement, _STATEMENT_KEYS, here)
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise ConfigError(f"{here}.Effect must be 'Allow' or 'Deny', got {_shown(statement.get('Effect'))}")
        if ("Action" in statement) == ("NotAction" in statement):
            raise ConfigError(f"{here} needs exactly one of Action or NotAction")
        if ("Resource" in statement) == ("NotResource" in statement):
            raise ConfigError(f"{here} needs exactly one of Resource or NotResource")
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in statement and not _is_string_or_strings(statement[key]):
                raise ConfigError(f"{here}.{key} must be a string or a non-empty list of strings")
        if "Condition" in statement and not isinstance(statement["Condition"], Mapping):
            raise ConfigError(f"{here}.Condition must be a JSON object")
        statements.append(MappingProxyType(dict(statement)))
    return tuple(statements)


def _managed_policy_arns(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(arn, str) and arn.startswith("arn:") for arn in value):
        raise ConfigError(f"{where} must be a list of IAM managed policy ARNs ('arn:...'), got {_shown(value)}")
    return tuple(value)


def _is_string_or_strings(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(isinstance(item, str) and item for item in value)


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
