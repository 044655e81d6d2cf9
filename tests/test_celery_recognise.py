"""Recognition of opentelemetry-instrumentation-celery's spans, without importing Celery."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import SECOND, T0, MakeSpan
from opentelemetry.trace import SpanKind

from pytest_jobtrace.adapters import JobSpanInfo, adapters
from pytest_jobtrace.celery import ADAPTER

RUN = {"celery.action": "run", "celery.task_name": "shop.process_order", "messaging.message.id": "t1"}


def test_the_adapter_is_registered_by_its_entry_point() -> None:
    assert adapters()["celery"] is ADAPTER
    assert (ADAPTER.fixture_name, ADAPTER.extra) == ("celery_jobs", "celery")
    assert [option.name for option in ADAPTER.options] == [
        "celery_app",
        "expect_failures",
        "celery_live_app",
        "celery_live_broker_url",
        "celery_live_result_backend",
        "celery_live_pool",
        "celery_live_concurrency",
        "celery_live_loglevel",
        "celery_live_queues",
        "live_workers",
        "live_timeout",
        "live_receiver",
    ]


def test_a_publish_span_is_where_the_job_is_enqueued(make_span: MakeSpan) -> None:
    span = make_span(
        "apply_async/shop.process_order",
        kind=SpanKind.PRODUCER,
        attributes={**RUN, "celery.action": "apply_async", "messaging.destination": "celery"},
    )
    assert ADAPTER.recognise(span) == JobSpanInfo("celery", "send", "shop.process_order", "t1", "celery")


@pytest.mark.parametrize(
    ("attributes", "attempt", "outcome", "reason"),
    [
        ({"celery.state": "SUCCESS"}, 1, "succeeded", None),
        ({"celery.state": "RETRY", "celery.retry.reason": "Retry in 1s: boom"}, 1, "retried", "Retry in 1s: boom"),
        ({"celery.state": "FAILURE", "celery.retries": 2}, 3, "failed", None),
        ({"celery.state": "IGNORED"}, 1, "discarded", None),
        ({"celery.state": "REJECTED"}, 1, "discarded", None),
        ({"celery.state": "REVOKED"}, 1, "discarded", None),
        ({}, 1, None, None),  # still running: the instrumentation sets the state at postrun
    ],
)
def test_a_run_span_is_an_attempt(
    make_span: MakeSpan, attributes: dict[str, object], attempt: int, outcome: str | None, reason: str | None
) -> None:
    span = make_span("run/shop.process_order", kind=SpanKind.CONSUMER, attributes={**RUN, **attributes})
    info = ADAPTER.recognise(span)
    assert info is not None
    assert (info.role, info.job_name, info.job_id) == ("process", "shop.process_order", "t1")
    assert (info.attempt, info.attempt_outcome, info.retry_reason) == (attempt, outcome, reason)


@pytest.mark.parametrize(
    ("reason", "due"),
    [
        ("Retry in 5s: ValueError('boom')", 5 * SECOND + SECOND // 2),  # from the attempt's end (T0 + 0.5 s)
        ("Retry in 0.25s", SECOND // 2 + SECOND // 4),
        ("Retry at 2023-11-14 22:13:30+00:00: ValueError('boom')", 10 * SECOND),
        ("Retry at 2023-11-14 22:13:30: naive is UTC", 10 * SECOND),
        ("card declined, try later", None),  # the task's own message: no time in it
        ("Retry at soon", None),
    ],
)
def test_a_retry_reason_gives_when_the_retry_is_due(make_span: MakeSpan, reason: str, due: int | None) -> None:
    attributes = {**RUN, "celery.state": "RETRY", "celery.retry.reason": reason}
    info = ADAPTER.recognise(make_span("run/shop.process_order", kind=SpanKind.CONSUMER, attributes=attributes))
    assert info is not None
    assert info.retry_due == (None if due is None else T0 + due)


@pytest.mark.parametrize(
    ("name", "attributes"),
    [
        ("run/shop.process_order", {"celery.task_name": "shop.process_order"}),  # no celery.action
        ("process orders", RUN),  # not the instrumentation's name
        ("run/shop.process_order", {**RUN, "celery.action": "other"}),
        ("GET /orders", {}),
    ],
)
def test_other_spans_are_not_celery_jobs(make_span: MakeSpan, name: str, attributes: dict[str, object]) -> None:
    assert ADAPTER.recognise(make_span(name, attributes=attributes)) is None


def test_recognising_does_not_import_celery() -> None:
    code = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from pytest_jobtrace.adapters import adapters
attributes = {"celery.action": "run", "celery.task_name": "x"}
span = TracerProvider().get_tracer("t").start_span("run/x", attributes=attributes)
span.end()
assert adapters()["celery"].recognise(span).job_name == "x"
assert "celery" not in sys.modules and "kombu" not in sys.modules, sorted(sys.modules)
"""
    subprocess.run([sys.executable, "-c", code], check=True)
