"""Reading rule files: the built-in ones (``gateway/defaults/rules``), then the home's ``rules/*.toml``.

A home rule with the name of an earlier one replaces it where it stood (``enabled = false``
removes it), so a site reads the built-in behaviour and overrides exactly what it wants.
A file that cannot be used is refused with its path, line and reason.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.rules.actions import ACTIONS, ActionError, check_action
from gateway.rules.conditions import Condition, ConditionError, compile_condition
from gateway.settings import ConfigError

BUILT_IN = Path(__file__).resolve().parent.parent / "defaults" / "rules"
EVENTS = ("message", "comment", "status", "assignment")
_KEYS = {"name", "event", "condition", "actions", "stop", "enabled", "description"}


class RuleFileError(ConfigError):
    """``path:line: reason`` for a rule file that cannot be used."""


@dataclass(frozen=True)
class Rule:
    name: str
    event: str
    source: str  # the condition as written, recorded as the reason it matched
    condition: Condition
    actions: tuple[tuple[str, Any], ...]
    stop: bool
    origin: str  # path:line


def _rule_lines(text: str) -> list[int]:
    return [number for number, line in enumerate(text.splitlines(), 1) if re.match(r"\s*\[\[rules\]\]", line)]


def _rule(raw: dict[str, Any], origin: str) -> Rule:
    def fail(reason: str) -> RuleFileError:
        return RuleFileError(f"{origin}: {reason}")

    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise fail("a rule needs a name")
    unknown = set(raw) - _KEYS
    if unknown:
        raise fail(f"rule {name!r} has unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    event = raw.get("event")
    if event not in EVENTS:
        raise fail(f"rule {name!r}: event must be one of {', '.join(EVENTS)}, not {event!r}")
    try:
        condition = compile_condition(str(raw.get("condition", "")))
    except ConditionError as error:
        raise fail(f"rule {name!r}: {error}") from error
    actions: list[tuple[str, Any]] = []
    for action in raw.get("actions", []):
        if not isinstance(action, dict) or len(action) != 1:
            raise fail(f"rule {name!r}: each action is one `verb = argument`, e.g. {{ label = \"urgent\" }}")
        [(verb, argument)] = action.items()
        if verb not in ACTIONS:
            raise fail(f"rule {name!r}: unknown action {verb!r}; known: {', '.join(sorted(ACTIONS))}")
        try:
            check_action(verb, argument)
        except ActionError as error:
            raise fail(f"rule {name!r}: {error}") from error
        actions.append((verb, argument))
    return Rule(name=name, event=event, source=str(raw.get("condition", "true")), condition=condition,
                actions=tuple(actions), stop=bool(raw.get("stop", False)), origin=origin)


def read_rule_file(path: Path) -> list[tuple[Rule | None, str]]:
    """The rules of one file, in order; ``(None, name)`` for a rule with ``enabled = false``."""
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RuleFileError(f"{path}: {error}") from error
    entries = data.get("rules", [])
    if set(data) - {"rules"} or not isinstance(entries, list):
        raise RuleFileError(f"{path}:1: a rule file holds only [[rules]] tables")
    lines = _rule_lines(text)
    found: list[tuple[Rule | None, str]] = []
    for index, raw in enumerate(entries):
        origin = f"{path}:{lines[index] if index < len(lines) else 1}"
        if raw.get("enabled", True) is False:
            found.append((None, str(raw.get("name", ""))))
        else:
            found.append((_rule(raw, origin), str(raw["name"])))
    return found


@lru_cache(maxsize=8)
def load_rules(home: Path) -> tuple[Rule, ...]:
    """The ordered rule table of a home: built-in rules, then the home's files by name."""
    table: dict[str, Rule | None] = {}
    for path in [*sorted(BUILT_IN.glob("*.toml")), *sorted((home / "rules").glob("*.toml"))]:
        for rule, name in read_rule_file(path):
            table[name] = rule  # a later rule of the same name replaces it in place
    return tuple(rule for rule in table.values() if rule is not None)
