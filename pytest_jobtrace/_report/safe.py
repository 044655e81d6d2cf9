"""Control characters out of span data: a trace must not rewrite the terminal or break a report's layout.

ANSI escapes, line breaks, C1 controls and bidirectional overrides become visible escapes (``\\x1b``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def neutral(text: str) -> str:
    """``text`` with every control character written as a visible escape."""
    if text.isprintable():  # the common case, checked in C
        return text
    return _UNSAFE.sub(_escape, text)


def neutral_value(value: object) -> Any:
    """An attribute value with its strings (also inside sequences) neutralised."""
    if isinstance(value, str):
        return neutral(value)
    if isinstance(value, (tuple, list)):
        return tuple(neutral(v) if isinstance(v, str) else v for v in value)
    return value


def neutral_attributes(attributes: Mapping[str, object] | None) -> dict[str, Any]:
    return {neutral(key): neutral_value(value) for key, value in (attributes or {}).items()}


def neutral_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` whose name, attributes, status description and events carry no control character."""
    status = span.status
    return ReadableSpan(
        name=neutral(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=neutral_attributes(span.attributes),
        events=[Event(neutral(e.name), neutral_attributes(e.attributes), e.timestamp) for e in span.events],
        links=span.links,
        kind=span.kind,
        status=Status(status.status_code, neutral(status.description)) if status.description else status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
