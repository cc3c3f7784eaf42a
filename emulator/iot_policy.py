"""Evaluation of AWS IoT policies for one action on one resource (pure).

Rules (as AWS IoT documents them): an explicit Deny wins over any Allow; with no
matching Allow the request is denied. Action and Resource patterns use `*` and
`?` wildcards (actions case-insensitively). Policy variables such as
`${iot:Connection.Thing.ThingName}` are replaced from `variables`; a statement
whose pattern holds a variable that cannot be resolved matches nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class _Unresolved(Exception):
    pass


def _substitute(pattern: str, variables: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ("*", "?", "$"):
            # ${*}, ${?}, ${$} are AWS's escapes for the literal characters.
            return "\0" + name
        if name not in variables:
            raise _Unresolved(name)
        return variables[name].replace("*", "\0*").replace("?", "\0?")

    return _VARIABLE.sub(replace, pattern)


def _wildcard_match(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    regex = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\0" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        if ch == "*":
            regex += ".*"
        elif ch == "?":
            regex += "."
        else:
            regex += re.escape(ch)
        i += 1
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)]


def _matches_any(patterns: list[str], value: str, variables: dict[str, str], *, case_sensitive: bool) -> bool:
    for pattern in patterns:
        try:
            expanded = _substitute(pattern, variables)
        except _Unresolved:
            continue
        if _wildcard_match(expanded, value, case_sensitive=case_sensitive):
            return True
    return False


def _statement_applies(statement: dict[str, Any], action: str, resource: str, variables: dict[str, str]) -> bool:
    if "Action" in statement:
        if not _matches_any(_as_list(statement["Action"]), action, variables, case_sensitive=False):
            return False
    elif "NotAction" in statement:
        if _matches_any(_as_list(statement["NotAction"]), action, variables, case_sensitive=False):
            return False
    else:
        return False
    if "Resource" in statement:
        return _matches_any(_as_list(statement["Resource"]), resource, variables, case_sensitive=True)
    if "NotResource" in statement:
        patterns = _as_list(statement["NotResource"])
        try:
            expanded = [_substitute(p, variables) for p in patterns]
        except _Unresolved:
            return False
        return not any(_wildcard_match(p, resource, case_sensitive=True) for p in expanded)
    return False


def _statements(document: str | dict[str, Any]) -> Iterable[dict[str, Any]]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []
    if not isinstance(document, dict):
        return []
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    return [s for s in statements if isinstance(s, dict)]


def is_allowed(
    documents: Iterable[str | dict[str, Any]],
    action: str,
    resource: str,
    variables: dict[str, str] | None = None,
) -> bool:
    """True when some statement allows `action` on `resource` and none denies it."""
    variables = variables or {}
    allowed = False
    for document in documents:
        for statement in _statements(document):
            if not _statement_applies(statement, action, resource, variables):
                continue
            effect = statement.get("Effect")
            if effect == "Deny":
                return False
            if effect == "Allow":
                allowed = True
    return allowed


__all__ = ["is_allowed"]
