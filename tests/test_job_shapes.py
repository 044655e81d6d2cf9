"""The job model against the shapes other job systems give their traces (through the adapter protocol).

A real Celery worker re-publishes a retry from inside the failing run span, so attempts nest
(run -> apply_async -> run); with span links each attempt starts a trace linked to the publish that
caused it. A fake adapter recognises hand-made spans of those shapes, so that ``job()`` and ``jobs()``
are held to the contract every adapter relies on, independently of any job system.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import MakeSpan
from helpers import headline, mismatch
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode

from pytest_jobtrace import assert_span_tree, job, render, span
from pytest_jobtrace._core.forest import SpanForest
from pytest_jobtrace._jobs.views import JobIndex
from pytest_jobtrace.adapters import JobSpanInfo, adapters, register_adapter


class FakeQueueAdapter:
    """Recognises spans carrying ``fakeq.*`` attributes; runs nothing."""

    name = "fakeq"
    fixture_name = "fakeq_jobs"
    extra = None
    options = ()
    volatile_attributes = ()
    undrained_hint = None

    def recognise(self, span: ReadableSpan) -> JobSpanInfo | None:
        attributes = span.attributes or {}
        role = attributes.get("fakeq.role")
        if role not in ("send", "process"):
            return None
        return JobSpanInfo(
            system="fakeq",
            role=role,
            job_name=str(attributes["fakeq.task"]),
            job_id=str(attributes["fakeq.id"]),
            queue="celery",
            attempt=None,
            attempt_outcome=attributes.get("fakeq.outcome"),  # type: ignore[arg-type]
            retry_reason=attributes.get("fakeq.reason"),  # type: ignore[arg-type]
        )

    def activate(self, context: Any) -> Any:
        raise NotImplementedError("recognition only")


@pytest.fixture(autouse=True, scope="module")
def _fake_adapter() -> None:
    register_adapter(FakeQueueAdapter())


def publish(make_span: MakeSpan, parent: Span | None, at: int, task: str = "shop.tasks.charge") -> Span:
    attributes = {"fakeq.role": "send", "fakeq.task": task, "fakeq.id": "t-1"}
    return make_span(f"apply_async/{task}", parent, at=at, kind=SpanKind.PRODUCER, attributes=attributes)


def run(make_span: MakeSpan, parent: Span | None, at: int, outcome: str, links: tuple[Span, ...] = ()) -> Span:
    attributes = {"fakeq.role": "process", "fakeq.task": "shop.tasks.charge", "fakeq.id": "t-1"}
    attributes["fakeq.outcome"] = outcome
    if outcome == "retried":
        attributes["fakeq.reason"] = "GatewayTimeout: gateway timed out"
    status = StatusCode.ERROR if outcome in ("retried", "failed") else None
    return make_span(
        "run/shop.tasks.charge",
        parent,
        at=at,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        status=status,
        links=links,
    )


@pytest.fixture(name="nested")
def _nested(make_span: MakeSpan, exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """POST /pay -> apply_async -> run (retried) -> apply_async (retry) -> run (succeeded) -> charge."""
    request = make_span("POST /pay", at=0, kind=SpanKind.SERVER)
    first = run(make_span, publish(make_span, request, at=1), at=2, outcome="retried")
    second = run(make_span, publish(make_span, first, at=3), at=4, outcome="succeeded")
    make_span("charge", second, at=5)
    return exporter


@pytest.fixture(name="linked")
def _linked(make_span: MakeSpan, exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """Each run starts a trace of its own, linked to the publish that caused it."""
    request = make_span("POST /pay", at=0, kind=SpanKind.SERVER)
    sent = publish(make_span, request, at=1)
    first = run(make_span, None, at=2, outcome="retried", links=(sent,))
    resent = publish(make_span, first, at=3)
    second = run(make_span, None, at=4, outcome="succeeded", links=(resent,))
    make_span("charge", second, at=5)
    return exporter


def test_nested_retries_are_one_job(nested: InMemorySpanExporter) -> None:
    assert_span_tree(
        span("POST /pay", children=[job("charge", attempts=2, outcome="succeeded", linked=False, children=["charge"])]),
        nested,
    )
    [charge] = JobIndex(SpanForest(nested.get_finished_spans())).jobs
    assert charge.name == "shop.tasks.charge"
    assert [s.name for s in charge.attempts] == ["run/shop.tasks.charge"] * 2
    assert charge.publish is not None
    assert charge.publish.start_time == min(s.start_time or 0 for s in nested.get_finished_spans()) + 10**9
    assert charge.retry_reasons == ["GatewayTimeout: gateway timed out"]


def test_nested_retries_fail_in_job_terms(nested: InMemorySpanExporter) -> None:
    message = mismatch(job("charge", attempts=3), nested)
    assert headline(message).endswith(
        "at 'POST /pay' > 'apply_async/shop.tasks.charge': job 'charge': expected 3 attempts, found 2 "
        "(attempt 1 retried, attempt 2 succeeded)"
    )
    message = mismatch(job("charge", linked=True), nested)
    assert "expected attempt 1 in its own trace linked to the enqueue (linked=True), but it is a child of" in (
        headline(message)
    )


def test_nested_retries_fold_to_one_line(nested: InMemorySpanExporter) -> None:
    assert render(nested, "jobs") == "\n".join(
        [
            "POST /pay [server]",
            '└── job shop.tasks.charge [queue "celery", attempts 2, outcome "succeeded"]',
            "    └── charge",
        ]
    )


def test_linked_attempts_are_one_job_across_three_traces(linked: InMemorySpanExporter) -> None:
    assert render(linked).count("\n\n") == 2  # three traces
    assert_span_tree(span("POST /pay", children=[job("charge", attempts=2, linked=True, children=["charge"])]), linked)
    message = mismatch(job("charge", linked=False), linked)
    assert "expected attempt 1 to continue the enqueuing trace (linked=False), but it is in a new trace linked" in (
        headline(message)
    )


def test_adapters_are_checked_and_listed() -> None:
    assert list(adapters())[:1] == ["builtin"]
    assert "fakeq" in adapters()
    with pytest.raises(TypeError, match="is not a job adapter: it lacks name, fixture_name, extra, options, recognise"):
        register_adapter(object())  # type: ignore[arg-type]

    class OldStyle:  # the protocol before adapters named their fixture and options
        name = "oldstyle"

        def recognise(self, span: ReadableSpan) -> None:
            return None

        def activate(self, options: Any) -> Any:
            raise NotImplementedError

    with pytest.raises(
        TypeError, match=r"it lacks fixture_name, extra, options, volatile_attributes, undrained_hint \(an adapter has"
    ):
        register_adapter(OldStyle())  # type: ignore[arg-type]
    assert "oldstyle" not in adapters()
    with pytest.raises(TypeError):
        adapters()["other"] = FakeQueueAdapter()  # type: ignore[index]


@pytest.mark.parametrize("details", [False, True], ids=["plain", "details"])
@pytest.mark.parametrize("shape", ["nested", "linked"])
def test_the_folded_form_reads_back_as_the_expectation(
    request: pytest.FixtureRequest, shape: str, details: bool
) -> None:
    spans: InMemorySpanExporter = request.getfixturevalue(shape)
    folded = render(spans, "jobs", details=details)
    assert_span_tree(folded, spans, exact=True, ordered=True)
    # The job line is the job() that matches it: one attempt fewer, and it names the difference.
    fewer = folded.replace("attempts 2", "attempts 1")
    with pytest.raises(AssertionError, match=r"job 'charge': expected 1 attempt, found 2 \(attempt 1 retried"):
        assert_span_tree(fewer, spans, exact=True)
