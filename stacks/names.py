"""Physical names of an environment's IoT and IAM resources.

The provisioning template body refers to the device policy, thing type and thing
group by name, and the provisioner finds them through the stack outputs, so each
environment gets explicit, predictable names rather than generated ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceNames:
    """Names derived from one environment name (e.g. ``dev``)."""

    environment: str

    @property
    def stack(self) -> str:
        return f"DeviceTrust-{self.environment}"

    @property
    def role_alias(self) -> str:
        return f"DeviceTrust-{self.environment}-laptop"

    @property
    def device_policy(self) -> str:
        return f"DeviceTrust-{self.environment}-device"

    @property
    def provisioning_template(self) -> str:
        return f"DeviceTrust-{self.environment}-laptop"

    @property
    def thing_group(self) -> str:
        return f"DeviceTrust-{self.environment}"

    @property
    def thing_type(self) -> str:
        return f"DeviceTrustLaptop-{self.environment}"
