"""The fleet provisioning template body: rendered from its JSON file and checked at synth time.

A pure core: text in, dict out. :func:`render_template_body` fills the environment's
thing type, thing group and device policy names into the ``{{marker}}`` strings of
``laptop_template.json``; :func:`check_template_body` rejects a body the provisioner
or AWS IoT could not use, with one line saying where and why.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator, Mapping

from stacks.errors import TemplateBodyError

TEMPLATE_FILE_NAME = "laptop_template.json"

# Parameters the provisioner passes to RegisterThing (contract in DESIGN.md).
REQUIRED_PARAMETERS = ("ThingName", "AWS::IoT::Certificate::Id")
# Device attributes the provisioner may pass; the body must give each a default.
DEFAULTED_PARAMETERS = ("Owner", "SerialNumber", "Platform")

THING = "AWS::IoT::Thing"
CERTIFICATE = "AWS::IoT::Certificate"
POLICY = "AWS::IoT::Policy"
_RESOURCE_TYPES = (THING, CERTIFICATE, POLICY)
_TOP_LEVEL_KEYS = frozenset({"Parameters", "Resources", "Mappings", "DeviceConfiguration"})
_OVERRIDES = {
    # AWS IoT's OverrideSettings for an existing thing; FAIL is refused below because
    # registering the same laptop again must succeed.
    "AttributePayload": ("REPLACE", "MERGE", "DO_NOTHING"),
    "ThingTypeName": ("REPLACE", "DO_NOTHING"),
    "ThingGroups": ("REPLACE", "MERGE", "DO_NOTHING"),
}
_MARKER = re.compile(r"\{\{(\w+)\}\}")
# RegisterThing's templateBody limit.
MAX_BODY_CHARS = 10240


def render_template_body(
    text: str,
    *,
    thing_type_name: str,
    thing_group_name: str,
    device_policy_name: str,
    source: str = TEMPLATE_FILE_NAME,
) -> dict[str, Any]:
    """Parse the body file's text, fill in the environment's names, check it, return it."""
    try:
        body = json.loads(text)
    except ValueError as error:
        raise TemplateBodyError(f"{source}: not valid JSON: {error}") from error
    values = {
        "thingTypeName": thing_type_name,
        "thingGroupName": thing_group_name,
        "devicePolicyName": device_policy_name,
    }
    body = _fill(body, values, source, "")
    check_template_body(
        body,
        thing_type_name=thing_type_name,
        thing_group_name=thing_group_name,
        device_policy_name=device_policy_name,
        source=source,
    )
    return body


def check_template_body(
    body: Any,
    *,
    thing_type_name: str,
    thing_group_name: str,
    device_policy_name: str,
    source: str = TEMPLATE_FILE_NAME,
) -> None:
    """Raise TemplateBodyError unless ``body`` is a usable laptop provisioning template."""

    def fail(where: str, problem: str) -> TemplateBodyError:
        return TemplateBodyError(f"{source}: {where}: {problem}")

    if not isinstance(body, Mapping):
        raise fail("top level", "must be a JSON object")
    unknown = sorted(set(body) - _TOP_LEVEL_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown top-level key (allowed: {', '.join(sorted(_TOP_LEVEL_KEYS))})")
    parameters = body.get("Parameters")
    resources = body.get("Resources")
    if not isinstance(parameters, Mapping):
        raise fail("Parameters", "missing or not an object")
    if not isinstance(resources, Mapping) or not resources:
        raise fail("Resources", "missing, empty or not an object")

    for name, declaration in parameters.items():
        if not isinstance(declaration, Mapping) or declaration.get("Type") != "String":
            raise fail(f"Parameters.{name}", 'must be an object with "Type": "String"')
        if "Default" in declaration and not isinstance(declaration["Default"], str):
            raise fail(f"Parameters.{name}.Default", "must be a string")
    for name in REQUIRED_PARAMETERS:
        if name not in parameters:
            raise fail("Parameters", f"missing {name!r}, which the provisioner passes to RegisterThing")
    for name in DEFAULTED_PARAMETERS:
        if name not in parameters:
            raise fail("Parameters", f"missing {name!r}, which the provisioner may pass")
        if not parameters[name].get("Default"):
            raise fail(f"Parameters.{name}", "needs a non-empty Default (the provisioner may omit it)")

    by_type: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for logical_name, resource in resources.items():
        where = f"Resources.{logical_name}"
        if not isinstance(resource, Mapping):
            raise fail(where, "must be an object")
        resource_type = resource.get("Type")
        if resource_type not in _RESOURCE_TYPES:
            raise fail(f"{where}.Type", f"{resource_type!r} is not one of {', '.join(_RESOURCE_TYPES)}")
        if resource_type in by_type:
            raise fail(where, f"a second {resource_type}; the template registers one of each")
        if not isinstance(resource.get("Properties"), Mapping):
            raise fail(f"{where}.Properties", "missing or not an object")
        by_type[resource_type] = (where, resource)
    for resource_type in _RESOURCE_TYPES:
        if resource_type not in by_type:
            raise fail("Resources", f"no {resource_type} resource")

    for where, reference in _references(resources, "Resources"):
        if reference not in parameters:
            raise fail(where, f"refers to undeclared parameter {reference!r}")

    where, thing = by_type[THING]
    properties = thing["Properties"]
    if properties.get("ThingName") != {"Ref": "ThingName"}:
        raise fail(f"{where}.Properties.ThingName", 'must be {"Ref": "ThingName"}')
    if properties.get("ThingTypeName") != thing_type_name:
        raise fail(f"{where}.Properties.ThingTypeName", f"must be this stack's thing type {thing_type_name!r}")
    groups = properties.get("ThingGroups")
    if not isinstance(groups, list) or thing_group_name not in groups:
        raise fail(f"{where}.Properties.ThingGroups", f"must be a list containing {thing_group_name!r}")
    attributes = properties.get("AttributePayload")
    if not isinstance(attributes, Mapping) or not attributes:
        raise fail(f"{where}.Properties.AttributePayload", "missing or not an object")
    for key, value in attributes.items():
        if not (isinstance(value, str) or (isinstance(value, Mapping) and set(value) == {"Ref"})):
            raise fail(f"{where}.Properties.AttributePayload.{key}", "must be a string or a Ref")
    overrides = thing.get("OverrideSettings")
    if not isinstance(overrides, Mapping):
        raise fail(f"{where}.OverrideSettings", "missing: re-registering an existing laptop would fail")
    for key, allowed in _OVERRIDES.items():
        value = overrides.get(key)
        if value not in allowed:
            raise fail(
                f"{where}.OverrideSettings.{key}",
                f"is {value!r}; registering the same laptop again must succeed: use one of {', '.join(allowed)}",
            )
    unknown = sorted(set(overrides) - set(_OVERRIDES))
    if unknown:
        raise fail(f"{where}.OverrideSettings.{unknown[0]}", "unknown setting")

    where, certificate = by_type[CERTIFICATE]
    properties = certificate["Properties"]
    if properties.get("CertificateId") != {"Ref": "AWS::IoT::Certificate::Id"}:
        raise fail(f"{where}.Properties.CertificateId", 'must be {"Ref": "AWS::IoT::Certificate::Id"}')
    status = properties.get("Status")
    if not isinstance(status, str) or status.upper() != "ACTIVE":
        raise fail(f"{where}.Properties.Status", f"is {status!r}; the laptop's certificate must be ACTIVE")

    where, policy = by_type[POLICY]
    properties = policy["Properties"]
    if properties.get("PolicyName") != device_policy_name or "PolicyDocument" in properties:
        raise fail(
            f"{where}.Properties",
            f"must attach the stack's device policy by name only: {{\"PolicyName\": {device_policy_name!r}}}",
        )

    size = len(json.dumps(body, separators=(",", ":")))
    if size > MAX_BODY_CHARS:
        raise fail("top level", f"{size} characters; RegisterThing accepts at most {MAX_BODY_CHARS}")


def _fill(value: Any, values: Mapping[str, str], source: str, where: str) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise TemplateBodyError(
                    f"{source}: {where or 'top level'}: unknown marker {{{{{name}}}}}"
                    f" (known: {', '.join(sorted(values))})"
                )
            return values[name]

        return _MARKER.sub(substitute, value)
    if isinstance(value, list):
        return [_fill(item, values, source, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, Mapping):
        return {key: _fill(item, values, source, f"{where}.{key}" if where else key) for key, item in value.items()}
    return value


def _references(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        if set(value) == {"Ref"}:
            yield where, value["Ref"]
            return
        for key, item in value.items():
            yield from _references(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _references(item, f"{where}[{index}]")
