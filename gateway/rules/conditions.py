"""Conditions in a safe expression language (the ``rule-engine`` package; never ``eval``).

``rule-engine`` parses and checks each condition once, at load. Its evaluator re-checks
types at every node, at every message, so the parsed tree is turned into nested closures over
plain Python operations for the common node kinds; a condition that uses anything else keeps
``rule-engine``'s own evaluator.
Both give the same answers (``tests/test_rules.py`` compares them).

The facts a condition can name are ``engine.facts``, documented in ``rules/README.md``.
"""

from __future__ import annotations

import logging
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# isort: off
from gateway.rules import parser_tables  # noqa: F401 (before rule_engine: its parser's tables)
import rule_engine
# isort: on

_CONTEXT = rule_engine.Context(default_value=None)
log = logging.getLogger("gateway.rules")
Test = Callable[[dict[str, Any]], Any]


class ConditionError(Exception):
    """A condition that does not compile; the message says where."""


class _Unsupported(Exception):
    """A node kind the closures do not cover: keep rule-engine's evaluator for this condition."""


@dataclass(frozen=True)
class Condition:
    text: str
    parsed: rule_engine.Rule
    test: Test | None  # None: evaluate with rule-engine


_ORDER = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


def _regex(node: Any) -> Test:
    left = _closure(node.left)
    pattern = getattr(node, "_right", None)
    if not isinstance(pattern, re.Pattern):
        raise _Unsupported(node.type)
    find = pattern.search if node.type.endswith("fzs") else pattern.match
    negate: bool = node.type.startswith("ne")

    def test(facts: dict[str, Any]) -> bool:
        value = left(facts)
        if value is None:
            return negate
        return (find(value) is None) if negate else (find(value) is not None)

    return test


def _closure(node: Any) -> Test:  # noqa: C901 - one branch per node kind reads best as a table
    kind = type(node).__name__
    if kind == "SymbolExpression" and node.scope is None:
        name = node.name
        return lambda facts: facts.get(name)
    if kind in ("StringExpression", "FloatExpression", "BooleanExpression", "NullExpression"):
        value = node.value
        return lambda facts: value
    if kind == "ArrayExpression":
        items = [_closure(item) for item in node.value]
        return lambda facts: [item(facts) for item in items]
    if kind == "LogicExpression":
        left, right = _closure(node.left), _closure(node.right)
        if node.type == "and":
            return lambda facts: bool(left(facts)) and bool(right(facts))
        if node.type == "or":
            return lambda facts: bool(left(facts)) or bool(right(facts))
    if kind == "UnaryExpression" and node.type == "not":
        inner = _closure(node.right)
        return lambda facts: not inner(facts)
    if kind == "ComparisonExpression" and node.type in ("eq", "ne"):
        left, right = _closure(node.left), _closure(node.right)
        if node.type == "eq":
            return lambda facts: left(facts) == right(facts)
        return lambda facts: left(facts) != right(facts)
    if kind == "ArithmeticComparisonExpression" and node.type in _ORDER:
        left, right, compare = _closure(node.left), _closure(node.right), _ORDER[node.type]
        return lambda facts: compare(left(facts), right(facts))
    if kind == "FuzzyComparisonExpression":
        return _regex(node)
    if kind == "ContainsExpression":
        member, container = _closure(node.member), _closure(node.container)
        return lambda facts: member(facts) in container(facts)  # null container: TypeError, no match
    raise _Unsupported(kind)


def compile_condition(source: str) -> Condition:
    text = source or "true"
    try:
        parsed = rule_engine.Rule(text, context=_CONTEXT)
    except rule_engine.errors.EngineError as error:
        raise ConditionError(f"condition {source!r}: {error.message}") from error
    try:
        test: Test | None = _closure(parsed.statement.expression)
    except _Unsupported:
        test = None
    return Condition(text=text, parsed=parsed, test=test)


def matches(condition: Condition, facts: dict[str, Any]) -> bool:
    """Whether the facts satisfy the condition; one that cannot be evaluated (a wrong type) does not match."""
    try:
        if condition.test is not None:
            return bool(condition.test(facts))
        return bool(condition.parsed.matches(facts))
    except TypeError as error:
        log.warning("condition %r could not be evaluated: %s", condition.text, error)
        return False
    except rule_engine.errors.EngineError as error:
        log.warning("condition %r could not be evaluated: %s", condition.text, error.message)
        return False
