"""cdk-nag acknowledgements, written beside the construct they cover.

cdk-nag 3 reports one finding per wildcard (``AwsSolutions-IAM5[Resource::<arn>]``)
and each must be acknowledged on its own, with a reason, through CDK's
``Validations.of(construct).acknowledge``. These helpers build the finding ids from
the same ARN tokens the construct uses, so an acknowledgement never names a
construct path or a generated logical id.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on ``construct`` with the reason it is acceptable."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledge_wildcard_resource(construct: IConstruct, resource: str, reason: str) -> None:
    """Acknowledge AwsSolutions-IAM5 for one resource ARN (a token or a string) in ``construct``'s policy."""
    text = finding_text(Stack.of(construct).resolve(resource))
    acknowledge(construct, f"AwsSolutions-IAM5[Resource::{text}]", reason)


def finding_text(resolved: Any) -> str:
    """How cdk-nag spells a resolved ARN in a finding id: ``Ref``s become ``<Name>``."""
    if isinstance(resolved, str):
        return resolved
    if isinstance(resolved, dict) and set(resolved) == {"Ref"}:
        return f"<{resolved['Ref']}>"
    if isinstance(resolved, dict) and set(resolved) == {"Fn::Join"}:
        separator, parts = resolved["Fn::Join"]
        return separator.join(finding_text(part) for part in parts)
    if isinstance(resolved, dict) and set(resolved) == {"Fn::GetAtt"}:
        return f"<{'.'.join(resolved['Fn::GetAtt'])}>"
    raise ValueError(f"cannot express {resolved!r} as a cdk-nag finding id")


def policy_variables_as_nag_spells_them(resource: str) -> str:
    """cdk-nag writes an IAM policy variable ``${name}`` as ``<name>`` in finding ids."""
    return re.sub(r"\$\{([^}]+)\}", r"<\1>", resource)
