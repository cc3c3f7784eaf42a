"""Where laptops live in the IoT registry: a thing type for laptops and a thing group per environment."""

from __future__ import annotations

from aws_cdk import aws_iot as iot
from constructs import Construct

# Thing attributes the provisioning template sets; the thing type makes them searchable.
LAPTOP_ATTRIBUTES = ("owner", "serialNumber", "platform")


class LaptopThingType(Construct):
    """``AWS::IoT::ThingType`` for laptops, with the template's attributes searchable."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.resource = iot.CfnThingType(
            self,
            "Resource",
            thing_type_name=name,
            thing_type_properties=iot.CfnThingType.ThingTypePropertiesProperty(
                thing_type_description="Laptop enrolled for device trust",
                searchable_attributes=list(LAPTOP_ATTRIBUTES),
            ),
        )


class EnvironmentThingGroup(Construct):
    """``AWS::IoT::ThingGroup`` holding every laptop registered in one environment."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.resource = iot.CfnThingGroup(
            self,
            "Resource",
            thing_group_name=name,
            thing_group_properties=iot.CfnThingGroup.ThingGroupPropertiesProperty(
                thing_group_description="Laptops enrolled for device trust in this environment",
            ),
        )
