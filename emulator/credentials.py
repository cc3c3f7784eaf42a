"""The AWS IoT credentials provider's decision, independent of sockets and moto.

`decide(request, registry, assume_role)` applies AWS's checks in AWS's order
(observed order: thing name, policy, role alias, role, duration) and returns
the status, error type and JSON body AWS answers with. `MotoRegistry` reads the
moto backends; the TLS server lives in credentials_server.py.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .iot_policy import is_allowed

ASSUME_ACTION = "iot:AssumeRoleWithCertificate"
CREDENTIALS_SERVICE = "credentials.iot.amazonaws.com"


@dataclass(frozen=True)
class CertificateInfo:
    certificate_id: str
    arn: str
    status: str
    subject: dict[str, str]


@dataclass(frozen=True)
class ThingInfo:
    name: str
    type_name: str | None
    attributes: dict[str, str]


@dataclass(frozen=True)
class RoleAliasInfo:
    name: str
    arn: str
    role_arn: str
    duration_seconds: int


@dataclass(frozen=True)
class RoleInfo:
    arn: str
    max_session_duration: int
    trust_policy: str


@dataclass(frozen=True)
class IssuedCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime.datetime


@dataclass(frozen=True)
class CredentialsRequest:
    certificate_id: str
    role_alias: str
    thing_name: str | None


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    error_type: str | None = None

    @property
    def body_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


class Registry(Protocol):
    def certificate(self, certificate_id: str) -> CertificateInfo | None: ...
    def attached_thing(self, certificate_arn: str, thing_name: str) -> ThingInfo | None: ...
    def policy_documents(self, certificate_arn: str) -> list[str]: ...
    def role_alias(self, name: str) -> RoleAliasInfo | None: ...
    def role_alias_arn(self, name: str) -> str: ...
    def role(self, role_arn: str) -> RoleInfo | None: ...


AssumeRole = Callable[[str, str, int], IssuedCredentials]


def _error(status: int, error_type: str, message: str) -> Answer:
    return Answer(status=status, body={"message": message}, error_type=error_type)


ACCESS_DENIED = (403, "AccessDeniedException", "Access Denied")
INVALID_CERTIFICATE = (403, "AccessDeniedException", "Certificate is invalid on this endpoint")
INVALID_THING = (403, "AccessDeniedException", "Invalid thing name passed")
NO_ROLE_ALIAS = (404, "ResourceNotFoundException", "Role alias does not exist")
CANNOT_ASSUME = (400, "InvalidRequestException", "Unable to assume the role, or the role to assume does not exist")
DURATION_TOO_LONG = (
    400,
    "InvalidRequestException",
    "The requested CredentialDurationSeconds exceeds the MaxSessionDuration set for the role",
)


def trusts_credentials_provider(trust_policy: str | dict[str, Any]) -> bool:
    """True when the role's trust policy lets credentials.iot.amazonaws.com call sts:AssumeRole."""
    if isinstance(trust_policy, str):
        try:
            trust_policy = json.loads(trust_policy)
        except ValueError:
            return False
    statements = trust_policy.get("Statement", []) if isinstance(trust_policy, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        principal = statement.get("Principal", {})
        if principal == "*":
            return True
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        if CREDENTIALS_SERVICE in services:
            return True
    return False


def policy_variables(cert: CertificateInfo, thing: ThingInfo | None) -> dict[str, str]:
    variables = {f"iot:Certificate.Subject.{k}": v for k, v in cert.subject.items()}
    if thing is not None:
        variables["iot:Connection.Thing.ThingName"] = thing.name
        variables["iot:Connection.Thing.IsAttached"] = "true"
        if thing.type_name:
            variables["iot:Connection.Thing.ThingTypeName"] = thing.type_name
        for key, value in thing.attributes.items():
            variables[f"iot:Connection.Thing.Attributes[{key}]"] = value
    return variables


def decide(request: CredentialsRequest, registry: Registry, assume_role: AssumeRole) -> Answer:
    cert = registry.certificate(request.certificate_id)
    if cert is None:
        return _error(*INVALID_CERTIFICATE)
    if cert.status != "ACTIVE":
        return _error(*ACCESS_DENIED)
    thing = None
    if request.thing_name is not None:
        thing = registry.attached_thing(cert.arn, request.thing_name)
        if thing is None:
            return _error(*INVALID_THING)
    alias_arn = registry.role_alias_arn(request.role_alias)
    if not is_allowed(
        registry.policy_documents(cert.arn), ASSUME_ACTION, alias_arn, policy_variables(cert, thing)
    ):
        return _error(*ACCESS_DENIED)
    alias = registry.role_alias(request.role_alias)
    if alias is None:
        return _error(*NO_ROLE_ALIAS)
    role = registry.role(alias.role_arn)
    if role is None or not trusts_credentials_provider(role.trust_policy):
        return _error(*CANNOT_ASSUME)
    if alias.duration_seconds > role.max_session_duration:
        return _error(*DURATION_TOO_LONG)
    issued = assume_role(role.arn, cert.certificate_id, alias.duration_seconds)
    expiration = issued.expiration.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Answer(
        status=200,
        body={
            "credentials": {
                "accessKeyId": issued.access_key_id,
                "secretAccessKey": issued.secret_access_key,
                "sessionToken": issued.session_token,
                "expiration": expiration,
            }
        },
    )


class MotoRegistry:
    """Registry view over moto's IoT and IAM backends for one account and region."""

    def __init__(self, account_id: str, region: str) -> None:
        from moto.iam.models import iam_backends
        from moto.iot.models import iot_backends

        self._iot = iot_backends[account_id][region]
        self._iam = iam_backends[account_id]["aws"]
        self._account_id = account_id
        self._region = region

    def certificate(self, certificate_id: str) -> CertificateInfo | None:
        cert = self._iot.certificates.get(certificate_id)
        if cert is None:
            return None
        from cryptography import x509

        subject: dict[str, str] = {}
        try:
            parsed = x509.load_pem_x509_certificate(cert.certificate_pem.encode())
            names = {
                "CommonName": x509.NameOID.COMMON_NAME,
                "Organization": x509.NameOID.ORGANIZATION_NAME,
                "OrganizationalUnit": x509.NameOID.ORGANIZATIONAL_UNIT_NAME,
                "Country": x509.NameOID.COUNTRY_NAME,
                "SerialNumber": x509.NameOID.SERIAL_NUMBER,
            }
            for key, oid in names.items():
                attrs = parsed.subject.get_attributes_for_oid(oid)
                if attrs:
                    subject[key] = str(attrs[0].value)
        except ValueError:
            pass
        return CertificateInfo(
            certificate_id=cert.certificate_id, arn=cert.arn, status=cert.status, subject=subject
        )

    def attached_thing(self, certificate_arn: str, thing_name: str) -> ThingInfo | None:
        if (certificate_arn, thing_name) not in dict(self._iot.principal_things):
            return None
        for thing in list(self._iot.things.values()):
            if thing.thing_name == thing_name:
                type_name = thing.thing_type.thing_type_name if thing.thing_type else None
                return ThingInfo(
                    name=thing.thing_name,
                    type_name=type_name,
                    attributes={k: str(v) for k, v in dict(thing.attributes).items()},
                )
        return None

    def policy_documents(self, certificate_arn: str) -> list[str]:
        documents = []
        for (target, _name), (_principal, policy) in list(self._iot.principal_policies.items()):
            if target != certificate_arn:
                continue
            document = policy.document
            for version in list(policy.versions):
                if getattr(version, "is_default", False):
                    document = version.document
            documents.append(document if isinstance(document, str) else json.dumps(document))
        return documents

    def role_alias_arn(self, name: str) -> str:
        return f"arn:aws:iot:{self._region}:{self._account_id}:rolealias/{name}"

    def role_alias(self, name: str) -> RoleAliasInfo | None:
        alias = self._iot.role_aliases.get(name)
        if alias is None:
            return None
        return RoleAliasInfo(
            name=alias.role_alias,
            arn=alias.arn,
            role_arn=alias.role_arn,
            duration_seconds=int(alias.credential_duration_seconds),
        )

    def role(self, role_arn: str) -> RoleInfo | None:
        for role in list(self._iam.roles.values()):
            if role.arn == role_arn:
                policy = role.assume_role_policy_document
                if not isinstance(policy, str):
                    policy = json.dumps(policy)
                return RoleInfo(
                    arn=role.arn,
                    max_session_duration=int(role.max_session_duration or 3600),
                    trust_policy=policy,
                )
        return None


def moto_assume_role(account_id: str, region: str) -> AssumeRole:
    """STS AssumeRole through moto's backend, as the credentials provider calls it."""
    from moto.sts.models import sts_backends

    def assume(role_arn: str, session_name: str, duration: int) -> IssuedCredentials:
        backend = sts_backends[account_id]["aws"]
        role = backend.assume_role(
            region_name=region,
            role_session_name=session_name,
            role_arn=role_arn,
            policy=None,
            duration=duration,
            external_id=None,
        )
        expiration = role.expiration
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=datetime.timezone.utc)
        return IssuedCredentials(
            access_key_id=role.access_key_id,
            secret_access_key=role.secret_access_key,
            session_token=role.session_token,
            expiration=expiration,
        )

    return assume
