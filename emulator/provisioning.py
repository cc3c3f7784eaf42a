"""AWS IoT provisioning-template language, as RegisterThing evaluates it.

Pure: `render_template(body, parameters)` turns a template body and its
parameters into a `ProvisioningPlan` or raises TemplateError. Nothing in the
registry changes here; the caller checks the plan against the registry and
only then applies it, so an invalid request creates nothing.

Supported (AWS IoT developer guide, "Provisioning templates"): Parameters
(Type, Default), Mappings, Ref, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap,
Fn::Sub (a string or [string, {variables}]; ${Name}, ${!Literal}); resources
AWS::IoT::Thing (ThingName, ThingTypeName, AttributePayload, ThingGroups,
OverrideSettings DO_NOTHING/REPLACE/MERGE/FAIL), AWS::IoT::Certificate
(CertificateId, Status defaulting to ACTIVE) and AWS::IoT::Policy (PolicyName,
or PolicyDocument whose name defaults to a hash of the document).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import TemplateError

THING = "AWS::IoT::Thing"
CERTIFICATE = "AWS::IoT::Certificate"
POLICY = "AWS::IoT::Policy"
# MERGE is valid only for AttributePayload and ThingGroups; FAIL for all three.
OVERRIDE_CHOICES = {
    "AttributePayload": {"MERGE", "REPLACE", "DO_NOTHING", "FAIL"},
    "ThingTypeName": {"REPLACE", "DO_NOTHING", "FAIL"},
    "ThingGroups": {"MERGE", "REPLACE", "DO_NOTHING", "FAIL"},
}
CERT_STATUSES = {"ACTIVE", "INACTIVE"}
# "Status: Optional. String that can be ACTIVE or INACTIVE. Defaults to ACTIVE."
DEFAULT_CERT_STATUS = "ACTIVE"
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class ThingPlan:
    logical_id: str
    thing_name: str
    thing_type_name: str | None
    attributes: dict[str, str]
    thing_groups: tuple[str, ...]
    override: dict[str, str]
    # The properties the template sets (AttributePayload, ThingTypeName, ThingGroups).
    given: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CertificatePlan:
    logical_id: str
    certificate_id: str
    status: str


@dataclass(frozen=True)
class PolicyPlan:
    logical_id: str
    policy_name: str
    # None: attach the existing policy `policy_name`; otherwise create it (if new) from this document.
    policy_document: str | None


def inline_policy_name(document: str) -> str:
    """The name RegisterThing gives a policy declared by document alone.

    AWS's guide says only "Defaults to a hash of the policy document"; the
    stand-in uses the lowercase hex SHA-256 of the document text (64 characters,
    within IoT's 128-character policy-name limit), so the same document always
    maps to the same policy.
    """
    return hashlib.sha256(document.encode()).hexdigest()


@dataclass(frozen=True)
class ProvisioningPlan:
    thing: ThingPlan | None = None
    certificate: CertificatePlan | None = None
    policies: tuple[PolicyPlan, ...] = field(default_factory=tuple)


def parse_template_body(body: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(body, dict):
        template = body
    else:
        try:
            template = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise TemplateError("The template body is not valid JSON") from exc
    if not isinstance(template, dict):
        raise TemplateError("The template body must be a JSON object")
    resources = template.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError("The template has no Resources")
    params = template.get("Parameters", {})
    if not isinstance(params, dict):
        raise TemplateError("Parameters must be a JSON object")
    for name, spec in params.items():
        if not isinstance(spec, dict) or spec.get("Type") not in ("String", "Number", "List", "CommaDelimitedList"):
            raise TemplateError(f"Parameter {name} has no valid Type")
    mappings = template.get("Mappings", {})
    if not isinstance(mappings, dict) or not all(
        isinstance(top, dict) and all(isinstance(second, dict) for second in top.values()) for top in mappings.values()
    ):
        raise TemplateError("Mappings must map names to two levels of keys")
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") not in (THING, CERTIFICATE, POLICY):
            kind = resource.get("Type") if isinstance(resource, dict) else None
            raise TemplateError(f"Resource {logical_id} has an unsupported type: {kind}")
    return template


def _resolve_parameters(declared: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given and given[name] is not None:
            value: Any = given[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise TemplateError(f"Parameter {name} is missing and has no default")
        if spec["Type"] == "Number":
            try:
                float(value)
            except (TypeError, ValueError) as exc:
                raise TemplateError(f"Parameter {name} must be a number") from exc
        if spec["Type"] in ("List", "CommaDelimitedList") and isinstance(value, str):
            value = [item.strip() for item in value.split(",")]
        values[name] = value
    return values


@dataclass(frozen=True)
class _Scope:
    values: dict[str, Any]
    mappings: dict[str, Any]


def _string_of(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TemplateError(f"{what} must be a string")
    return str(value)


def _fn_join(arg: Any, scope: _Scope) -> str:
    if not isinstance(arg, list) or len(arg) != 2 or not isinstance(arg[0], str):
        raise TemplateError("Fn::Join takes [delimiter, [values]]")
    parts = _evaluate(arg[1], scope)
    if not isinstance(parts, list):
        raise TemplateError("Fn::Join takes [delimiter, [values]]")
    return arg[0].join(_string_of(part, "Fn::Join values") for part in parts)


def _fn_select(arg: Any, scope: _Scope) -> Any:
    if not isinstance(arg, list) or len(arg) != 2:
        raise TemplateError("Fn::Select takes [index, [values]]")
    index = _evaluate(arg[0], scope)
    items = _evaluate(arg[1], scope)
    if not isinstance(items, list):
        raise TemplateError("Fn::Select takes [index, [values]]")
    if isinstance(index, bool) or not isinstance(index, (int, str)) or not re.fullmatch(r"\d+", str(index)):
        raise TemplateError(f"Fn::Select index {index!r} is not a non-negative integer")
    position = int(index)
    if not 0 <= position < len(items):
        raise TemplateError(f"Fn::Select index {position} is out of range for a list of {len(items)}")
    if items[position] is None:
        raise TemplateError(f"Fn::Select picked a null value at index {position}")
    return items[position]


def _fn_split(arg: Any, scope: _Scope) -> list[str]:
    if not isinstance(arg, list) or len(arg) != 2 or not isinstance(arg[0], str) or not arg[0]:
        raise TemplateError("Fn::Split takes [delimiter, string]")
    source = _evaluate(arg[1], scope)
    if not isinstance(source, str):
        raise TemplateError("Fn::Split takes [delimiter, string]")
    return source.split(arg[0])


def _fn_find_in_map(arg: Any, scope: _Scope) -> Any:
    if not isinstance(arg, list) or len(arg) != 3:
        raise TemplateError("Fn::FindInMap takes [MapName, TopLevelKey, SecondLevelKey]")
    map_name, top, second = (_string_of(_evaluate(item, scope), "Fn::FindInMap keys") for item in arg)
    mapping = scope.mappings.get(map_name)
    if mapping is None:
        raise TemplateError(f"Fn::FindInMap: no mapping named {map_name}")
    if top not in mapping or second not in mapping[top]:
        raise TemplateError(f"Fn::FindInMap: mapping {map_name} has no key {top}/{second}")
    return mapping[top][second]


def _fn_sub(arg: Any, scope: _Scope) -> str:
    if isinstance(arg, str):
        text, variables = arg, {}
    elif (
        isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict)
    ):
        text, variables = arg[0], {k: _evaluate(v, scope) for k, v in arg[1].items()}
    else:
        raise TemplateError("Fn::Sub takes a string or [string, {variables}]")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return _string_of(variables[name], f"Fn::Sub variable {name}")
        if name in scope.values:
            return _string_of(scope.values[name], f"Fn::Sub variable {name}")
        raise TemplateError(f"Fn::Sub refers to an undeclared parameter: {name}")

    return _SUB_VARIABLE.sub(substitute, text)


_FUNCTIONS = {
    "Fn::Join": _fn_join,
    "Fn::Select": _fn_select,
    "Fn::Split": _fn_split,
    "Fn::FindInMap": _fn_find_in_map,
    "Fn::Sub": _fn_sub,
}


def _evaluate(node: Any, scope: _Scope) -> Any:
    if isinstance(node, dict):
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                if not isinstance(arg, str) or arg not in scope.values:
                    raise TemplateError(f"Ref to an undeclared parameter: {arg}")
                return scope.values[arg]
            if key in _FUNCTIONS:
                return _FUNCTIONS[key](arg, scope)
            if key.startswith("Fn::"):
                raise TemplateError(f"Unsupported intrinsic function: {key}")
        return {k: _evaluate(v, scope) for k, v in node.items()}
    if isinstance(node, list):
        return [_evaluate(item, scope) for item in node]
    return node


def _require_string(props: dict[str, Any], key: str, logical_id: str) -> str:
    value = props.get(key)
    if not isinstance(value, str) or not value:
        raise TemplateError(f"Resource {logical_id} needs a non-empty string {key}")
    return value


def _thing_plan(logical_id: str, resource: dict[str, Any], scope: _Scope) -> ThingPlan:
    props = _evaluate(resource.get("Properties", {}), scope)
    if not isinstance(props, dict):
        raise TemplateError(f"Resource {logical_id} has invalid Properties")
    thing_name = _require_string(props, "ThingName", logical_id)
    if not re.fullmatch(r"[a-zA-Z0-9:_-]{1,128}", thing_name):
        raise TemplateError(f"Thing name {thing_name!r} is not valid")
    thing_type = props.get("ThingTypeName") or None
    if thing_type is not None and not isinstance(thing_type, str):
        raise TemplateError(f"Resource {logical_id}: ThingTypeName must be a string")
    attributes = props.get("AttributePayload", {}) or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in attributes.items()
    ):
        raise TemplateError(f"Resource {logical_id}: AttributePayload must map names to strings")
    groups = props.get("ThingGroups", []) or []
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise TemplateError(f"Resource {logical_id}: ThingGroups must be a list of names")
    override = resource.get("OverrideSettings", {}) or {}
    if not isinstance(override, dict):
        raise TemplateError(f"Resource {logical_id}: OverrideSettings must be an object")
    for key, choice in override.items():
        if key not in OVERRIDE_CHOICES or choice not in OVERRIDE_CHOICES[key]:
            raise TemplateError(f"Resource {logical_id}: invalid OverrideSettings {key}={choice}")
    return ThingPlan(
        logical_id=logical_id,
        thing_name=thing_name,
        thing_type_name=thing_type,
        attributes={k: str(v) for k, v in attributes.items()},
        thing_groups=tuple(groups),
        override=dict(override),
        given=frozenset(key for key in OVERRIDE_CHOICES if props.get(key) is not None),
    )


def _certificate_plan(logical_id: str, resource: dict[str, Any], scope: _Scope) -> CertificatePlan:
    props = _evaluate(resource.get("Properties", {}), scope)
    if not isinstance(props, dict):
        raise TemplateError(f"Resource {logical_id} has invalid Properties")
    if "CertificatePem" in props or "CACertificatePem" in props:
        raise TemplateError(f"Resource {logical_id}: only CertificateId is supported by the stand-in")
    cert_id = _require_string(props, "CertificateId", logical_id)
    status = props.get("Status", DEFAULT_CERT_STATUS)
    if not isinstance(status, str) or status.upper() not in CERT_STATUSES:
        raise TemplateError(f"Resource {logical_id}: Status must be Active or Inactive")
    status = status.upper()
    return CertificatePlan(logical_id=logical_id, certificate_id=cert_id, status=status)


def _policy_plan(logical_id: str, resource: dict[str, Any], scope: _Scope) -> PolicyPlan:
    props = _evaluate(resource.get("Properties", {}), scope)
    if not isinstance(props, dict):
        raise TemplateError(f"Resource {logical_id} has invalid Properties")
    name = props.get("PolicyName")
    document = props.get("PolicyDocument")
    if (name is None) == (document is None):
        raise TemplateError(f"Resource {logical_id}: give exactly one of PolicyName and PolicyDocument")
    if name is not None and (not isinstance(name, str) or not name):
        raise TemplateError(f"Resource {logical_id}: PolicyName must be a string")
    if document is not None:
        if isinstance(document, dict):
            document = json.dumps(document)
        if not isinstance(document, str):
            raise TemplateError(f"Resource {logical_id}: PolicyDocument must be a JSON string")
        try:
            json.loads(document)
        except ValueError as exc:
            raise TemplateError(f"Resource {logical_id}: PolicyDocument is not valid JSON") from exc
        return PolicyPlan(logical_id=logical_id, policy_name=inline_policy_name(document), policy_document=document)
    return PolicyPlan(logical_id=logical_id, policy_name=name, policy_document=None)


def render_template(body: str | dict[str, Any], parameters: dict[str, Any] | None) -> ProvisioningPlan:
    """Evaluate the template with the given parameters; raises TemplateError."""
    template = parse_template_body(body)
    scope = _Scope(
        values=_resolve_parameters(template.get("Parameters", {}), parameters or {}),
        mappings=template.get("Mappings", {}),
    )
    thing = None
    certificate = None
    policies: list[PolicyPlan] = []
    for logical_id, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind == THING:
            if thing is not None:
                raise TemplateError("A template can describe only one thing")
            thing = _thing_plan(logical_id, resource, scope)
        elif kind == CERTIFICATE:
            if certificate is not None:
                raise TemplateError("A template can describe only one certificate")
            certificate = _certificate_plan(logical_id, resource, scope)
        else:
            policies.append(_policy_plan(logical_id, resource, scope))
    if policies and certificate is None:
        raise TemplateError("A policy in the template needs a certificate to attach to")
    return ProvisioningPlan(thing=thing, certificate=certificate, policies=tuple(policies))
