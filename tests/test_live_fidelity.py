"""Fidelity in both modes: each Celery and RQ scenario gives the same tree in-process and on a live worker.

Each test runs its scenario twice with the same test process instrumentation: in-process (``CeleryJobs`` /
``RQRuntime``, drained) and through the session's live worker (``live_celery_worker`` with the prefork pool,
``live_rq_worker`` with RQ's forking worker, on a leased Redis database), waited for with ``settle()``.
The normalised trees (ids, hosts and times left out; celery_scenarios.tree_lines, rq_fidelity.normalised)
must be equal. A second group runs scenarios through ``@pytest.mark.jobtrace_modes`` with one expectation.
They need the Redis at 127.0.0.1:6379: without one they skip, unless JOBTRACE_REQUIRE_REDIS=1 (CI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("celery")
pytest.importorskip("rq")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

import celery_live_app
import rq_fidelity
import rq_tasks
from celery_scenarios import DISCARDED, SCENARIOS, Scenario, tree_lines
from live_helpers import require_redis
from opentelemetry import context as otel_context
from opentelemetry import trace
from rq import Queue

from pytest_jobtrace import JobSpans
from pytest_jobtrace.celery import CeleryJobs
from pytest_jobtrace.rq._drain import RQRuntime


@pytest.fixture(autouse=True)
def _redis() -> None:
    require_redis()


@pytest.fixture(name="celery_app")
def _celery_app() -> object:
    return celery_live_app.app


@pytest.fixture(autouse=True)
def _own_context() -> Iterator[None]:
    # Each side runs in a context of its own, given back whatever it leaves attached (see test_celery_fidelity).
    token = otel_context.attach(otel_context.Context())
    yield
    otel_context.detach(token)


@pytest.fixture(name="span_links")
def _span_links(request: pytest.FixtureRequest) -> Iterator[None]:
    """The scenario's instrumentation in the test process (``use_span_links``): the live worker follows it."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    scenario = request.node.callspec.params["scenario"]
    if not scenario.span_links:
        yield
        return
    CeleryInstrumentor().instrument(use_span_links=True)
    try:
        yield
    finally:
        CeleryInstrumentor().uninstrument()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name.replace(" ", "_") for s in SCENARIOS])
def test_celery_scenario_gives_one_tree_in_both_modes(
    scenario: Scenario, job_spans: JobSpans, request: pytest.FixtureRequest, span_links: None
) -> None:
    app = celery_live_app.app
    provider = trace.get_tracer_provider()
    with CeleryJobs(app, expect_failures=scenario.failures) as jobs:
        scenario.trigger(app, provider)  # type: ignore[arg-type]
        jobs.drain()
    in_process = tree_lines(job_spans.spans)
    job_spans.clear()

    live = request.getfixturevalue("live_celery_worker")
    scenario.trigger(app, provider)  # type: ignore[arg-type]
    # Reject(requeue=True) included: the rejected attempt's span says REJECTED as a final rejection's does,
    # and the worker's requeue verdict has settle() wait for the redelivered attempt.
    live.settle(expect_failures=scenario.failures)
    on_the_worker = tree_lines(job_spans.spans)

    assert len(on_the_worker) == scenario.spans, "\n".join(on_the_worker)
    assert on_the_worker == in_process


@pytest.mark.parametrize("scenario", DISCARDED, ids=[s.name.replace(" ", "_") for s in DISCARDED])
def test_a_celery_task_the_worker_discards_gives_one_tree_in_both_modes_and_is_not_waited_for(
    scenario: Scenario, job_spans: JobSpans, request: pytest.FixtureRequest
) -> None:
    app = celery_live_app.app
    provider = trace.get_tracer_provider()
    with CeleryJobs(app) as jobs:
        scenario.trigger(app, provider)  # type: ignore[arg-type]
        jobs.drain()
    in_process = tree_lines(job_spans.spans)
    job_spans.clear()

    live = request.getfixturevalue("live_celery_worker")
    scenario.trigger(app, provider)  # type: ignore[arg-type]
    live.settle(timeout=30)  # ended by the worker's discard verdict; without it, a timeout: no run span comes
    on_the_worker = tree_lines(job_spans.spans)

    assert on_the_worker == in_process
    assert len(on_the_worker) == scenario.spans == 1, "\n".join(on_the_worker)
    (job,) = job_spans.jobs()
    assert (job.outcome, job.attempts) == ("pending", [])


def _rq_in_process(job_spans: JobSpans, scenario: Callable[[Queue], None]) -> str:
    rq_tasks.CALLS.clear()
    with RQRuntime() as runtime:
        with rq_fidelity.tracer.start_as_current_span("test"):
            scenario(runtime.queue())
        runtime.drain(expect_failures=True)
    return rq_fidelity.normalised(job_spans.spans)


