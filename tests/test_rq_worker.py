"""The worker rq_jobs drains with: the queue's serializer and job class, the user's worker class and options,
and SIGALRM left as it was (RQ's job timeout takes it over on the main thread)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("rq")
pytest.importorskip("fakeredis")

from rq import SimpleWorker, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from pytest_jobtrace import JobSpans, assert_span_tree, job
from pytest_jobtrace.rq._drain import RQRuntime

SEEN: list[Any] = []


def echo(value: Any) -> Any:
    SEEN.append((value, os.getpid()))
    return value


def fail() -> None:
    raise LookupError("no such order")


class AuditedJob(Job):
    """A job class of the user's: it notes every job it performs."""

    def perform(self) -> Any:
        SEEN.append(("audited", self.id))
        return super().perform()


class NotingWorker(SimpleWorker):
    def handle_job_success(self, job: Any, queue: Any, started_job_registry: Any, execution: Any = None) -> None:
        SEEN.append(("success", job.id))
        super().handle_job_success(job, queue, started_job_registry, execution)


class ForkingWorker(Worker):
    def handle_job_success(self, job: Any, queue: Any, started_job_registry: Any, execution: Any = None) -> None:
        SEEN.append(("forking success", job.id))
        super().handle_job_success(job, queue, started_job_registry, execution)


@pytest.fixture(name="runtime")
def _runtime(job_spans: JobSpans) -> Iterator[RQRuntime]:
    SEEN.clear()
    with RQRuntime() as runtime:
        yield runtime


