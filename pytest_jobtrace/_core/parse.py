"""Turning what a test writes (span() calls, dicts, text trees) into expected nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pytest_jobtrace._core import extensions
from pytest_jobtrace._core.expect import EventSpec, ExceptionSpec, Expected, ExpectedSpan
from pytest_jobtrace._core.texttree import parse_text_tree
from pytest_jobtrace._core.values import parse_kind, parse_status

# Errors raised here are about the caller's input: pytest shows the caller's line, not these frames.
__tracebackhide__ = True


SPAN_KEYS = (
    "name",
    "kind",
    "attributes",
    "status",
    "description",
    "events",
    "exception",
    "links",
    "children",
    "count",
    "exact",
    "exact_attributes",
)

# Other node types (job()) register a dict key that selects them, e.g. {"job": "ProcessOrderJob"}.
DICT_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Expected]] = {}


def span(
    name: object = None,
    *,
    kind: object = None,
    attributes: Mapping[str, object] | None = None,
    status: object = None,
    description: object = None,
    events: Iterable[object] | None = None,
    exception: object = None,
    links: Iterable[object] | None = None,
    children: Iterable[object] | object = (),
    count: int | None = None,
    exact: bool | None = None,
    exact_attributes: bool = False,
) -> ExpectedSpan:
    """An expected span. Every argument is optional; what is left out is not checked.

    ``children`` and ``links`` take expected spans in any form: ``span()``, a dict or a text tree.
    ``exact=True``: exactly these children under this span (``False``: any others too), whatever the
    assertion's ``exact``; ``exact_attributes=True``: the span has no attributes besides those listed.
    """
    if attributes is not None and not isinstance(attributes, Mapping):
        raise TypeError(f"attributes must be a mapping of attribute name to expected value, got {attributes!r}")
    return ExpectedSpan(
        name=name,
        kind=None if kind is None else parse_kind(kind),
        attributes=None if attributes is None else dict(attributes),
        status=None if status is None else parse_status(status),
        description=description,
        events=_events(events),
        exception=None if exception is None else exception_spec(exception),
        links=tuple(expected_list(links or ())),
        children=tuple(expected_list(children)),
        count=check_count(count),
        exact=check_flag("exact", exact, none=True),
        exact_attributes=bool(check_flag("exact_attributes", exact_attributes)),
    )


def check_flag(key: str, value: object, *, none: bool = False) -> bool | None:
    """A bool keyword: a string such as "false" would read as true, so anything else is refused."""
    if isinstance(value, bool) or (none and value is None):
        return value
    allowed = "True, False or None" if none else "True or False"
    raise TypeError(f"{key}={value!r}: expected {allowed}")


def check_count(count: object) -> int | None:
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count={count!r}: expected a whole number of sibling spans, 0 or more")
    return count


def _events(events: object) -> tuple[EventSpec, ...]:
    if events is None:
        return ()
    # A lone name or dict would be iterated into characters or keys: say so rather than match those.
    if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Iterable):
        raise TypeError(f"events={events!r}: expected a list of events, e.g. events=[{events!r}]")
    return tuple(_event_spec(e) for e in events)


def _event_spec(event: object) -> EventSpec:
    if isinstance(event, Mapping):
        _reject_unknown(event, ("name", "attributes"), "an expected event")
        if "name" not in event:
            raise ValueError(f"an expected event needs a 'name': {dict(event)!r}")
        return EventSpec(event["name"], event.get("attributes"))
    return EventSpec(event)


def exception_spec(exception: object) -> ExceptionSpec:
    if isinstance(exception, ExceptionSpec):
        return exception
    if isinstance(exception, Mapping):
        _reject_unknown(exception, ("type", "message"), "an expected exception")
        return ExceptionSpec(exception.get("type"), exception.get("message"))
    return ExceptionSpec(type=exception)


def _reject_unknown(mapping: Mapping[str, Any], valid: Iterable[str], what: str) -> None:
    unknown = [key for key in mapping if key not in valid]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise ValueError(f"unknown key(s) {names} in {what}; valid keys: {', '.join(valid)}")


def from_dict(data: Mapping[str, Any]) -> Expected:
    """A dict with span()'s keys, or with a key registered by another node type (``job``)."""
    extensions.load()
    for key, build in DICT_BUILDERS.items():
        if key in data:
            return build(data)
    _reject_unknown(data, SPAN_KEYS, "an expected span")
    return span(**data)


def expected_list(value: object) -> list[Expected]:
    """One expected node or several, in any of the three forms, as a flat list."""
    if isinstance(value, (Expected, Mapping, str)):
        return to_expected(value)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray, memoryview)):
        return [node for item in value for node in to_expected(item)]
    raise TypeError(f"expected a span(), a dict or a text tree, got {type(value).__name__}: {value!r}")


def to_expected(value: object) -> list[Expected]:
    if isinstance(value, Expected):
        return [value]
    if isinstance(value, Mapping):
        return [from_dict(value)]
    if isinstance(value, str):
        return parse_text_tree(value)
    raise TypeError(f"expected a span(), a dict or a text tree, got {type(value).__name__}: {value!r}")
