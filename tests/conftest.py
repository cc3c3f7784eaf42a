"""Shared fixtures. Each fixtures module has one owner; see tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.emulator",
    "tests.fixtures.deployment",
    "tests.fixtures.stack",
]
