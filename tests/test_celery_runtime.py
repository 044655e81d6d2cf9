"""``CeleryJobs`` used directly: the virtual clock, results, failures, errors, and what close() restores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from celery import Celery
from celery import _state as celery_state
from celery.worker import state as worker_state
from celery_scenarios import PaymentError, make_app
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pytest_jobtrace import JobChainError, JobFailedError
from pytest_jobtrace.celery import CeleryJobs, UnregisteredTaskError


@pytest.fixture(name="app")
def _app(provider: TracerProvider) -> Celery:
    app = make_app(provider.get_tracer("shop"))

    @app.task(name="shop.forever", shared=False)
    def forever(n: int) -> None:
        forever.delay(n + 1)

    return app


@pytest.fixture(name="jobs")
def _jobs(app: Celery, provider: TracerProvider) -> Iterator[CeleryJobs]:
    with CeleryJobs(app, provider=provider) as jobs:
        yield jobs


def task(app: Celery, name: str) -> Any:
    return app.tasks[name]


def test_countdown_eta_and_immediate_tasks_run_in_due_order_on_the_virtual_clock(app: Celery, jobs: CeleryJobs) -> None:
    add = task(app, "shop.add")
    add.apply_async((1, 1), countdown=30)
    add.apply_async((2, 2), eta=datetime.now(timezone.utc) + timedelta(seconds=10))
    add.delay(3, 3)
    assert [p.describe() for p in jobs.pending] == ["shop.add(3, 3)", "shop.add(2, 2)", "shop.add(1, 1)"]
    assert [round(p.due) for p in jobs.pending] == [0, 10, 30]
    runs = jobs.drain()
    assert [run.describe() for run in runs] == ["shop.add(3, 3)", "shop.add(2, 2)", "shop.add(1, 1)"]
    assert 29 < jobs.clock.now <= 30


def test_retries_wait_on_the_virtual_clock_and_results_reach_the_backend(app: Celery, jobs: CeleryJobs) -> None:
    result = task(app, "shop.process_order").delay(42)
    (run,) = jobs.drain()
    assert (run.verdict, run.attempts) == ("succeeded", 3)
    assert jobs.clock.now == pytest.approx(0.2, abs=0.05)  # two retries with countdown=0.1
    assert result.get(timeout=1) == 42


def test_perform_one_stops_between_attempts(app: Celery, jobs: CeleryJobs) -> None:
    task(app, "shop.process_order").delay(42)
    first = jobs.perform_one()
    assert first is not None
    assert (first.verdict, first.attempts, first.final) == ("retried", 1, False)
    assert [(p.name, p.attempt) for p in jobs.pending] == [("shop.process_order", 2)]
    jobs.drain()
    with pytest.raises(LookupError, match=r"^CeleryJobs.perform_one\(\): no job is pending$"):
        jobs.perform_one()


def test_a_task_that_fails_for_good_makes_drain_raise(app: Celery, jobs: CeleryJobs) -> None:
    task(app, "shop.charge").delay(7)
    with pytest.raises(JobFailedError) as excinfo:
        jobs.drain()
    message = str(excinfo.value)
    assert message.startswith("CeleryJobs.drain(): 1 job failed:\n  shop.charge(7) id=")
    assert "failed after 1 attempt: PaymentError: card declined for order 7" in message
    assert "pass drain(expect_failures=True)" in message
    assert isinstance(excinfo.value.__cause__, PaymentError)
    assert [run.name for run in jobs.failed] == ["shop.charge"]


def test_expected_failures_do_not_raise(app: Celery, provider: TracerProvider) -> None:
    with CeleryJobs(app, provider=provider, expect_failures=True) as jobs:
        task(app, "shop.sync_stock").delay()
        (run,) = jobs.drain()
    assert (run.verdict, run.attempts, type(run.exception)) == ("failed", 3, ConnectionError)


def test_an_unregistered_task_is_an_error_naming_it_and_the_app(app: Celery, jobs: CeleryJobs) -> None:
    app.send_task("shop.refund", args=(1,))
    with pytest.raises(UnregisteredTaskError) as excinfo:
        jobs.drain()
    message = str(excinfo.value)
    assert "task 'shop.refund' is not registered on the Celery app 'shop'" in message
    assert "Registered tasks: shop.add, shop.charge," in message
    assert not jobs.pending


def test_a_chain_of_tasks_that_does_not_end_is_reported(app: Celery, jobs: CeleryJobs) -> None:
    task(app, "shop.forever").delay(0)
    with pytest.raises(JobChainError) as excinfo:
        jobs.drain(max_jobs=5)
    lines = str(excinfo.value).splitlines()
    assert lines[0] == (
        "CeleryJobs.drain() performed max_jobs=5 attempts; this chain of jobs does not end"
        " (each enqueued by the one before it):"
    )
    (waiting,) = jobs.pending
    assert lines[-3] == f"  -> forever(id={waiting.task_id[:8]})  <- next to run"
    assert lines[-2:] == [
        "Attempts performed: forever x5",
        "If it does end, raise the bound: CeleryJobs.drain(max_jobs=N).",
    ]


def test_only_drains_the_matching_tasks(app: Celery, jobs: CeleryJobs) -> None:
    task(app, "shop.add").delay(1, 2)
    task(app, "shop.child").delay(1)
    assert [run.name for run in jobs.drain(only="child")] == ["shop.child"]
    assert [p.name for p in jobs.pending] == ["shop.add"]
    assert [run.name for run in jobs.drain(only="shop.add")] == ["shop.add"]


def test_each_message_runs_in_an_empty_context_like_on_a_worker(
    app: Celery, jobs: CeleryJobs, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    with provider.get_tracer("test").start_as_current_span("test body") as outer:
        task(app, "shop.add").delay(1, 2)
        jobs.drain()
    spans = {span.name: span for span in spans.get_finished_spans()}
    run, publish = spans["run/shop.add"], spans["apply_async/shop.add"]
    assert publish.parent is not None
    assert publish.parent.span_id == outer.get_span_context().span_id
    assert run.parent is not None
    assert run.parent.span_id == publish.context.span_id


def test_close_restores_the_app_celery_state_and_the_instrumentation(app: Celery, provider: TracerProvider) -> None:
    current = celery_state._tls.current_app
    requests, total = dict(worker_state.requests), dict(worker_state.total_count)
    assert not CeleryInstrumentor().is_instrumented_by_opentelemetry
    with CeleryJobs(app, provider=provider) as jobs:
        assert jobs.instrumented
        assert celery_state._tls.current_app is app
        task(app, "shop.add").delay(1, 2)
        jobs.drain()
        assert task(app, "shop.add").__trace__ is not None
        assert worker_state.total_count["shop.add"] >= 1
    assert not CeleryInstrumentor().is_instrumented_by_opentelemetry
    assert "producer_or_acquire" not in vars(app)
    assert celery_state._tls.current_app is current
    assert (dict(worker_state.requests), dict(worker_state.total_count)) == (requests, total)
    assert task(app, "shop.add").__trace__ is None


def test_an_existing_instrumentation_is_kept(app: Celery, provider: TracerProvider) -> None:
    CeleryInstrumentor().instrument(tracer_provider=provider)
    try:
        with CeleryJobs(app, provider=provider) as jobs:
            assert not jobs.instrumented
        assert CeleryInstrumentor().is_instrumented_by_opentelemetry
    finally:
        CeleryInstrumentor().uninstrument()


def test_opening_twice_is_an_error_and_close_is_idempotent(app: Celery) -> None:
    jobs = CeleryJobs(app)
    assert "producer_or_acquire" not in vars(app)  # nothing changes before open()
    with jobs, pytest.raises(RuntimeError, match="already open"):
        jobs.open()
    jobs.close()
    assert "producer_or_acquire" not in vars(app)


def test_ignored_and_requeued_tasks(app: Celery, jobs: CeleryJobs) -> None:
    task(app, "shop.skip").delay()
    (ignored,) = jobs.drain()
    assert (ignored.verdict, ignored.final) == ("ignored", True)
    task(app, "shop.import_file").delay()
    first = jobs.perform_one()
    assert first is not None
    assert (first.verdict, first.final) == ("requeued", False)
    assert [p.name for p in jobs.pending] == ["shop.import_file"]  # delivered again, as a broker does
    (done,) = jobs.drain()
    assert (done.verdict, done.attempts) == ("succeeded", 2)


def test_a_chain_error_leaves_the_next_message_pending_and_drains_resume(app: Celery, jobs: CeleryJobs) -> None:
    assert jobs.chain_error is None
    task(app, "shop.forever").delay(0)
    for _ in range(2):
        with pytest.raises(JobChainError) as raised:
            jobs.drain(max_jobs=3)
        assert jobs.chain_error is raised.value  # its message listed what is pending: teardown does not again
        assert [p.describe() for p in jobs.pending][:1] == [f"shop.forever({len(jobs.runs)})"]
