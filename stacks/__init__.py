"""The device-trust CDK app: environment config, the per-environment stack, the promotion pipeline."""

from stacks.app import build_app

__all__ = ["build_app"]
