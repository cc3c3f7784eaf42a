"""Per-operation request-rate limits at AWS's default quotas (`--throttle`).

Token buckets: each operation gets `rate` tokens a second and holds at most
`burst` (= rate, at least 1). Quotas are AWS's published defaults per account
and region (AWS IoT Core API throttling limits, STS, CloudFormation); operations
not listed use DEFAULT_RATE.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

DEFAULT_RATE = 10.0

QUOTAS: dict[str, float] = {
    # AWS IoT Core control plane (requests per second).
    "iot.AttachPolicy": 15,
    "iot.AttachThingPrincipal": 15,
    "iot.CreateCertificateFromCsr": 15,
    "iot.CreateKeysAndCertificate": 10,
    "iot.CreateThing": 15,
    "iot.DeleteCertificate": 10,
    "iot.DeleteThing": 15,
    "iot.DescribeCertificate": 10,
    "iot.DescribeEndpoint": 10,
    "iot.DescribeProvisioningTemplate": 10,
    "iot.DescribeThing": 350,
    "iot.DetachPolicy": 15,
    "iot.DetachThingPrincipal": 15,
    "iot.ListAttachedPolicies": 15,
    "iot.ListCertificates": 10,
    "iot.ListPrincipalThings": 10,
    "iot.ListThingPrincipals": 10,
    "iot.ListThings": 10,
    "iot.ListThingsInThingGroup": 10,
    "iot.RegisterThing": 10,
    "iot.UpdateCertificate": 15,
    # AWS IoT credentials provider.
    "credentials.AssumeRoleWithCertificate": 50,
    # STS (per account; the bucket is generous on purpose).
    "sts.AssumeRole": 600,
    "sts.GetCallerIdentity": 600,
    # CloudFormation.
    "cloudformation.DescribeStacks": 10,
    "cloudformation.DescribeStackEvents": 10,
    "cloudformation.CreateStack": 5,
    "cloudformation.CreateChangeSet": 5,
}


class TokenBuckets:
    def __init__(
        self,
        quotas: dict[str, float] | None = None,
        default_rate: float = DEFAULT_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._quotas = dict(QUOTAS if quotas is None else quotas)
        self._default = default_rate
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def rate(self, operation: str) -> float:
        return self._quotas.get(operation, self._default)

    def throttled(self, operation: str) -> bool:
        """Take one token for `operation`; True when none was left."""
        rate = self.rate(operation)
        burst = max(rate, 1.0)
        now = self._clock()
        with self._lock:
            tokens, last = self._state.get(operation, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens < 1.0:
                self._state[operation] = (tokens, now)
                return True
            self._state[operation] = (tokens - 1.0, now)
            return False
