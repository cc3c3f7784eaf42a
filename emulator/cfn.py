"""CloudFormation resource types moto 5.2.5 lacks or resolves wrongly, added to moto.

- AWS::IoT::ProvisioningTemplate (Ref = template name, GetAtt TemplateArn), new;
  updates keep the template (new default version for a new body, the
  pre-provisioning hook added or removed) except a TemplateType change, which
  the CloudFormation reference marks "Update requires: Replacement";
- AWS::IoT::ThingGroup (Ref = group name, GetAtt Arn / Id), new;
- AWS::CDK::Metadata, accepted and ignored as CloudFormation ignores it;
- AWS::IoT::Policy, AWS::IoT::RoleAlias, AWS::IoT::ThingType: Ref now returns the
  name as on AWS (moto left the Ref unresolved), and a policy document given as
  a JSON object is stored as the JSON string IoT keeps; GetAtt Id of an IoT
  policy is its name (moto answered name_version);
- AWS::IAM::ManagedPolicy: GetAtt PolicyArn, PolicyId, DefaultVersionId (moto
  had none), update and delete.

Every model subclasses moto's CloudFormationModel directly, because moto finds
resource types through CloudFormationModel.__subclasses__().
"""

from __future__ import annotations

import json
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.iot import models as iot_models
from moto.iot.models import iot_backends
from moto.iot.utils import decapitalize_dict

from . import iot


def _name_from(properties: dict[str, Any], key: str, resource_name: str, limit: int) -> str:
    name = properties.get(key)
    if name:
        return str(name)
    return resource_name[-limit:].lstrip("-_")


def _body_text(body: Any) -> str:
    return body if isinstance(body, str) else json.dumps(body)


def _hook_of(props: dict[str, Any]) -> dict[str, Any] | None:
    hook = props.get("PreProvisioningHook")
    return decapitalize_dict(hook) if hook else None


class CfnProvisioningTemplate(CloudFormationModel):
    def __init__(self, account_id: str, region_name: str, template: iot.ProvisioningTemplate) -> None:
        self.account_id = account_id
        self.region_name = region_name
        self.name = template.name
        self.arn = template.arn
        self.template_type = template.template_type

    @staticmethod
    def cloudformation_name_type() -> str:
        return "TemplateName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::IoT::ProvisioningTemplate"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("TemplateArn",)

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name == "TemplateArn":
            return self.arn
        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnProvisioningTemplate":
        props = cloudformation_json["Properties"]
        backend = iot_backends[account_id][region_name]
        template = iot.create_provisioning_template(
            backend,
            name=_name_from(props, "TemplateName", resource_name, 36),
            body=_body_text(props.get("TemplateBody", "")),
            role_arn=props.get("ProvisioningRoleArn", ""),
            description=props.get("Description", ""),
            enabled=str(props.get("Enabled", False)).lower() == "true",
            template_type=props.get("TemplateType", "FLEET_PROVISIONING"),
            hook=_hook_of(props),
        )
        return cls(account_id, region_name, template)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: "CfnProvisioningTemplate",
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> "CfnProvisioningTemplate":
        props = cloudformation_json["Properties"]
        backend = iot_backends[account_id][region_name]
        explicit_name = props.get("TemplateName")
        # Without a TemplateName the physical name stays; moto offers a fresh random one on every update.
        name = str(explicit_name) if explicit_name else original_resource.name
        template_type = props.get("TemplateType", "FLEET_PROVISIONING")
        if template_type != original_resource.template_type:
            if explicit_name and name == original_resource.name:
                from moto.cloudformation.exceptions import ValidationError

                raise ValidationError(
                    message=(
                        "CloudFormation cannot update a stack when a custom-named resource requires replacing. "
                        f"Rename {name} and update the stack again."
                    )
                )
            if not explicit_name:
                name = _name_from({}, "TemplateName", new_resource_name, 36)
        if name != original_resource.name:
            created = cls.create_from_cloudformation_json(
                name, dict(cloudformation_json, Properties=dict(props, TemplateName=name)), account_id, region_name
            )
            original_resource.delete(account_id, region_name)
            return created
        template = iot.describe_provisioning_template(backend, name)
        body = _body_text(props.get("TemplateBody", ""))
        if body != template.default_version.body:
            non_default = [v for v in template.versions if not v.is_default]
            if len(template.versions) >= iot.MAX_TEMPLATE_VERSIONS and non_default:
                iot.delete_provisioning_template_version(backend, name, non_default[0].version_id)
            iot.create_provisioning_template_version(backend, name, body, True)
        iot.update_provisioning_template(
            backend,
            name,
            description=props.get("Description", ""),
            enabled=str(props.get("Enabled", False)).lower() == "true",
            role_arn=props.get("ProvisioningRoleArn"),
            hook=_hook_of(props),
            remove_hook=_hook_of(props) is None and template.hook is not None,
        )
        return cls(account_id, region_name, template)

    def delete(self, account_id: str, region_name: str) -> None:
        iot.delete_provisioning_template(iot_backends[account_id][region_name], self.name)


