"""Property tests: every line the plugin prints as an expectation reads back as that expectation.

Generated expected trees (span() and job() nodes with every kind of check that has a text form) are
written as the "expected:" block writes them; the block, and each of its lines alone, must parse back
to nodes that write the same text and carry the same checks. Generated span names must survive
render() and read back as a valid expectation of the capture.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from pytest_jobtrace import assert_span_tree, job, render, span
from pytest_jobtrace._core.expect import Expected
from pytest_jobtrace._core.notation import PRESENT
from pytest_jobtrace._core.render import render_expected
from pytest_jobtrace._core.texttree import literal_pattern, parse_text_tree

# Any text at all, with a bias towards the characters the grammar gives a meaning to.
_SPECIAL = [*"[]{}=,/*#\\\"' x×\t\n\x0b\x0c\x1c\x85\u2028\u2029\u202e\u00a0\u3000│├└─", "job ", " [", " {"]
texts = st.one_of(
    st.text(max_size=12), st.lists(st.sampled_from(_SPECIAL) | st.text(max_size=3), max_size=6).map("".join)
)
names = texts.filter(bool)
patterns = st.sampled_from([r"run/.*", r"chunk_\d+", r"a b", r"(?i)order", r"[/]x", r"\/a", r"x\\", r"a{2}"]).map(
    re.compile
)
scalars = st.one_of(
    texts, st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(), st.sampled_from([float("inf")])
)
values = st.one_of(
    scalars, patterns, st.lists(st.one_of(texts, st.integers(), st.booleans()), max_size=3), st.just(PRESENT)
)
attribute_maps = st.dictionaries(texts, values, max_size=3)


@st.composite
def span_nodes(draw: Any, children: Any) -> Expected:
    status = draw(st.sampled_from([None, "ok", "error", "unset"]))
    return span(
        draw(st.one_of(st.none(), names, patterns)),
        kind=draw(st.sampled_from([None, "server", "client", "producer", "consumer", "internal"])),
        attributes=draw(st.one_of(st.none(), attribute_maps)),
        status=status,
        description=draw(st.one_of(st.none(), texts, patterns)),
        events=draw(st.lists(st.one_of(names, patterns, st.builds(_event, names, attribute_maps)), max_size=2)),
        exception=draw(st.one_of(st.none(), st.builds(_exception, st.none() | names, st.none() | texts | patterns))),
        links=draw(st.lists(st.sampled_from(["send orders", "*", "/run.*/", "/a \\[b\\]/"]), max_size=2)),
        children=draw(children),
        count=draw(st.one_of(st.none(), st.integers(0, 5))),
        exact=draw(st.sampled_from([None, True])),
        exact_attributes=draw(st.booleans()),
    )


def _event(name: str, attributes: dict[str, object]) -> dict[str, object]:
    return {"name": name, "attributes": {k: v for k, v in attributes.items() if v is not None} or None}


def _exception(type_: str | None, message: object) -> dict[str, object]:
    return {"type": type_, "message": message}


@st.composite
def job_nodes(draw: Any, children: Any) -> Expected:
    return job(
        draw(st.one_of(names, patterns)),
        queue=draw(st.one_of(st.none(), names, patterns)),
        attempts=draw(st.one_of(st.none(), st.integers(0, 9))),
        outcome=draw(st.sampled_from([None, "succeeded", "failed", "discarded", "pending"])),
        attributes=draw(st.one_of(st.none(), attribute_maps)),
        exception=draw(st.one_of(st.none(), st.builds(_exception, st.none() | names, st.none() | texts | patterns))),
        linked=draw(st.sampled_from([None, True, False])),
        children=draw(children),
        count=draw(st.one_of(st.none(), st.integers(0, 5))),
        exact=draw(st.sampled_from([None, True])),
    )


def nodes(children: Any) -> Any:
    return st.one_of(span_nodes(children), job_nodes(children))


trees = st.recursive(nodes(st.just(())), lambda kids: nodes(st.lists(kids, max_size=3)), max_leaves=8)


def _same(a: object, b: object) -> bool:
    """Checks compare equal, a pattern by its meaning (``\\/`` and ``/`` are one character to re)."""
    if isinstance(a, re.Pattern) and isinstance(b, re.Pattern):
        return re.sub(r"\\/", "/", a.pattern) == re.sub(r"\\/", "/", b.pattern) and a.flags == b.flags
    if isinstance(a, str) and isinstance(b, re.Pattern):  # a name the grammar would misread, as /regex/
        return b.fullmatch(a) is not None and b.pattern == literal_pattern(a)[1:-1]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    if hasattr(a, "__dataclass_fields__") and type(a) is type(b):
        return all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__ if f != "_key")
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(trees, min_size=1, max_size=3))
def test_every_line_of_the_expected_block_reads_back(roots: list[Expected]) -> None:
    block = render_expected(roots)
    parsed = parse_text_tree(block)
    assert render_expected(parsed) == block
    assert len(parsed) == len(roots)
    for original, read in zip(_walk(roots), _walk(parsed)):
        assert _same(_checks(original), _checks(read)), (original, read)
    for line in block.split("\n"):
        alone = line.lstrip("│├└─ ")
        (node,) = parse_text_tree(alone)
        assert node.render_line() == alone


def _walk(roots: list[Expected]) -> list[Expected]:
    order, stack = [], list(reversed(roots))
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(node.children))
    return order


def _checks(node: Expected) -> dict[str, object]:
    fields = {k: v for k, v in vars(node).items() if k not in ("children", "links", "_key")}
    fields["links"] = [getattr(link, "name", None) for link in node.links]
    fields["attributes"] = fields["attributes"] or None  # {} and None both check nothing
    return fields


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(names, st.integers(0, 2), st.sampled_from([None, "boom", "a\u2028b\x85c\u202e"])), min_size=1)
)
def test_render_reads_back_whatever_the_span_names(spans: list[tuple[str, int, str | None]]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("roundtrip")
    opened: list[Any] = []
    for at, (name, depth, description) in enumerate(spans):
        parent = opened[min(depth, len(opened)) - 1] if depth and opened else None
        started = tracer.start_span(name, context=set_span_in_context(parent) if parent else None, start_time=at + 1)
        if description is not None:
            started.set_status(Status(StatusCode.ERROR, description))
        opened.append(started)
    for started in reversed(opened):
        started.end(end_time=len(spans) + 10)
    text = render(exporter)
    assert len(text.split("\n")) == len(text.splitlines())  # nothing splitlines() would break
    assert all(line.isprintable() for line in text.split("\n"))
    assert_span_tree(text, exporter, exact=True, ordered=True)


# OpenTelemetry's attribute values: a scalar or a sequence of one scalar type.
otel_scalars = st.one_of(texts, st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans())
otel_values = st.one_of(
    otel_scalars,
    st.lists(texts, max_size=3).map(tuple),
    st.lists(st.integers(-5, 5), max_size=3).map(tuple),
    st.lists(st.floats(), max_size=3).map(tuple),
    st.lists(st.booleans(), max_size=3).map(tuple),
)
otel_attributes = st.dictionaries(names, otel_values, max_size=4)
events = st.lists(st.tuples(names, otel_attributes), max_size=2)
exceptions = st.lists(st.tuples(st.sampled_from([ValueError, KeyError, OSError]), texts), max_size=2)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(names, st.integers(0, 2), otel_attributes, events, exceptions), min_size=1, max_size=4))
def test_the_snapshot_form_reads_back_whatever_the_details(
    spans: list[tuple[str, int, dict[str, Any], list[tuple[str, dict[str, Any]]], list[tuple[type, str]]]],
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("roundtrip")
    opened: list[Any] = []
    for at, (name, depth, attributes, span_events, raised) in enumerate(spans):
        parent = opened[min(depth, len(opened)) - 1] if depth and opened else None
        started = tracer.start_span(
            name, context=set_span_in_context(parent) if parent else None, start_time=at + 1, attributes=attributes
        )
        for event_name, event_attributes in span_events:
            started.add_event(event_name, event_attributes)
        for error, message in raised:
            started.record_exception(error(message))
        opened.append(started)
    for started in reversed(opened):
        started.end(end_time=len(spans) + 10)
    text = render(exporter, details=True)
    assert len(text.split("\n")) == len(text.splitlines())
    assert all(line.isprintable() for line in text.split("\n"))
    assert_span_tree(text, exporter, exact=True, ordered=True)
    lines = [line.lstrip("│├└─ ") for line in text.split("\n") if line]
    assert [node.render_line() for node in _walk(parse_text_tree(text))] == lines
