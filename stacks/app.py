"""Wires cdk.json's environments to stacks: every environment plus the pipeline, or one with ``-c env=NAME``."""

from __future__ import annotations

from aws_cdk import App, Stack, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.config import CONTEXT_KEY, parse_config
from stacks.device_trust_stack import device_trust_stack_for
from stacks.pipeline_stack import PipelineStack

ENV_CONTEXT_KEY = "env"


def build_app(app: App, *, nag: bool = True) -> list[Stack]:
    """Add the stacks cdk.json asks for to ``app`` and return them; raises ConfigError on bad config.

    With context ``env`` set, only that environment's stack; otherwise every
    environment's stack and, when cdk.json has a pipeline section, the pipeline stack.
    ``nag`` runs cdk-nag's AwsSolutions checks when the app synthesizes.
    """
    config = parse_config(app.node.try_get_context(CONTEXT_KEY))
    selected = app.node.try_get_context(ENV_CONTEXT_KEY)
    stacks: list[Stack] = []
    if selected:
        environment = config.environment(str(selected))
        stacks.append(device_trust_stack_for(app, environment.stack_name, environment))
    else:
        stacks.extend(device_trust_stack_for(app, env.stack_name, env) for env in config.environments)
        if config.pipeline is not None:
            stacks.append(PipelineStack(app, config.pipeline.stack_name, config=config))
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stacks