class CfnThingGroup(CloudFormationModel):
    def __init__(self, account_id: str, region_name: str, group: Any) -> None:
        self.account_id = account_id
        self.region_name = region_name
        self.name = group.thing_group_name
        self.arn = group.arn
        self.group_id = group.thing_group_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return "ThingGroupName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::IoT::ThingGroup"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Arn", "Id")

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name == "Arn":
            return self.arn
        if attribute_name == "Id":
            return self.group_id
        raise UnformattedGetAttTemplateException()

    @staticmethod
    def _group_properties(props: dict[str, Any]) -> dict[str, Any]:
        raw = props.get("ThingGroupProperties") or {}
        result: dict[str, Any] = {}
        if "ThingGroupDescription" in raw:
            result["thingGroupDescription"] = raw["ThingGroupDescription"]
        attributes = (raw.get("AttributePayload") or {}).get("Attributes")
        if attributes:
            result["attributePayload"] = {"attributes": attributes}
        return result

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "CfnThingGroup":
        props = cloudformation_json["Properties"]
        backend = iot_backends[account_id][region_name]
        name = _name_from(props, "ThingGroupName", resource_name, 128)
        with iot.REGISTRY_LOCK:
            backend.create_thing_group(name, props.get("ParentGroupName"), cls._group_properties(props))
            group = backend.describe_thing_group(name)
        return cls(account_id, region_name, group)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: "CfnThingGroup",
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> "CfnThingGroup":
        props = cloudformation_json["Properties"]
        # Without a ThingGroupName the physical name stays; moto offers a fresh random one on every update.
        name = str(props.get("ThingGroupName") or original_resource.name)
        if name != original_resource.name:
            created = cls.create_from_cloudformation_json(name, cloudformation_json, account_id, region_name)
            original_resource.delete(account_id, region_name)
            return created
        backend = iot_backends[account_id][region_name]
        group = backend.describe_thing_group(name)
        group.thing_group_properties = cls._group_properties(props)
        group.version += 1
        return cls(account_id, region_name, group)

    def delete(self, account_id: str, region_name: str) -> None:
        iot_backends[account_id][region_name].delete_thing_group(self.name)


class CdkMetadata(CloudFormationModel):
    """AWS::CDK::Metadata: CloudFormation records it and does nothing else."""

    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CDK::Metadata"

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "CdkMetadata":
        return cls(resource_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource: "CdkMetadata", new_resource_name: str, cloudformation_json: Any,
        account_id: str, region_name: str,
    ) -> "CdkMetadata":
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        return None


def _json_policy_document(cloudformation_json: Any) -> Any:
    props = cloudformation_json.get("Properties", {})
    if isinstance(props.get("PolicyDocument"), dict):
        cloudformation_json = dict(cloudformation_json)
        cloudformation_json["Properties"] = dict(props, PolicyDocument=json.dumps(props["PolicyDocument"]))
    return cloudformation_json


