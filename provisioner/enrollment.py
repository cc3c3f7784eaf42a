"""The AWS IoT side of a device's life: register, roll back, rotate, revoke, report.

Every function takes its boto3 IoT client as an argument and never prints: the
verbs in :mod:`provisioner.commands` decide what the user sees. Failures are
raised as :class:`~provisioner.errors.DeviceTrustError` subclasses.

The private key never reaches this module: certificates are made from CSRs
(CreateCertificateFromCsr), never with CreateKeysAndCertificate.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator

from botocore.exceptions import ClientError

from provisioner import keys
from provisioner.errors import AwsError, DeviceTrustError
from provisioner.stack_info import StackInfo, aws_errors

# How often to retry a delete that AWS refuses while a detach is still propagating.
_CONFLICT_ATTEMPTS = 5
_CONFLICT_DELAY_SECONDS = 1.0
# How long to wait for a RegisterThing attachment to show in ListThingPrincipals (seconds between looks).
_ATTACH_POLL_DELAYS = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate AWS IoT made from our CSR."""

    certificate_id: str
    certificate_arn: str
    certificate_pem: bytes


@dataclass(frozen=True)
class Registration:
    """A certificate registered to a thing through the provisioning template."""

    thing_name: str
    certificate: IssuedCertificate
    thing_created: bool  # this run created the thing (so a rollback deletes it)

    def rolled_back_on_failure(self, iot, *, on_rollback=None):
        """Undo this registration (the certificate, and the thing if this run created it) if the block fails."""
        return rolled_back_on_failure(iot, self.certificate,
                                      delete_thing=self.thing_name if self.thing_created else None,
                                      on_rollback=on_rollback)


@dataclass
class RevocationReport:
    """What ``revoke_thing`` found and did."""

    thing_name: str
    thing_existed: bool
    revoked: list[str] = field(default_factory=list)          # certificate ids newly set REVOKED
    already_revoked: list[str] = field(default_factory=list)  # certificate ids that were REVOKED before
    detached_policies: list[str] = field(default_factory=list)
    detached_certificates: list[str] = field(default_factory=list)  # detached from the thing
    thing_deleted: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.revoked or self.detached_policies or self.thing_deleted or self.detached_certificates)

    def to_json_dict(self) -> dict:
        return {
            "thingName": self.thing_name,
            "thingExisted": self.thing_existed,
            "revokedCertificates": self.revoked,
            "alreadyRevokedCertificates": self.already_revoked,
            "detachedCertificates": self.detached_certificates,
            "detachedPolicies": self.detached_policies,
            "thingDeleted": self.thing_deleted,
            "changed": self.changed,
        }


# ---------------------------------------------------------------- pure helpers

def device_attributes(
    *,
    owner: str | None = None,
    serial_number: str | None = None,
    platform: str | None = None,
) -> dict[str, str]:
    """The template's optional parameters ``Owner``, ``SerialNumber``, ``Platform``,
    validated, only those given (the template has defaults for the others)."""
    attributes = {}
    for name, value, option in (("Owner", owner, "--owner"), ("SerialNumber", serial_number, "--serial"),
                                ("Platform", platform, "--platform")):
        if value is not None:
            attributes[name] = keys.validate_attribute(option, value)
    return attributes


def template_parameters(thing_name: str, certificate_id: str,
                        attributes: dict[str, str] | None = None) -> dict[str, str]:
    """RegisterThing parameters for the stack's provisioning template: ``ThingName`` and
    ``AWS::IoT::Certificate::Id`` always, plus the ``device_attributes`` given."""
    keys.validate_thing_name(thing_name)
    return {"ThingName": thing_name, "AWS::IoT::Certificate::Id": certificate_id, **(attributes or {})}


def certificate_id_from_arn(arn: str) -> str | None:
    """``arn:aws:iot:<region>:<account>:cert/<id>`` -> ``<id>``; None for other principals."""
    resource = arn.split(":", 5)[-1] if arn.count(":") >= 5 else ""
    return resource.split("/", 1)[1] if resource.startswith("cert/") else None


def _error_code(exc: BaseException) -> str | None:
    cause = exc if isinstance(exc, ClientError) else exc.__cause__
    if isinstance(cause, ClientError):
        return cause.response.get("Error", {}).get("Code")
    return None


# ---------------------------------------------------------------- small AWS reads

def thing_exists(iot, thing_name: str) -> bool:
    try:
        with aws_errors(f"looking up thing {thing_name}"):
            iot.describe_thing(thingName=thing_name)
    except AwsError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True


