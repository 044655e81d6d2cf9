"""How one expected value is compared with one actual value, and how both are shown."""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Sequence
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode

from pytest_jobtrace._core.notation import escape_unprintable, is_present, show_pattern

# Errors raised here are about the caller's input: pytest shows the caller's line, not these frames.
__tracebackhide__ = True

_MISSING: Any = object()


# Builtins and C methods (math.isnan, str.isalpha) are predicates too: == against them never holds.
_PREDICATES = (
    types.FunctionType,
    types.MethodType,
    functools.partial,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
)
_PLAIN = (str, int, float, bool)


def is_predicate(value: object) -> bool:
    """Plain functions, lambdas, methods and partials are predicates; other objects compare with ==."""
    return isinstance(value, _PREDICATES)


def value_matches(expected: object, actual: object) -> bool:
    """Literal with ==, compiled pattern with fullmatch, predicate called; a TypeError is 'not equal'."""
    if type(expected) in _PLAIN and type(actual) in _PLAIN:
        # The common case, checked first: matching runs this millions of times. OpenTelemetry keeps
        # booleans apart from numbers, so True does not match 1 (as == alone would have it).
        same = expected == actual or (expected != expected and actual != actual)  # nan is nan, as written
        return same and (type(expected) is bool) == (type(actual) is bool)
    try:
        if is_present(expected):
            return True  # {key=*}: any value (attributes_diff has checked that there is one)
        if isinstance(expected, re.Pattern):
            return isinstance(actual, str) and expected.fullmatch(actual) is not None
        if is_predicate(expected):
            return _accepts(expected, actual)
        if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
            # Item by item, so that bool stays apart from int inside sequences too: [1, 0] is not (True, False).
            return len(expected) == len(actual) and all(map(value_matches, expected, actual))
        return bool(expected == actual)
    except TypeError:
        return False


def distinct_matches(options: Sequence[Sequence[int]]) -> bool:
    """Whether every expected item can have an actual item of its own; ``options[i]`` lists those item i matches.

    Two expectations of the same event (or link) need two events: one event cannot satisfy both.
    """
    owner: dict[int, int] = {}

    def place(item: int, seen: set[int]) -> bool:
        # Augmenting path; as deep as the expected list is long, which is a handful of events or links.
        for candidate in options[item]:
            if candidate not in seen:
                seen.add(candidate)
                if candidate not in owner or place(owner[candidate], seen):
                    owner[candidate] = item
                    return True
        return False

    return all(place(item, set()) for item in range(len(options)))


def _accepts(predicate: Any, actual: object) -> bool:
    """A predicate that raises (say, str methods on an int attribute of another span) rejects the value."""
    try:
        return bool(predicate(actual))
    except Exception:
        return False


def mismatch(expected: object, actual: object) -> str:
    """Why ``actual`` fails ``expected``: 'expected X, got Y', or what a predicate did with it."""
    if isinstance(expected, re.Pattern):
        part = isinstance(actual, str) and expected.search(actual) is not None
        why = " (it matches only part of it)" if part else ""
        return f"expected {show(expected)} to match the whole value (re.fullmatch), got {show(actual)}{why}"
    if not is_predicate(expected):
        return f"expected {show(expected)}, got {show(actual)}{_tuple_hint(expected, actual)}"
    try:
        expected(actual)  # type: ignore[operator]
    except Exception as error:
        return f"{show(expected)} raised {type(error).__name__}: {clip(str(error))} for {show(actual)}"
    return f"{show(expected)} returned false for {show(actual)}"


def _tuple_hint(expected: object, actual: object) -> str:
    """A matcher for lists (dirty-equals' IsList) fails on the tuple OpenTelemetry stores: say so."""
    if not isinstance(actual, tuple) or isinstance(expected, (list, tuple)):
        return ""
    try:
        as_list = bool(expected == list(actual))
    except Exception:
        return ""
    return " (a tuple: OpenTelemetry stores sequence attributes as tuples; it would match as a list)" if as_list else ""


def show(value: object) -> str:
    """A value as the user would write it."""
    if is_present(value):
        return "*"
    if isinstance(value, re.Pattern):
        return clip(show_pattern(value))
    if is_predicate(value):
        name = getattr(value, "__name__", "predicate")
        return "<lambda>" if name == "<lambda>" else f"<function {escape_unprintable(name)}>"
    try:
        return clip(escape_unprintable(repr(value)))
    except Exception:  # a matcher's own repr may fail; the message must not
        return f"<{type(value).__name__} object>"


MAX_VALUE = 200  # characters of one value in a message


def clip(text: str, limit: int = MAX_VALUE) -> str:
    """At most ``limit`` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def show_name(value: object) -> str:
    """A span-name expectation as it reads in a message: 'name', /pattern/ or repr."""
    if isinstance(value, str):
        return clip(repr(value))
    if isinstance(value, re.Pattern):
        return clip(show_pattern(value))
    return show(value)


_KINDS = {kind.name: kind for kind in SpanKind}
_STATUSES = {code.name: code for code in StatusCode}


def parse_kind(value: object) -> SpanKind:
    if isinstance(value, SpanKind):
        return value
    if isinstance(value, str) and value.upper() in _KINDS:
        return _KINDS[value.upper()]
    valid = ", ".join(k.lower() for k in _KINDS)
    raise ValueError(f"kind={value!r} is not a span kind; use a SpanKind or one of: {valid}")


def parse_status(value: object) -> StatusCode:
    if isinstance(value, StatusCode):
        return value
    if isinstance(value, str) and value.upper() in _STATUSES:
        return _STATUSES[value.upper()]
    raise ValueError(f"status={value!r} is not a span status; use a StatusCode or one of: OK, ERROR, UNSET")


def kind_word(kind: SpanKind) -> str:
    return kind.name.lower()
