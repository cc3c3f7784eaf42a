"""AWS IoT provisioning-template language, as RegisterThing evaluates it.

Pure: `render_template(body, parameters)` turns a template body and its
parameters into a `ProvisioningPlan` or raises TemplateError. Nothing in the
registry changes here; the caller checks the plan against the registry and
only then applies it, so an invalid request creates nothing.

Supported: Parameters (Type, Default), Ref, Fn::Join, Fn::Sub (${Name} only),
resources AWS::IoT::Thing (ThingName, ThingTypeName, AttributePayload,
ThingGroups, OverrideSettings), AWS::IoT::Certificate (CertificateId, Status)
and AWS::IoT::Policy (PolicyName or PolicyDocument).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import TemplateError

THING = "AWS::IoT::Thing"
CERTIFICATE = "AWS::IoT::Certificate"
POLICY = "AWS::IoT::Policy"
OVERRIDE_CHOICES = {
    "AttributePayload": {"MERGE", "REPLACE", "DO_NOTHING"},
    "ThingTypeName": {"REPLACE", "DO_NOTHING"},
    "ThingGroups": {"MERGE", "REPLACE", "DO_NOTHING"},
}
CERT_STATUSES = {"ACTIVE", "INACTIVE"}
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class ThingPlan:
    logical_id: str
    thing_name: str
    thing_type_name: str | None
    attributes: dict[str, str]
    thing_groups: tuple[str, ...]
    override: dict[str, str]


@dataclass(frozen=True)
class CertificatePlan:
    logical_id: str
    certificate_id: str
    status: str | None


@dataclass(frozen=True)
class PolicyPlan:
    logical_id: str
    policy_name: str | None
    policy_document: str | None


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


def _evaluate(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                if not isinstance(arg, str) or arg not in values:
                    raise TemplateError(f"Ref to an undeclared parameter: {arg}")
                return values[arg]
            if key == "Fn::Join":
                if (
                    not isinstance(arg, list)
                    or len(arg) != 2
                    or not isinstance(arg[0], str)
                    or not isinstance(arg[1], list)
                ):
                    raise TemplateError("Fn::Join takes [delimiter, [values]]")
                parts = [_evaluate(item, values) for item in arg[1]]
                if not all(isinstance(part, (str, int, float)) for part in parts):
                    raise TemplateError("Fn::Join values must be strings")
                return arg[0].join(str(part) for part in parts)
            if key == "Fn::Sub":
                if not isinstance(arg, str):
                    raise TemplateError("Fn::Sub takes a string")

                def substitute(match: re.Match[str]) -> str:
                    name = match.group(1)
                    if name not in values:
                        raise TemplateError(f"Fn::Sub refers to an undeclared parameter: {name}")
                    return str(values[name])

                return _SUB_VARIABLE.sub(substitute, arg)
            if key.startswith("Fn::"):
                raise TemplateError(f"Unsupported intrinsic function: {key}")
        return {k: _evaluate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_evaluate(item, values) for item in node]
    return node


def _require_string(props: dict[str, Any], key: str, logical_id: str) -> str:
    value = props.get(key)
    if not isinstance(value, str) or not value:
        raise TemplateError(f"Resource {logical_id} needs a non-empty string {key}")
    return value


def _thing_plan(logical_id: str, resource: dict[str, Any], values: dict[str, Any]) -> ThingPlan:
    props = _evaluate(resource.get("Properties", {}), values)
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
    )


def _certificate_plan(logical_id: str, resource: dict[str, Any], values: dict[str, Any]) -> CertificatePlan:
    props = _evaluate(resource.get("Properties", {}), values)
    if not isinstance(props, dict):
        raise TemplateError(f"Resource {logical_id} has invalid Properties")
    if "CertificatePem" in props or "CACertificatePem" in props:
        raise TemplateError(f"Resource {logical_id}: only CertificateId is supported by the stand-in")
    cert_id = _require_string(props, "CertificateId", logical_id)
    status = props.get("Status")
    if status is not None:
        if not isinstance(status, str) or status.upper() not in CERT_STATUSES:
            raise TemplateError(f"Resource {logical_id}: Status must be Active or Inactive")
        status = status.upper()
    return CertificatePlan(logical_id=logical_id, certificate_id=cert_id, status=status)


def _policy_plan(logical_id: str, resource: dict[str, Any], values: dict[str, Any]) -> PolicyPlan:
    props = _evaluate(resource.get("Properties", {}), values)
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
    return PolicyPlan(logical_id=logical_id, policy_name=name, policy_document=document)


def render_template(body: str | dict[str, Any], parameters: dict[str, Any] | None) -> ProvisioningPlan:
    """Evaluate the template with the given parameters; raises TemplateError."""
    template = parse_template_body(body)
    values = _resolve_parameters(template.get("Parameters", {}), parameters or {})
    thing = None
    certificate = None
    policies: list[PolicyPlan] = []
    for logical_id, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind == THING:
            if thing is not None:
                raise TemplateError("A template can describe only one thing")
            thing = _thing_plan(logical_id, resource, values)
        elif kind == CERTIFICATE:
            if certificate is not None:
                raise TemplateError("A template can describe only one certificate")
            certificate = _certificate_plan(logical_id, resource, values)
        else:
            policies.append(_policy_plan(logical_id, resource, values))
    if policies and certificate is None:
        raise TemplateError("A policy in the template needs a certificate to attach to")
    return ProvisioningPlan(thing=thing, certificate=certificate, policies=tuple(policies))
