"""The stand-in's exception hierarchy: one root, one subclass per kind of failure."""


class EmulatorError(Exception):
    """Root of every error the stand-in raises on purpose."""


class StartupError(EmulatorError):
    """The stand-in cannot start (port taken, state directory unusable)."""


class CsrError(EmulatorError):
    """A certificate signing request is malformed or uses a key AWS IoT refuses."""


class TemplateError(EmulatorError):
    """A provisioning template or its parameters cannot be applied."""
