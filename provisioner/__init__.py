"""Per-laptop provisioner for device trust on AWS IoT: ``python -m provisioner <verb>``."""

__version__ = "0.1.0"