def _patch_existing_models() -> None:
    name_attributes = {
        iot_models.FakePolicy: "name",
        iot_models.FakeRoleAlias: "role_alias",
        iot_models.FakeThingType: "thing_type_name",
    }
    for model, attribute in name_attributes.items():
        setattr(model, "physical_resource_id", property(lambda self, a=attribute: getattr(self, a)))

    def policy_attribute(self: Any, attribute_name: str) -> Any:
        """AWS::IoT::Policy: GetAtt Arn is the ARN, GetAtt Id the policy name."""
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name == "Arn":
            return self.arn
        if attribute_name == "Id":
            return self.name
        raise UnformattedGetAttTemplateException()

    iot_models.FakePolicy.get_cfn_attribute = policy_attribute  # type: ignore[method-assign]

    policy_create = iot_models.FakePolicy.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
    policy_update = iot_models.FakePolicy.update_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_policy(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any) -> Any:
        return policy_create(cls, resource_name, _json_policy_document(cloudformation_json), account_id, region_name, **kw)

    def update_policy(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str) -> Any:
        return policy_update(
            cls, original_resource, new_resource_name, _json_policy_document(cloudformation_json), account_id, region_name
        )

    iot_models.FakePolicy.create_from_cloudformation_json = classmethod(create_policy)  # type: ignore[method-assign,assignment]
    iot_models.FakePolicy.update_from_cloudformation_json = classmethod(update_policy)  # type: ignore[method-assign,assignment]

    thing_type_create = iot_models.FakeThingType.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_thing_type(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any) -> Any:
        props = dict(cloudformation_json.get("Properties", {}))
        if "ThingTypeProperties" in props:
            props["ThingTypeProperties"] = decapitalize_dict(props["ThingTypeProperties"])
        return thing_type_create(cls, resource_name, dict(cloudformation_json, Properties=props), account_id, region_name, **kw)

    iot_models.FakeThingType.create_from_cloudformation_json = classmethod(create_thing_type)  # type: ignore[method-assign,assignment]