def thing_certificate_arns(iot, thing_name: str) -> list[str]:
    """ARNs of the certificates attached to ``thing_name`` (other principal kinds are skipped)."""
    arns: list[str] = []
    with aws_errors(f"listing the certificates of thing {thing_name}"):
        for page in iot.get_paginator("list_thing_principals").paginate(thingName=thing_name):
            arns.extend(p for p in page.get("principals", []) if certificate_id_from_arn(p))
    return arns


def describe_certificate(iot, certificate_id: str) -> dict | None:
    """certificateDescription of ``certificate_id``, or None if AWS IoT does not know it."""
    try:
        with aws_errors(f"describing certificate {certificate_id}"):
            return iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    except AwsError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def certificate_things(iot, certificate_arn: str) -> list[str]:
    with aws_errors("listing the things of a certificate"):
        return list(iot.list_principal_things(principal=certificate_arn).get("things", []))


def certificate_policies(iot, certificate_arn: str) -> list[str]:
    names: list[str] = []
    with aws_errors("listing the policies of a certificate"):
        for page in iot.get_paginator("list_attached_policies").paginate(target=certificate_arn, recursive=False):
            names.extend(p["policyName"] for p in page.get("policies", []))
    return names


# ---------------------------------------------------------------- certificate lifecycle

def create_certificate(iot, csr_pem: bytes) -> IssuedCertificate:
    """CreateCertificateFromCsr, INACTIVE: it becomes ACTIVE only once fully registered."""
    with aws_errors("creating the certificate from the CSR"):
        answer = iot.create_certificate_from_csr(certificateSigningRequest=csr_pem.decode(), setAsActive=False)
    return IssuedCertificate(answer["certificateId"], answer["certificateArn"], answer["certificatePem"].encode())


