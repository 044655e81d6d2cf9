"""Shared fixtures: a private tracer per test whose spans land in an in-memory exporter."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

T0 = 1_700_000_000 * 10**9
SECOND = 10**9


@pytest.fixture(name="exporter")
def _exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture(name="tracer")
def _tracer(exporter: InMemorySpanExporter) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("tests")
    provider.shutdown()


MakeSpan = Callable[..., Span]


@pytest.fixture(name="make_span")
def _make_span(tracer: Tracer) -> MakeSpan:
    """Start and end one span at second ``at`` (so sibling order is explicit), under ``parent``."""

    def make(
        name: str,
        parent: Span | None = None,
        *,
        at: int = 0,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        status: StatusCode | tuple[StatusCode, str] | None = None,
        events: Sequence[str | tuple[str, Mapping[str, Any]]] = (),
        exception: BaseException | None = None,
        links: Sequence[Span] = (),
    ) -> Span:
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = tracer.start_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            links=[Link(target.get_span_context()) for target in links],
            start_time=T0 + at * SECOND,
        )
        for event in events:
            event_name, event_attrs = (event, None) if isinstance(event, str) else event
            span.add_event(event_name, event_attrs)
        if exception is not None:
            span.record_exception(exception)
        if status is not None:
            code, description = status if isinstance(status, tuple) else (status, None)
            span.set_status(Status(code, description))
        span.end(end_time=T0 + at * SECOND + SECOND // 2)
        return span

    return make
