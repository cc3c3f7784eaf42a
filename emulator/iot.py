"""AWS IoT control-plane behaviour moto 5.2.5 lacks or gets wrong, added to moto.

`install(ca, credentials_address)` extends moto's IoT backend and response
classes in this process (the stand-in is its own process, so the extension is
process-wide by design):

- CreateCertificateFromCsr signs the CSR's own key with the stand-in CA
  (certificateId = SHA-256 of the DER), honours setAsActive both ways and answers
  a bad CSR with InvalidRequestException;
- UpdateCertificate refuses unknown statuses, PENDING_TRANSFER/PENDING_ACTIVATION and
  REVOKED -> anything else (deprecated REGISTER_INACTIVE is accepted, as on AWS);
- DescribeEndpoint is stable and points iot:CredentialProvider at the stand-in;
- provisioning templates (and their versions) can be created, described,
  listed, updated and deleted;
- RegisterThing evaluates the template (emulator.provisioning), checks the plan
  against the registry (OverrideSettings FAIL included), and only then creates
  or changes anything.
"""

from __future__ import annotations

import datetime
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.iot import models as iot_models
from moto.iot.exceptions import (
    CertificateStateException,
    DeleteConflictException,
    InvalidRequestException,
    IoTClientError,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from moto.iot.models import FakeCertificate, IoTBackend
from moto.iot.responses import IoTResponse

from .ca import StandInCa, sign_device_csr
from .errors import CsrError, TemplateError
from .provisioning import ProvisioningPlan, ThingPlan, parse_template_body, render_template

# One lock for the operations added here: RegisterThing validates and applies as one step.
REGISTRY_LOCK = threading.RLock()

CERTIFICATE_STATUSES = {"ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE", "PENDING_ACTIVATION"}
# UpdateCertificate's model: PENDING_TRANSFER and PENDING_ACTIVATION "will result in an
# exception"; REGISTER_INACTIVE is deprecated ("should not be used") but not refused.
SETTABLE_STATUSES = {"ACTIVE", "INACTIVE", "REVOKED", "REGISTER_INACTIVE"}
TEMPLATE_NAME = re.compile(r"^[0-9A-Za-z_-]{1,36}$")
MAX_TEMPLATE_VERSIONS = 5


@dataclass
class TemplateVersion:
    version_id: int
    body: str
    created: datetime.datetime
    is_default: bool = False


@dataclass
class ProvisioningTemplate:
    name: str
    arn: str
    description: str
    enabled: bool
    role_arn: str
    template_type: str
    hook: dict[str, Any] | None
    created: datetime.datetime
    modified: datetime.datetime
    versions: list[TemplateVersion] = field(default_factory=list)

    @property
    def default_version(self) -> TemplateVersion:
        return next(v for v in self.versions if v.is_default)

    def summary(self) -> dict[str, Any]:
        return {
            "templateArn": self.arn,
            "templateName": self.name,
            "description": self.description,
            "creationDate": self.created,
            "lastModifiedDate": self.modified,
            "enabled": self.enabled,
            "type": self.template_type,
        }


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _templates(backend: IoTBackend) -> dict[str, ProvisioningTemplate]:
    store = getattr(backend, "provisioning_templates", None)
    if store is None:
        store = {}
        backend.provisioning_templates = store  # type: ignore[attr-defined]
    return store


def _template_arn(backend: IoTBackend, name: str) -> str:
    return f"arn:aws:iot:{backend.region_name}:{backend.account_id}:provisioningtemplate/{name}"


# ---------------------------------------------------------------- backend operations


def create_provisioning_template(
    backend: IoTBackend,
    *,
    name: str,
    body: str,
    role_arn: str,
    description: str = "",
    enabled: bool = False,
    template_type: str = "FLEET_PROVISIONING",
    hook: dict[str, Any] | None = None,
) -> ProvisioningTemplate:
    if not name or not TEMPLATE_NAME.match(name):
        raise InvalidRequestException(f"Template name {name!r} is not valid (1-36 of [0-9A-Za-z_-])")
    if not role_arn or not role_arn.startswith("arn:"):
        raise InvalidRequestException("provisioningRoleArn must be a role ARN")
    if template_type not in ("FLEET_PROVISIONING", "JITP"):
        raise InvalidRequestException(f"Unknown template type {template_type}")
    try:
        parse_template_body(body)
    except TemplateError as exc:
        raise InvalidRequestException(f"The template body is invalid: {exc}") from exc
    with REGISTRY_LOCK:
        store = _templates(backend)
        arn = _template_arn(backend, name)
        if name in store:
            raise ResourceAlreadyExistsException(f"Template {name} already exists", name, arn)
        now = _now()
        template = ProvisioningTemplate(
            name=name,
            arn=arn,
            description=description or "",
            enabled=bool(enabled),
            role_arn=role_arn,
            template_type=template_type,
            hook=hook,
            created=now,
            modified=now,
            versions=[TemplateVersion(1, body, now, True)],
        )
        store[name] = template
        return template


def describe_provisioning_template(backend: IoTBackend, name: str) -> ProvisioningTemplate:
    template = _templates(backend).get(name)
    if template is None:
        raise ResourceNotFoundException(f"The provisioning template {name} does not exist")
    return template


def update_provisioning_template(
    backend: IoTBackend,
    name: str,
    *,
    description: str | None = None,
    enabled: bool | None = None,
    default_version_id: int | None = None,
    role_arn: str | None = None,
    hook: dict[str, Any] | None = None,
    remove_hook: bool = False,
) -> ProvisioningTemplate:
    with REGISTRY_LOCK:
        template = describe_provisioning_template(backend, name)
        if default_version_id is not None:
            if not any(v.version_id == default_version_id for v in template.versions):
                raise ResourceNotFoundException(f"Version {default_version_id} of template {name} does not exist")
            for version in template.versions:
                version.is_default = version.version_id == default_version_id
        if description is not None:
            template.description = description
        if enabled is not None:
            template.enabled = bool(enabled)
        if role_arn:
            template.role_arn = role_arn
        if hook is not None:
            template.hook = hook
        if remove_hook:
            template.hook = None
        template.modified = _now()
        return template


def delete_provisioning_template(backend: IoTBackend, name: str) -> None:
    with REGISTRY_LOCK:
        describe_provisioning_template(backend, name)
        del _templates(backend)[name]


def create_provisioning_template_version(
    backend: IoTBackend, name: str, body: str, set_as_default: bool
) -> tuple[ProvisioningTemplate, TemplateVersion]:
    try:
        parse_template_body(body)
    except TemplateError as exc:
        raise InvalidRequestException(f"The template body is invalid: {exc}") from exc
    with REGISTRY_LOCK:
        template = describe_provisioning_template(backend, name)
        if len(template.versions) >= MAX_TEMPLATE_VERSIONS:
            from moto.iot.exceptions import IoTClientError

            error = IoTClientError(
                "VersionsLimitExceededException",
                f"The provisioning template {name} already has {MAX_TEMPLATE_VERSIONS} versions",
            )
            error.code = 409
            raise error
        version = TemplateVersion(max(v.version_id for v in template.versions) + 1, body, _now())
        template.versions.append(version)
        if set_as_default:
            for other in template.versions:
                other.is_default = other is version
        template.modified = _now()
        return template, version


def delete_provisioning_template_version(backend: IoTBackend, name: str, version_id: int) -> None:
    with REGISTRY_LOCK:
        template = describe_provisioning_template(backend, name)
        version = next((v for v in template.versions if v.version_id == version_id), None)
        if version is None:
            raise ResourceNotFoundException(f"Version {version_id} of template {name} does not exist")
        if version.is_default:
            raise DeleteConflictException("Cannot delete the default version of a provisioning template")
        template.versions.remove(version)


class ConflictingResourceUpdateException(IoTClientError):
    """RegisterThing's answer when OverrideSettings FAIL meets a change to an existing thing.

    AWS's developer guide names this ResourceConflictsException; RegisterThing's
    API model (botocore, every SDK) lists ConflictingResourceUpdateException
    (HTTP 409) and has no shape of the other name, so SDK callers can only catch
    this one as a modelled exception.
    """

    def __init__(self, msg: str) -> None:
        self.code = 409
        super().__init__("ConflictingResourceUpdateException", msg)


def _groups_of(backend: IoTBackend, thing: Any) -> set[str]:
    return {g.thing_group_name for g in backend.thing_groups.values() if thing.arn in g.things}


def _check_override_fail(backend: IoTBackend, wanted: ThingPlan) -> None:
    """OverrideSettings FAIL: a property the template sets, and that differs on the
    existing thing, fails the whole request before anything changes."""
    existing = next((t for t in backend.things.values() if t.thing_name == wanted.thing_name), None)
    if existing is None:
        return
    current = {
        "AttributePayload": {k: str(v) for k, v in (existing.attributes or {}).items()},
        "ThingTypeName": existing.thing_type.thing_type_name if existing.thing_type else None,
        "ThingGroups": _groups_of(backend, existing),
    }
    requested = {
        "AttributePayload": dict(wanted.attributes),
        "ThingTypeName": wanted.thing_type_name,
        "ThingGroups": set(wanted.thing_groups),
    }
    for prop, choice in sorted(wanted.override.items()):
        if choice == "FAIL" and prop in wanted.given and requested[prop] != current[prop]:
            raise ConflictingResourceUpdateException(
                f"Thing {wanted.thing_name} already exists with a different {prop} and OverrideSettings {prop} is FAIL"
            )


def _check_plan(backend: IoTBackend, plan: ProvisioningPlan) -> FakeCertificate | None:
    """Every check RegisterThing makes before it changes anything."""
    cert = None
    if plan.certificate is not None:
        cert = backend.certificates.get(plan.certificate.certificate_id)
        if cert is None:
            raise InvalidRequestException(f"Certificate {plan.certificate.certificate_id} does not exist")
        if cert.status == "REVOKED":
            raise InvalidRequestException(
                f"Certificate {cert.certificate_id} is revoked; its status cannot be set to {plan.certificate.status}"
            )
    if plan.thing is not None:
        thing = plan.thing
        if thing.thing_type_name is not None:
            types = [t for t in backend.thing_types.values() if t.thing_type_name == thing.thing_type_name]
            if not types:
                raise InvalidRequestException(f"Thing type {thing.thing_type_name} does not exist")
            if types[0].metadata.get("deprecated"):
                raise InvalidRequestException(f"Thing type {thing.thing_type_name} is deprecated")
        for group in thing.thing_groups:
            if not any(g.thing_group_name == group for g in backend.thing_groups.values()):
                raise InvalidRequestException(f"Thing group {group} does not exist")
        _check_override_fail(backend, thing)
    for policy in plan.policies:
        if policy.policy_document is None and policy.policy_name not in backend.policies:
            raise InvalidRequestException(f"Policy {policy.policy_name} does not exist")
    return cert


def register_thing(backend: IoTBackend, template_body: Any, parameters: dict[str, Any] | None) -> dict[str, Any]:
    try:
        plan = render_template(template_body, parameters)
    except TemplateError as exc:
        raise InvalidRequestException(str(exc)) from exc
    with REGISTRY_LOCK:
        cert = _check_plan(backend, plan)
        resource_arns: dict[str, str] = {}
        thing_obj = None
        if plan.thing is not None:
            thing_obj = _apply_thing(backend, plan)
            resource_arns["thing"] = thing_obj.arn
        if cert is not None and plan.certificate is not None:
            if cert.status != plan.certificate.status:
                cert.status = plan.certificate.status
                cert.last_modified_date = _now()
            resource_arns["certificate"] = cert.arn
            if thing_obj is not None:
                backend.attach_thing_principal(thing_obj.thing_name, cert.arn)
            for policy in plan.policies:
                if policy.policy_document is None:
                    backend.attach_policy(policy.policy_name, cert.arn)
                else:
                    # Named after a hash of the document: the same document is one policy, created once.
                    created = backend.policies.get(policy.policy_name) or backend.create_policy(
                        policy.policy_name, policy.policy_document
                    )
                    backend.attach_policy(created.name, cert.arn)
                    resource_arns["policy"] = created.arn
        return {
            "certificatePem": cert.certificate_pem if cert is not None else None,
            "resourceArns": resource_arns,
        }


def _apply_thing(backend: IoTBackend, plan: ProvisioningPlan) -> Any:
    thing = plan.thing
    assert thing is not None
    existing = [t for t in backend.things.values() if t.thing_name == thing.thing_name]
    if not existing:
        created = backend.create_thing(
            thing_name=thing.thing_name,
            thing_type_name=thing.thing_type_name or "",
            attribute_payload={"attributes": dict(thing.attributes)},
        )
        groups = list(thing.thing_groups)
    else:
        created = existing[0]
        attr_mode = thing.override.get("AttributePayload", "DO_NOTHING")
        if attr_mode == "REPLACE":
            created.attributes = dict(thing.attributes)
        elif attr_mode == "MERGE":
            created.attributes.update(thing.attributes)
        if thing.override.get("ThingTypeName") == "REPLACE" and thing.thing_type_name:
            created.thing_type = backend.describe_thing_type(thing.thing_type_name)
        group_mode = thing.override.get("ThingGroups", "DO_NOTHING")
        groups = []
        if group_mode == "REPLACE":
            for group in list(backend.thing_groups.values()):
                if created.arn in group.things and group.thing_group_name not in thing.thing_groups:
                    del group.things[created.arn]
            groups = list(thing.thing_groups)
        elif group_mode == "MERGE":
            groups = list(thing.thing_groups)
    for group in groups:
        backend.add_thing_to_thing_group(group, None, created.thing_name, None)
    return created


# ---------------------------------------------------------------- patched backend methods


def _install_backend(ca: StandInCa, credentials_address: str) -> None:
    def create_certificate_from_csr(self: IoTBackend, csr: str, set_as_active: bool) -> FakeCertificate:
        try:
            pem = sign_device_csr(ca.key, ca.certificate, csr or "", _now()).decode()
        except CsrError as exc:
            raise InvalidRequestException(f"Invalid certificate signing request: {exc}") from exc
        with REGISTRY_LOCK:
            cert = FakeCertificate(
                pem, "ACTIVE" if set_as_active else "INACTIVE", self.account_id, self.region_name
            )
            from cryptography import x509

            parsed = x509.load_pem_x509_certificate(pem.encode())
            cert.validity_not_before = parsed.not_valid_before_utc
            cert.validity_not_after = parsed.not_valid_after_utc
            self.certificates[cert.certificate_id] = cert
            return cert

    def update_certificate(self: IoTBackend, certificate_id: str, new_status: str) -> None:
        with REGISTRY_LOCK:
            cert = self.describe_certificate(certificate_id)
            if new_status not in CERTIFICATE_STATUSES:
                raise InvalidRequestException(f"Invalid certificate status: {new_status}")
            if new_status not in SETTABLE_STATUSES:
                raise InvalidRequestException(f"The certificate status cannot be set to {new_status} with UpdateCertificate")
            if cert.status == "REVOKED" and new_status != "REVOKED":
                raise CertificateStateException("The certificate is revoked and its status cannot change.", certificate_id)
            if cert.status == "PENDING_TRANSFER":
                raise CertificateStateException("The certificate is pending transfer.", certificate_id)
            cert.status = new_status
            cert.last_modified_date = _now()

    def describe_endpoint(self: IoTBackend, endpoint_type: str) -> Any:
        endpoints = getattr(self, "stable_endpoints", None)
        if endpoints is None:
            endpoints = {}
            self.stable_endpoints = endpoints  # type: ignore[attr-defined]
        if endpoint_type == "iot:CredentialProvider":
            endpoint = iot_models.FakeEndpoint(endpoint_type, self.region_name)
            endpoint.endpoint = credentials_address
            return endpoint
        if endpoint_type not in endpoints:
            endpoints[endpoint_type] = iot_models.FakeEndpoint(endpoint_type, self.region_name)
        return endpoints[endpoint_type]

    def delete_certificate(self: IoTBackend, certificate_id: str, force_delete: bool) -> None:
        """AWS's rules; forceDelete detaches the certificate's policies (moto left them dangling)."""
        with REGISTRY_LOCK:
            cert = self.describe_certificate(certificate_id)
            if cert.status == "ACTIVE":
                raise CertificateStateException(
                    "Certificate must be deactivated (not ACTIVE) before deletion.", certificate_id
                )
            if any(principal == cert.arn for principal, _ in list(self.principal_things)):
                raise DeleteConflictException(f"Things must be detached before deletion (arn: {cert.arn})")
            attached = [key for key in list(self.principal_policies) if key[0] == cert.arn]
            if attached and not force_delete:
                raise DeleteConflictException(
                    f"Certificate policies must be detached before deletion (arn: {cert.arn})"
                )
            for key in attached:
                del self.principal_policies[key]
            del self.certificates[certificate_id]

    original_delete_thing = IoTBackend.delete_thing

    def delete_thing(self: IoTBackend, thing_name: str) -> None:
        """AWS drops a deleted thing from its thing groups (moto kept listing it)."""
        with REGISTRY_LOCK:
            thing = self.describe_thing(thing_name)
            original_delete_thing(self, thing_name)
            for group in self.thing_groups.values():
                group.things.pop(thing.arn, None)

    IoTBackend.delete_thing = delete_thing  # type: ignore[method-assign]
    IoTBackend.delete_certificate = delete_certificate  # type: ignore[method-assign]
    IoTBackend.create_certificate_from_csr = create_certificate_from_csr  # type: ignore[method-assign]
    IoTBackend.update_certificate = update_certificate  # type: ignore[method-assign]
    IoTBackend.describe_endpoint = describe_endpoint  # type: ignore[method-assign]


# ---------------------------------------------------------------- response handlers


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _resp_create_certificate_from_csr(self: IoTResponse) -> ActionResult:
    csr = self._get_param("certificateSigningRequest")
    if not isinstance(csr, str) or not csr.strip():
        raise InvalidRequestException("certificateSigningRequest is required")
    cert = self.iot_backend.create_certificate_from_csr(csr, set_as_active=_bool(self._get_param("setAsActive", False)))
    return ActionResult(
        {"certificateId": cert.certificate_id, "certificateArn": cert.arn, "certificatePem": cert.certificate_pem}
    )


def _resp_update_certificate(self: IoTResponse) -> ActionResult:
    self.iot_backend.update_certificate(
        certificate_id=self._get_param("certificateId"), new_status=self._get_param("newStatus")
    )
    return EmptyResult()


def _resp_create_provisioning_template(self: IoTResponse) -> ActionResult:
    template = create_provisioning_template(
        self.iot_backend,
        name=self._get_param("templateName"),
        body=self._get_param("templateBody"),
        role_arn=self._get_param("provisioningRoleArn"),
        description=self._get_param("description") or "",
        enabled=_bool(self._get_param("enabled", False)),
        template_type=self._get_param("type") or "FLEET_PROVISIONING",
        hook=self._get_param("preProvisioningHook"),
    )
    return ActionResult(
        {"templateArn": template.arn, "templateName": template.name, "defaultVersionId": template.default_version.version_id}
    )


def _resp_describe_provisioning_template(self: IoTResponse) -> ActionResult:
    template = describe_provisioning_template(self.iot_backend, self._get_param("templateName"))
    result = template.summary()
    result.update(
        {
            "defaultVersionId": template.default_version.version_id,
            "templateBody": template.default_version.body,
            "provisioningRoleArn": template.role_arn,
        }
    )
    if template.hook:
        result["preProvisioningHook"] = template.hook
    return ActionResult(result)


def _resp_list_provisioning_templates(self: IoTResponse) -> ActionResult:
    templates = sorted(_templates(self.iot_backend).values(), key=lambda t: t.name)
    max_results = int(self._get_param("maxResults") or 25)
    start = int(self._get_param("nextToken") or 0)
    page = templates[start : start + max_results]
    result: dict[str, Any] = {"templates": [t.summary() for t in page]}
    if start + max_results < len(templates):
        result["nextToken"] = str(start + max_results)
    return ActionResult(result)


def _resp_update_provisioning_template(self: IoTResponse) -> ActionResult:
    default_version = self._get_param("defaultVersionId")
    enabled = self._get_param("enabled")
    update_provisioning_template(
        self.iot_backend,
        self._get_param("templateName"),
        description=self._get_param("description"),
        enabled=None if enabled is None else _bool(enabled),
        default_version_id=None if default_version is None else int(default_version),
        role_arn=self._get_param("provisioningRoleArn"),
        hook=self._get_param("preProvisioningHook"),
        remove_hook=_bool(self._get_param("removePreProvisioningHook", False)),
    )
    return EmptyResult()


def _resp_delete_provisioning_template(self: IoTResponse) -> ActionResult:
    delete_provisioning_template(self.iot_backend, self._get_param("templateName"))
    return EmptyResult()


def _resp_create_provisioning_template_version(self: IoTResponse) -> ActionResult:
    template, version = create_provisioning_template_version(
        self.iot_backend,
        self._get_param("templateName"),
        self._get_param("templateBody"),
        _bool(self._get_param("setAsDefault", False)),
    )
    return ActionResult(
        {
            "templateArn": template.arn,
            "templateName": template.name,
            "versionId": version.version_id,
            "isDefaultVersion": version.is_default,
        }
    )


def _version_dict(version: TemplateVersion, with_body: bool) -> dict[str, Any]:
    result: dict[str, Any] = {
        "versionId": version.version_id,
        "creationDate": version.created,
        "isDefaultVersion": version.is_default,
    }
    if with_body:
        result["templateBody"] = version.body
    return result


def _resp_describe_provisioning_template_version(self: IoTResponse) -> ActionResult:
    template = describe_provisioning_template(self.iot_backend, self._get_param("templateName"))
    version_id = int(self._get_param("versionId"))
    version = next((v for v in template.versions if v.version_id == version_id), None)
    if version is None:
        raise ResourceNotFoundException(f"Version {version_id} of template {template.name} does not exist")
    return ActionResult(_version_dict(version, True))


def _resp_list_provisioning_template_versions(self: IoTResponse) -> ActionResult:
    template = describe_provisioning_template(self.iot_backend, self._get_param("templateName"))
    return ActionResult({"versions": [_version_dict(v, False) for v in template.versions]})


def _resp_delete_provisioning_template_version(self: IoTResponse) -> ActionResult:
    delete_provisioning_template_version(
        self.iot_backend, self._get_param("templateName"), int(self._get_param("versionId"))
    )
    return EmptyResult()


def _resp_register_thing(self: IoTResponse) -> ActionResult:
    body = self._get_param("templateBody")
    if not body:
        raise InvalidRequestException("templateBody is required")
    parameters = self._get_param("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidRequestException("parameters must be a map of strings")
    result = register_thing(self.iot_backend, body, parameters)
    if result["certificatePem"] is None:
        del result["certificatePem"]
    return ActionResult(result)


RESPONSE_HANDLERS = {
    "create_certificate_from_csr": _resp_create_certificate_from_csr,
    "update_certificate": _resp_update_certificate,
    "create_provisioning_template": _resp_create_provisioning_template,
    "describe_provisioning_template": _resp_describe_provisioning_template,
    "list_provisioning_templates": _resp_list_provisioning_templates,
    "update_provisioning_template": _resp_update_provisioning_template,
    "delete_provisioning_template": _resp_delete_provisioning_template,
    "create_provisioning_template_version": _resp_create_provisioning_template_version,
    "describe_provisioning_template_version": _resp_describe_provisioning_template_version,
    "list_provisioning_template_versions": _resp_list_provisioning_template_versions,
    "delete_provisioning_template_version": _resp_delete_provisioning_template_version,
    "register_thing": _resp_register_thing,
}


def install(ca: StandInCa, credentials_address: str) -> None:
    """Extend moto's IoT service in this process (call once, before serving)."""
    from moto import settings

    settings.default_user_config.setdefault("iot", {})["use_valid_cert"] = True
    _install_backend(ca, credentials_address)
    for name, handler in RESPONSE_HANDLERS.items():
        setattr(IoTResponse, name, handler)


__all__ = ["install", "register_thing", "REGISTRY_LOCK"]