def _retry_on_conflict(call, *args, **kwargs):
    for attempt in range(_CONFLICT_ATTEMPTS):
        try:
            return call(*args, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "DeleteConflictException" or attempt + 1 == _CONFLICT_ATTEMPTS:
                raise
            time.sleep(_CONFLICT_DELAY_SECONDS)


def _detach_certificate(iot, certificate_arn: str, *, only_thing: str | None = None) -> tuple[list[str], list[str]]:
    """Detach ``certificate_arn`` from its things (or only ``only_thing``) and its policies."""
    things = certificate_things(iot, certificate_arn)
    if only_thing is not None:
        things = [t for t in things if t == only_thing]
    with aws_errors("detaching a certificate from its thing"):
        for thing in things:
            iot.detach_thing_principal(thingName=thing, principal=certificate_arn)
    policies = certificate_policies(iot, certificate_arn)
    with aws_errors("detaching a policy from a certificate"):
        for policy in policies:
            iot.detach_policy(policyName=policy, target=certificate_arn)
    return things, policies


def undo_certificate(iot, certificate: IssuedCertificate, *, delete_thing: str | None = None) -> str:
    """Roll back a certificate this run created: deactivate, detach, delete; delete the thing if we made it.

    Never raises: returns one sentence saying what was undone and, if anything
    could not be, what the operator must remove by hand.
    """
    done: list[str] = []
    try:
        with aws_errors(f"deactivating certificate {certificate.certificate_id}"):
            iot.update_certificate(certificateId=certificate.certificate_id, newStatus="INACTIVE")
        _detach_certificate(iot, certificate.certificate_arn)
        with aws_errors(f"deleting certificate {certificate.certificate_id}"):
            _retry_on_conflict(iot.delete_certificate, certificateId=certificate.certificate_id, forceDelete=True)
        done.append(f"certificate {certificate.certificate_id} deactivated and deleted")
    except DeviceTrustError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            done.append(f"certificate {certificate.certificate_id} already gone")
        else:
            return (f"rollback incomplete: {exc}; set certificate {certificate.certificate_id} INACTIVE and delete it "
                    "by hand" + (f", and delete thing {delete_thing}" if delete_thing else ""))
    if delete_thing:
        try:
            with aws_errors(f"deleting thing {delete_thing}"):
                if thing_exists(iot, delete_thing):
                    _retry_on_conflict(iot.delete_thing, thingName=delete_thing)
                    done.append(f"thing {delete_thing} deleted")
        except DeviceTrustError as exc:
            return f"rolled back: {', '.join(done)}; but thing {delete_thing} remains ({exc}): delete it by hand"
    return "rolled back: " + ", ".join(done)


@contextlib.contextmanager
def rolled_back_on_failure(iot, certificate: IssuedCertificate, *, delete_thing: str | None = None,
                           on_rollback=None) -> Iterator[None]:
    """Run the block; if it fails, undo ``certificate`` (and the thing we created) and say so.

    A DeviceTrustError is re-raised with the rollback summary appended to its
    one-line message; any other exception (including Ctrl-C) is re-raised
    unchanged after ``on_rollback(summary)`` is called.
    """
    try:
        yield
    except BaseException as exc:
        summary = undo_certificate(iot, certificate, delete_thing=delete_thing)
        if isinstance(exc, DeviceTrustError):
            exc.args = (f"{exc} ({summary})",)  # same object: class, exit code and cause unchanged
        elif on_rollback is not None:
            on_rollback(summary)
        raise


def _eventually_attached(iot, certificate_arn: str, thing_name: str) -> bool:
    """True once ``thing_name`` lists the certificate (the registry may lag a moment behind RegisterThing)."""
    for delay in (*_ATTACH_POLL_DELAYS, None):
        if certificate_arn in thing_certificate_arns(iot, thing_name):
            return True
        if delay is not None:
            time.sleep(delay)
    return False


def activate_certificate(iot, certificate: IssuedCertificate) -> None:
    with aws_errors(f"activating certificate {certificate.certificate_id}"):
        iot.update_certificate(certificateId=certificate.certificate_id, newStatus="ACTIVE")


def register_certificate(
    iot,
    stack: StackInfo,
    csr_pem: bytes,
    thing_name: str,
    *,
    attributes: dict[str, str] | None = None,
    on_rollback=None,
) -> Registration:
    """CreateCertificateFromCsr + RegisterThing with the stack's template; rolled back on any failure.

    On success the certificate is ACTIVE, attached to the thing and to the device
    policy (the template's doing), and the thing is in the environment's group.
    """
    keys.validate_thing_name(thing_name)
    with aws_errors(f"reading provisioning template {stack.provisioning_template_name}"):
        template_body = iot.describe_provisioning_template(
            templateName=stack.provisioning_template_name)["templateBody"]
    thing_created = not thing_exists(iot, thing_name)
    certificate = create_certificate(iot, csr_pem)
    with rolled_back_on_failure(iot, certificate, delete_thing=thing_name if thing_created else None,
                                on_rollback=on_rollback):
        parameters = template_parameters(thing_name, certificate.certificate_id, attributes)
        with aws_errors(f"registering thing {thing_name} (RegisterThing)"):
            iot.register_thing(templateBody=template_body, parameters=parameters)
        if not _eventually_attached(iot, certificate.certificate_arn, thing_name):
            raise AwsError(f"RegisterThing did not attach the certificate to thing {thing_name}: "
                           f"check provisioning template {stack.provisioning_template_name}")
        description = describe_certificate(iot, certificate.certificate_id) or {}
        if description.get("status") != "ACTIVE":
            activate_certificate(iot, certificate)
    return Registration(thing_name, certificate, thing_created)


def issue_for_existing_thing(iot, stack: StackInfo, csr_pem: bytes, thing_name: str, *,
                             on_rollback=None) -> IssuedCertificate:
    """A new certificate for a registered thing (rotation): device policy + thing attached, then ACTIVE.

    Rolled back (the new certificate only; the thing stays) on any failure.
    """
    if not thing_exists(iot, thing_name):
        raise AwsError(f"thing {thing_name} is not registered in this account (revoked by an operator?): "
                       "run enroll again to register this laptop anew")
    certificate = create_certificate(iot, csr_pem)
    with rolled_back_on_failure(iot, certificate, on_rollback=on_rollback):
        with aws_errors(f"attaching policy {stack.device_policy_name} to the new certificate"):
            iot.attach_policy(policyName=stack.device_policy_name, target=certificate.certificate_arn)
        with aws_errors(f"attaching the new certificate to thing {thing_name}"):
            iot.attach_thing_principal(thingName=thing_name, principal=certificate.certificate_arn)
        activate_certificate(iot, certificate)
    return certificate


def revoke_certificate(iot, certificate_id: str) -> bool:
    """Set ``certificate_id`` REVOKED; False if it already was. AwsError if it cannot be."""
    description = describe_certificate(iot, certificate_id)
    if description is None:
        return False
    if description.get("status") == "REVOKED":
        return False
    with aws_errors(f"revoking certificate {certificate_id}"):
        iot.update_certificate(certificateId=certificate_id, newStatus="REVOKED")
    return True


def retire_certificate(iot, certificate_arn: str, thing_name: str) -> tuple[str, list[str]]:
    """Revoke a certificate, then detach it from ``thing_name`` and from its policies.

    Returns what the revocation found ("revoked" by this call, "already revoked", or
    "unknown" to AWS IoT) and the policies detached.
    """
    certificate_id = certificate_id_from_arn(certificate_arn)
    description = describe_certificate(iot, certificate_id)
    if description is None:
        outcome = "unknown"
    elif description.get("status") == "REVOKED":
        outcome = "already revoked"
    else:
        with aws_errors(f"revoking certificate {certificate_id}"):
            iot.update_certificate(certificateId=certificate_id, newStatus="REVOKED")
        outcome = "revoked"
    if outcome == "unknown":
        return outcome, []
    _things, policies = _detach_certificate(iot, certificate_arn, only_thing=thing_name)
    return outcome, policies


def revoke_thing(iot, thing_name: str, *, keep_thing: bool = False) -> RevocationReport:
    """Every certificate of the thing REVOKED and detached (policies, thing); the thing deleted.

    Idempotent: an unknown thing, or one with nothing left to revoke, changes nothing.
    Certificates stay in AWS IoT as REVOKED so the credentials endpoint keeps refusing them.
    """
    keys.validate_thing_name(thing_name)
    report = RevocationReport(thing_name, thing_existed=thing_exists(iot, thing_name))
    if not report.thing_existed:
        return report
    for arn in thing_certificate_arns(iot, thing_name):
        certificate_id = certificate_id_from_arn(arn)
        if revoke_certificate(iot, certificate_id):
            report.revoked.append(certificate_id)
        else:
            report.already_revoked.append(certificate_id)
        things, policies = _detach_certificate(iot, arn, only_thing=thing_name)
        if things:
            report.detached_certificates.append(certificate_id)
        report.detached_policies.extend(p for p in policies if p not in report.detached_policies)
    if not keep_thing:
        with aws_errors(f"deleting thing {thing_name}"):
            _retry_on_conflict(iot.delete_thing, thingName=thing_name)
        report.thing_deleted = True
    return report


# ---------------------------------------------------------------- status

def _not_after(description: dict) -> str | None:
    pem = description.get("certificatePem")
    if pem:
        try:
            return keys.format_timestamp(keys.certificate_not_after(pem.encode()))
        except DeviceTrustError:
            pass
    moment = description.get("validity", {}).get("notAfter")
    return keys.format_timestamp(moment) if isinstance(moment, datetime) else None


def thing_status(iot, thing_name: str) -> dict:
    """{"thingName", "registered", "attributes", "certificates": [{"certificateId", "status", "notAfter"}]}."""
    try:
        with aws_errors(f"describing thing {thing_name}"):
            thing = iot.describe_thing(thingName=thing_name)
    except AwsError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        return {"thingName": thing_name, "registered": False, "attributes": {}, "certificates": []}
    certificates = []
    for arn in thing_certificate_arns(iot, thing_name):
        certificate_id = certificate_id_from_arn(arn)
        description = describe_certificate(iot, certificate_id) or {}
        certificates.append({
            "certificateId": certificate_id,
            "status": description.get("status", "UNKNOWN"),
            "notAfter": _not_after(description),
        })
    return {"thingName": thing_name, "registered": True, "attributes": thing.get("attributes", {}),
            "certificates": certificates}


def group_thing_names(iot, thing_group: str) -> list[str]:
    names: list[str] = []
    with aws_errors(f"listing the things of group {thing_group}"):
        for page in iot.get_paginator("list_things_in_thing_group").paginate(thingGroupName=thing_group):
            names.extend(page.get("things", []))
    return sorted(names)


def active_certificate_ids(iot, thing_name: str) -> list[str]:
    """Ids of the ACTIVE certificates attached to ``thing_name`` (none if the thing does not exist)."""
    if not thing_exists(iot, thing_name):
        return []
    active = []
    for arn in thing_certificate_arns(iot, thing_name):
        certificate_id = certificate_id_from_arn(arn)
        if (describe_certificate(iot, certificate_id) or {}).get("status") == "ACTIVE":
            active.append(certificate_id)
    return active


def certificate_health(iot, certificate_id: str, thing_name: str) -> str | None:
    """None if the certificate is ACTIVE and attached to ``thing_name``; otherwise why it is not."""
    description = describe_certificate(iot, certificate_id)
    if description is None:
        return f"certificate {certificate_id} is unknown to AWS IoT"
    if description.get("status") != "ACTIVE":
        return f"certificate {certificate_id} is {description.get('status')}"
    if thing_name not in certificate_things(iot, description["certificateArn"]):
        return f"certificate {certificate_id} is not attached to thing {thing_name}"
    return None