@pytest.mark.parametrize("scenario", rq_fidelity.SCENARIOS, ids=lambda s: s.__name__)
def test_rq_scenario_gives_one_tree_in_both_modes(
    scenario: Callable[[Queue], None], job_spans: JobSpans, request: pytest.FixtureRequest
) -> None:
    in_process = _rq_in_process(job_spans, scenario)
    job_spans.clear()

    live = request.getfixturevalue("live_rq_worker")
    with rq_fidelity.tracer.start_as_current_span("test"):
        scenario(live.queue())
    live.settle(expect_failures=True)
    on_the_worker = rq_fidelity.normalised(job_spans.spans)

    assert "CONSUMER" in on_the_worker  # the worker ran jobs at all
    assert on_the_worker == in_process


def test_a_queued_rq_job_whose_ttl_runs_out_while_the_worker_is_busy_is_not_waited_for(
    job_spans: JobSpans, request: pytest.FixtureRequest
) -> None:
    """RQ's worker takes the stale job's id off its queue, finds no job and drops it without a word: the live
    worker tells wait(), which returns instead of timing out (``never delivered``). Live only: in-process, a
    job's sleep takes no virtual time, so the job would not go stale (tests/test_rq_worker.py covers ttl
    on the virtual clock)."""
    import live_fault_jobs

    live = request.getfixturevalue("live_rq_worker")
    queue = live.queue()
    queue.enqueue(live_fault_jobs.rq_nap, 2)  # the one worker is busy for 2 s
    stale = queue.enqueue(rq_tasks.hello, "stale", ttl=1)
    live.settle(timeout=20)  # without the worker's report: a timeout naming the stale job never delivered

    views = {view.id: view for view in job_spans.jobs()}
    assert (views[stale.id].outcome, views[stale.id].attempts) == ("pending", [])
    assert [view.outcome for view in views.values() if view.id != stale.id] == ["succeeded"]


def test_an_rq_job_with_span_links_gives_one_tree_in_both_modes(
    job_spans: JobSpans, request: pytest.FixtureRequest
) -> None:
    """The live worker instruments as the test process does: with use_span_links, its process span starts a
    trace of its own, linked to the send (the worker is started anew for it)."""
    from pytest_jobtrace.rq.instrumentation import RQInstrumentor

    RQInstrumentor().instrument(use_span_links=True)
    try:
        in_process = _rq_in_process(job_spans, rq_fidelity.retries_then_success)
        job_spans.clear()
        live = request.getfixturevalue("live_rq_worker")
        with rq_fidelity.tracer.start_as_current_span("test"):
            rq_fidelity.retries_then_success(live.queue())
        live.settle(expect_failures=True)
        on_the_worker = rq_fidelity.normalised(job_spans.spans)
    finally:
        RQInstrumentor().uninstrument()
    assert "link" in in_process  # the process spans are linked, not children
    assert on_the_worker == in_process


def test_the_comparison_tells_a_different_tree_apart(job_spans: JobSpans, request: pytest.FixtureRequest) -> None:
    """The equality above can fail: a live run of another scenario is another tree."""
    in_process = _rq_in_process(job_spans, rq_fidelity.retries_then_success)
    job_spans.clear()
    live = request.getfixturevalue("live_rq_worker")
    with rq_fidelity.tracer.start_as_current_span("test"):
        rq_fidelity.retries_exhausted(live.queue())
    live.settle(expect_failures=True)
    assert rq_fidelity.normalised(job_spans.spans) != in_process


# -- one expectation, two modes ---------------------------------------------------------------------


@pytest.mark.jobtrace_modes("in_process", "live")
@pytest.mark.jobtrace(expect_failures=True)
def test_a_retried_rq_job_reads_the_same_in_both_modes(job_spans: JobSpans, rq_runner: object) -> None:
    rq_tasks.CALLS.clear()  # in-process, flaky counts its calls in this process
    with rq_fidelity.tracer.start_as_current_span("test"):
        rq_fidelity.retries_then_success(rq_runner.queue())  # type: ignore[attr-defined]
    rq_runner.settle()  # type: ignore[attr-defined]
    job_spans.assert_span_tree(
        """
        test
        └── job rq_tasks.flaky [queue "default", attempts 3, outcome "succeeded"]
        """
    )


@pytest.mark.jobtrace_modes("in_process", "live")
def test_a_celery_chain_reads_the_same_in_both_modes(job_spans: JobSpans, celery_runner: object) -> None:
    from celery import chain

    add = celery_live_app.app.tasks["shop.add"]
    with trace.get_tracer("shop").start_as_current_span("checkout"):
        chain(add.s(1, 2), add.s(3)).apply_async()
    celery_runner.settle()  # type: ignore[attr-defined]
    job_spans.assert_span_tree(
        """
        checkout
        └── job shop.add [attempts 1, outcome "succeeded"]
            └── job shop.add [attempts 1, outcome "succeeded"]
        """,
        exact=True,
    )