def _patch_managed_policy() -> None:
    """AWS::IAM::ManagedPolicy: moto creates it but neither updates nor deletes it, and
    resolves none of its GetAtt attributes."""
    from moto.iam.models import ManagedPolicy, iam_backends

    def backend(policy: Any) -> Any:
        return iam_backends[policy.account_id]["aws"]

    def delete(self: Any, account_id: str, region_name: str) -> None:
        iam = backend(self)
        for role in list(iam.roles.values()):
            if self.arn in role.managed_policies:
                iam.detach_role_policy(self.arn, role.name)
        for user in list(iam.users.values()):
            if self.arn in user.managed_policies:
                iam.detach_user_policy(self.arn, user.name)
        for group in list(iam.groups.values()):
            if self.arn in group.managed_policies:
                iam.detach_group_policy(self.arn, group.name)
        iam.delete_policy(self.arn)

    def update(
        cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> Any:
        props = cloudformation_json.get("Properties", {})
        name = props.get("ManagedPolicyName")
        if name and name != original_resource.name:
            created = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
            delete(original_resource, account_id, region_name)
            return created
        iam = backend(original_resource)
        document = json.dumps(props.get("PolicyDocument"))
        versions = list(original_resource.versions)
        if len(versions) >= 5:
            oldest = next(v for v in versions if not v.is_default)
            iam.delete_policy_version(original_resource.arn, oldest.version_id)
        iam.create_policy_version(original_resource.arn, document, set_as_default=True)
        wanted = set(props.get("Roles", []))
        current = {role.name for role in list(iam.roles.values()) if original_resource.arn in role.managed_policies}
        for role_name in wanted - current:
            iam.attach_role_policy(original_resource.arn, role_name)
        for role_name in current - wanted:
            iam.detach_role_policy(original_resource.arn, role_name)
        return original_resource

    attributes = {
        "PolicyArn": lambda policy: policy.arn,
        "PolicyId": lambda policy: policy.id,
        "DefaultVersionId": lambda policy: policy.default_version_id,
    }

    def has_cfn_attr(cls: Any, attr: str) -> bool:
        return attr in attributes

    def get_cfn_attribute(self: Any, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name not in attributes:
            raise UnformattedGetAttTemplateException()
        return attributes[attribute_name](self)

    ManagedPolicy.has_cfn_attr = classmethod(has_cfn_attr)  # type: ignore[method-assign,assignment]
    ManagedPolicy.get_cfn_attribute = get_cfn_attribute  # type: ignore[method-assign]
    ManagedPolicy.delete = delete  # type: ignore[attr-defined]
    ManagedPolicy.update_from_cloudformation_json = classmethod(update)  # type: ignore[method-assign,assignment]


def _patch_role_update() -> None:
    """AWS::IAM::Role updates: moto read MaxSessionDuration from RoleDescription and
    ignored trust-policy and managed-policy changes."""
    from moto.iam.models import Role, iam_backends

    def update(
        cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> Any:
        props = cloudformation_json["Properties"]
        name = props.get("RoleName")
        if name and name != original_resource.name:
            created = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
            cls.delete_from_cloudformation_json(original_resource.name, cloudformation_json, account_id, region_name)
            return created
        iam = iam_backends[account_id]["aws"]
        role = original_resource
        role.description = props.get("Description", "")
        role.max_session_duration = int(props.get("MaxSessionDuration", 3600))
        trust = props.get("AssumeRolePolicyDocument")
        if trust is not None:
            role.assume_role_policy_document = trust if isinstance(trust, str) else json.dumps(trust)
        # Newly listed managed policies are attached; none is detached, because a
        # ManagedPolicy resource may attach itself through its own Roles property.
        for arn in set(props.get("ManagedPolicyArns", [])) - set(role.managed_policies):
            iam.attach_role_policy(arn, role.name)
        return role

    Role.update_from_cloudformation_json = classmethod(update)  # type: ignore[method-assign,assignment]


def _patch_change_set_execution() -> None:
    """ExecuteChangeSet as the CDK CLI relies on it: outputs and description refreshed,
    one event per resource, and a failed change set rolls the stack back instead of
    answering HTTP 500."""
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.models import CloudFormationBackend, Event

    def resource_event(stack: Any, resource: Any, status: str, reason: str | None = None) -> None:
        stack.events.append(
            Event(
                stack_id=stack.stack_id,
                stack_name=stack.name,
                logical_resource_id=getattr(resource, "logical_resource_id", "?"),
                physical_resource_id=getattr(resource, "physical_resource_id", None) or "",
                resource_type=getattr(resource, "cf_resource_type", "") or "",
                resource_status=status,
                resource_status_reason=reason,
                resource_properties=None,
            )
        )

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.change_sets.get(change_set_name)
        if change_set is None:
            change_set = next(
                (cs for cs in self.change_sets.values()
                 if cs.change_set_name == change_set_name and (stack_name is None or stack_name in (cs.stack_name, cs.stack_id))),
                None,
            )
        if change_set is None:
            raise ValidationError(stack_name, message=f"ChangeSet [{change_set_name}] does not exist")
        stack = self.stacks[change_set.stack_id]
        kind = change_set.change_set_type  # CREATE or UPDATE (IMPORT is not supported)
        stack._add_stack_event(f"{kind}_IN_PROGRESS", resource_status_reason="User Initiated")
        try:
            change_set.apply()
        except Exception as exc:  # noqa: BLE001 - any resource failure becomes a rollback, as on AWS
            reason = str(getattr(exc, "message", None) or exc) or exc.__class__.__name__
            failed = "ROLLBACK_COMPLETE" if kind == "CREATE" else "UPDATE_ROLLBACK_COMPLETE"
            stack._add_stack_event(f"{kind}_FAILED", resource_status_reason=reason)
            stack._add_stack_event(failed)
            stack.status = failed
            stack.stack_status_reason = reason
            change_set.execution_status = "EXECUTE_FAILED"
            change_set.status_reason = reason
            return
        for resource in list(stack.resource_map.values()):
            if resource is not None and not isinstance(resource, str):
                resource_event(stack, resource, f"{kind}_COMPLETE")
        stack.template = change_set.template
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        stack.output_map = stack._create_output_map()
        if change_set.parameters:
            stack.parameters = change_set.parameters
        stack._add_stack_event(f"{kind}_COMPLETE")
        stack.status = f"{kind}_COMPLETE"
        change_set.execution_status = "EXECUTE_COMPLETE"

    CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]


def install() -> None:
    """Make moto's CloudFormation know the models above (call once, before serving)."""
    from moto.cloudformation import parsing

    _patch_existing_models()
    _patch_managed_policy()
    _patch_change_set_execution()
    _patch_role_update()
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
