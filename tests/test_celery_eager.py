"""The eager-mode comparison in docs/celery.md, measured: each scenario under ``task_always_eager`` against
``celery_jobs`` (whose trees equal a real worker's: test_celery_fidelity.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery_scenarios import SCENARIOS, Scenario, make_app, tree_lines
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pytest_jobtrace.celery import CeleryJobs

DOC = Path(__file__).parent.parent / "docs" / "celery.md"


def spans_of(scenario: Scenario, run: Callable[[Celery, TracerProvider], None]) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    CeleryInstrumentor().instrument(tracer_provider=provider, use_span_links=scenario.span_links)
    try:
        run(make_app(provider.get_tracer("shop")), provider)
    finally:
        CeleryInstrumentor().uninstrument()
    return list(exporter.get_finished_spans())


def eager(scenario: Scenario) -> Callable[[Celery, TracerProvider], None]:
    def run(app: Celery, provider: TracerProvider) -> None:
        app.conf.task_always_eager = True
        try:
            scenario.trigger(app, provider)
        finally:
            # Eager mode still publishes send_task to the broker: the memory transport's queues are
            # process-wide, and a real worker started later in this process would run the leftover.
            app.control.purge()

    return run


def with_celery_jobs(scenario: Scenario) -> Callable[[Celery, TracerProvider], None]:
    def run(app: Celery, provider: TracerProvider) -> None:
        with CeleryJobs(app, expect_failures=True) as jobs:
            scenario.trigger(app, provider)
            jobs.drain()

    return run


def comparison_table() -> Iterator[str]:
    yield "| scenario | spans (worker, `celery_jobs`) | spans (eager) | same tree in eager mode |"
    yield "| --- | --- | --- | --- |"
    same = eager_total = total = 0
    for scenario in SCENARIOS:
        ours = spans_of(scenario, with_celery_jobs(scenario))
        theirs = spans_of(scenario, eager(scenario))
        equal = tree_lines(ours) == tree_lines(theirs)
        same, eager_total, total = same + equal, eager_total + len(theirs), total + len(ours)
        yield f"| {scenario.name} | {len(ours)} | {len(theirs)} | {'yes' if equal else 'no'} |"
    yield f"| **all {len(SCENARIOS)}** | **{total}** | **{eager_total}** | **{same} of {len(SCENARIOS)}** |"


# Eager mode warns that send_task publishes to the broker anyway: that is part of what is measured.
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_the_eager_comparison_in_the_docs_is_measured() -> None:
    table = "\n".join(comparison_table())
    assert table in DOC.read_text(), f"docs/celery.md must hold this table, as measured:\n{table}"
