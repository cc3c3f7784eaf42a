#!/usr/bin/env python3
"""The device-trust CDK app. Environments live in cdk.json; `-c env=NAME` picks one."""

import sys

import aws_cdk as cdk

from stacks import build_app
from stacks.errors import DeviceTrustSynthError

app = cdk.App()
try:
    build_app(app)
    app.synth()
except DeviceTrustSynthError as error:
    sys.exit(f"device-trust: {error}")
except RuntimeError as error:
    if "ValidationFailed" not in str(error):
        raise
    sys.exit("device-trust: cdk-nag found unacknowledged findings (listed above): narrow the permission"
             " or acknowledge it with a reason beside its construct")
