"""Shared fixtures: a private tracer per test whose spans land in an in-memory exporter."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.util import find_spec
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

# What the pytester runs add to their command line (pytester clears PYTEST_ADDOPTS, this sets it again).
# They run in file order: their output is asserted line by line, and several show what one test leaves to
# the next. The outer run is what pytest-randomly shuffles. pytest-asyncio warns in every run of a
# project that has not chosen a fixture loop scope; these small projects choose one, as users do.
INNER_ADDOPTS = "-p no:randomly" + (
    " -o asyncio_default_fixture_loop_scope=function" if find_spec("pytest_asyncio") else ""
)


@pytest.fixture(autouse=True)
def _inner_runs_addopts(request: pytest.FixtureRequest) -> None:
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # first: it clears PYTEST_ADDOPTS when it starts
        request.getfixturevalue("monkeypatch").setenv("PYTEST_ADDOPTS", INNER_ADDOPTS)


T0 = 1_700_000_000 * 10**9
SECOND = 10**9


@pytest.fixture(name="exporter")
def _exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture(name="spans")
def _spans() -> InMemorySpanExporter:
    """The exporter behind ``provider`` (for tests that pass a provider to the code under test)."""
    return InMemorySpanExporter()


@pytest.fixture(name="provider")
def _provider(spans: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider
    provider.shutdown()


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