@pytest.fixture(name="alarm")
def _alarm() -> Iterator[Any]:
    """A SIGALRM handler and a pending timer, as pytest-timeout's signal method leaves them during a test."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise AssertionError("the test's own timer fired")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 300)
    try:
        yield on_alarm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_drain_gives_back_the_sigalrm_handler_and_timer(runtime: RQRuntime, alarm: Any) -> None:
    runtime.queue().enqueue(echo, 1, job_timeout=30)  # RQ's timeout: its own SIGALRM handler and alarm(30)
    (run,) = runtime.drain()
    assert run.status == "finished"
    assert signal.getsignal(signal.SIGALRM) is alarm
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 200 < remaining <= 300


def test_a_failing_job_gives_them_back_too(runtime: RQRuntime, alarm: Any) -> None:
    runtime.queue().enqueue(fail)
    runtime.drain(expect_failures=True)
    assert signal.getsignal(signal.SIGALRM) is alarm
    assert signal.getitimer(signal.ITIMER_REAL)[0] > 200


def test_a_queue_s_serializer_reads_its_jobs(runtime: RQRuntime, job_spans: JobSpans) -> None:
    queue = runtime.queue("json", serializer=JSONSerializer)
    queue.enqueue(echo, "plain json")
    queue.enqueue_in(timedelta(seconds=30), echo, "later")

    runs = runtime.drain()

    assert [(run.status, run.job.return_value()) for run in runs] == [
        ("finished", "plain json"),
        ("finished", "later"),
    ]
    assert runtime.clock.now == 30
    assert_span_tree(job("echo", queue="json", attempts=1, outcome="succeeded"))
    assert [view.outcome for view in job_spans.jobs()] == ["succeeded", "succeeded"]


def test_a_queue_the_test_builds_on_the_connection_keeps_its_serializer(runtime: RQRuntime) -> None:
    """A queue made with ``Queue(..., connection=rq_jobs.connection, serializer=...)``, not ``rq_jobs.queue()``:
    its jobs are read with its serializer, as a worker started for it with ``--serializer`` reads them (RQ's own
    ``test_work_and_quit_custom_serializer`` found this failing with ``DeserializationError``)."""
    from rq import Queue

    Queue("json", connection=runtime.connection, serializer=JSONSerializer).enqueue(echo, "made by the test")
    Queue("json2", connection=runtime.connection, serializer=JSONSerializer).enqueue_in(
        timedelta(seconds=5), echo, "scheduled"
    )

    runs = runtime.drain()

    assert [(run.queue, run.status, run.job.return_value()) for run in runs] == [
        ("json", "finished", "made by the test"),
        ("json2", "finished", "scheduled"),
    ]


def test_a_queue_s_job_class_performs_its_jobs(runtime: RQRuntime) -> None:
    enqueued = runtime.queue("audited", job_class=AuditedJob).enqueue(echo, 5)
    (run,) = runtime.drain()
    assert isinstance(run.job, AuditedJob)
    assert SEEN[0] == ("audited", enqueued.id)


def test_use_worker_takes_the_worker_class_and_its_options(runtime: RQRuntime) -> None:
    handled: list[str] = []

    def handler(job: Any, exc_type: Any, exc_value: Any, tb: Any) -> bool:
        handled.append(f"{job.func_name}: {exc_value}")
        return False  # the next handler (none: the default one is disabled) would run

    runtime.use_worker(NotingWorker, exception_handlers=[handler], disable_default_exception_handler=True)
    ok = runtime.queue().enqueue(echo, 1)
    runtime.queue().enqueue(fail)
    runs = runtime.drain(expect_failures=True)

    assert [run.status for run in runs] == ["finished", "failed"]
    assert ("success", ok.id) in SEEN
    assert handled == ["test_rq_worker.fail: no such order"]
    assert isinstance(runs[1].exception, LookupError)  # rq_jobs still sees the exception


def test_a_forking_worker_class_runs_jobs_in_the_test_process(runtime: RQRuntime) -> None:
    runtime.use_worker(ForkingWorker)
    enqueued = runtime.queue().enqueue(echo, "here")
    runtime.drain()
    assert ("here", os.getpid()) in SEEN
    assert ("forking success", enqueued.id) in SEEN


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda rt: rt.use_worker(dict),
            r"^RQRuntime.use_worker\(\): worker_class must be an RQ worker class; got <class 'dict'>$",
        ),
        (
            lambda rt: rt.use_worker(serializer=JSONSerializer),
            r"^RQRuntime.use_worker\(\): serializer= is the runtime's to set .*serializer and job_class come from"
            r" each queue\)$",
        ),
    ],
)
def test_use_worker_refuses_what_it_cannot_honour(runtime: RQRuntime, call: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        call(runtime)


# --- ttl on the virtual clock ----------------------------------------------------------------------------------------


def test_a_scheduled_job_whose_ttl_runs_out_first_is_dropped_as_redis_would(
    runtime: RQRuntime, job_spans: JobSpans
) -> None:
    runtime.queue().enqueue_in(timedelta(seconds=3), echo, "too late", ttl=1)
    runtime.queue().enqueue_in(timedelta(seconds=3), echo, "in time", ttl=10)

    runs = runtime.drain()

    assert [(run.job.return_value(), run.at) for run in runs] == [("in time", 3.0)]
    assert runtime.pending == []
    # RQ's worker never saw the dropped job: its send span is all there is
    assert sorted((view.outcome, len(view.attempt_nodes)) for view in job_spans.jobs()) == [
        ("pending", 0),
        ("succeeded", 1),
    ]


def test_a_retry_due_after_the_ttl_is_dropped(runtime: RQRuntime) -> None:
    from rq import Retry

    runtime.queue().enqueue(fail, retry=Retry(max=2, interval=3), ttl=1)
    runs = runtime.drain(expect_failures=True)
    assert [run.status for run in runs] == ["scheduled"]  # the retry's key expired before it was due
    assert runtime.pending == []


def test_a_queued_job_left_waiting_past_its_ttl_is_gone(runtime: RQRuntime) -> None:
    runtime.queue().enqueue(echo, "stale", ttl=5)
    runtime.queue().enqueue(echo, "fresh", ttl=60)
    runtime.clock.advance(10)

    assert [item.describe() for item in runtime.pending] == ["test_rq_worker.echo('fresh') on queue 'default'"]
    assert [run.job.return_value() for run in runtime.drain()] == ["fresh"]


def _push_unregistered(runtime: RQRuntime, queue_name: str, value: str) -> str:
    """A job pushed straight onto ``queue_name`` (``push_job_id``): RQ never adds the queue to ``rq:queues``."""
    from rq import Queue

    saved = Job.create(echo, args=(value,), connection=runtime.connection, origin=queue_name)
    saved.save()
    Queue(queue_name, connection=runtime.connection).push_job_id(saved.id)
    assert runtime.connection.smembers(Queue.redis_queues_keys) == set()
    return saved.id


def test_a_job_on_the_default_queue_rq_never_registered_is_pending_as_drain_runs_it(runtime: RQRuntime) -> None:
    job_id = _push_unregistered(runtime, "default", "unregistered")

    assert [(item.job_id, item.describe()) for item in runtime.pending] == [
        (job_id, "test_rq_worker.echo('unregistered') on queue 'default'")
    ]
    assert [run.job.return_value() for run in runtime.drain()] == ["unregistered"]
    assert runtime.pending == []


def test_drain_only_finds_a_job_on_the_default_queue_rq_never_registered(runtime: RQRuntime) -> None:
    _push_unregistered(runtime, "default", "unregistered")

    assert [run.job.return_value() for run in runtime.drain(only=echo)] == ["unregistered"]
    assert runtime.pending == []


def test_pending_and_drain_agree_on_a_job_pushed_onto_another_queue_rq_never_registered(runtime: RQRuntime) -> None:
    # no worker listens to "elsewhere": a deployment's `rq worker` (default queue) would not run it either
    _push_unregistered(runtime, "elsewhere", "unheard")

    assert runtime.pending == []
    assert runtime.drain() == []


def test_a_job_pushed_onto_a_queue_its_origin_does_not_name_is_pending_as_drain_runs_it(runtime: RQRuntime) -> None:
    # Queue.get_jobs() leaves the job out (its origin names "elsewhere"); RQ's worker runs it all the same
    queue = runtime.queue("reports")
    queue.enqueue(echo, "first")
    moved = Job.create(echo, args=("moved",), connection=runtime.connection, origin="elsewhere")
    moved.save()
    queue.push_job_id(moved.id)

    assert [item.describe() for item in runtime.pending] == [
        "test_rq_worker.echo('first') on queue 'reports'",
        "test_rq_worker.echo('moved') on queue 'reports'",
    ]
    assert [(run.job.return_value(), run.queue) for run in runtime.drain(only=echo)] == [
        ("first", "reports"),
        ("moved", "reports"),
    ]
    assert runtime.pending == []
