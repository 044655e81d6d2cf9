"""RQRuntime (what rq_jobs yields): RQ's worker path in the test's thread, on a virtual clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("rq")
pytest.importorskip("fakeredis")

import rq_fidelity
import rq_tasks
from rq import Queue, Retry

from pytest_jobtrace import JobChainError, JobFailedError, JobSpans
from pytest_jobtrace.rq._connection import with_database
from pytest_jobtrace.rq._drain import RQRuntime
from pytest_jobtrace.rq.instrumentation import RQInstrumentor


@pytest.fixture(name="runtime")
def _runtime(job_spans: JobSpans) -> Iterator[RQRuntime]:
    rq_tasks.CALLS.clear()
    rq_tasks.SEEN.clear()
    with RQRuntime() as runtime:
        yield runtime


def _names(runs: Any) -> list[tuple[str, str]]:
    return [(run.description, run.status) for run in runs]


def test_drain_runs_queued_jobs_and_their_dependents_in_order(runtime: RQRuntime) -> None:
    queue = runtime.queue()
    first = queue.enqueue(rq_tasks.hello, 1)
    queue.enqueue(rq_tasks.hello, 2, depends_on=first)
    queue.enqueue(rq_tasks.hello, 3)

    runs = runtime.drain()

    assert _names(runs) == [
        ("rq_tasks.hello(1)", "finished"),
        ("rq_tasks.hello(3)", "finished"),
        ("rq_tasks.hello(2)", "finished"),
    ]
    assert runs[0].job.return_value() == 1
    assert runtime.pending == []


def test_a_failed_job_raises_job_failed_error_naming_it(runtime: RQRuntime) -> None:
    runtime.queue().enqueue(rq_tasks.flaky, "pay", 9, retry=Retry(max=1))
    runtime.queue().enqueue(rq_tasks.hello, 1)

    with pytest.raises(JobFailedError) as caught:
        runtime.drain()

    message = str(caught.value)
    assert message.startswith("RQRuntime.drain(): 1 job failed:\n  rq_tasks.flaky('pay', 9) id=")
    assert "failed after 2 attempts: PaymentError: card declined 2" in message
    assert "pass drain(expect_failures=True)" in message
    assert isinstance(caught.value.__cause__, rq_tasks.PaymentError)
    assert [run.status for run in caught.value.runs] == ["failed"]
    assert [run.status for run in runtime.performed] == ["queued", "finished", "failed"]


def test_expect_failures_returns_the_failed_runs_instead(runtime: RQRuntime) -> None:
    runtime.queue().enqueue(rq_tasks.boom)
    runs = runtime.drain(expect_failures=True)
    assert _names(runs) == [("rq_tasks.boom()", "failed")]
    assert runtime.failed == runs
    assert isinstance(runs[0].exception, rq_tasks.PaymentError)


def test_scheduled_jobs_and_retry_intervals_run_on_the_virtual_clock(runtime: RQRuntime) -> None:
    queue = runtime.queue()
    queue.enqueue_in(timedelta(seconds=100), rq_tasks.hello, "in 100s")
    queue.enqueue_in(timedelta(seconds=10), rq_tasks.hello, "in 10s")
    queue.enqueue(rq_tasks.flaky, "pay", 3, retry=Retry(max=3, interval=[10, 30]))

    runs = runtime.drain()

    # RQ picks intervals[max(len(intervals) - retries_left, 0)]: 10, 10, then 30 seconds
    assert [(run.at, run.description) for run in runs] == [
        (0.0, "rq_tasks.flaky('pay', 3)"),
        (10.0, "rq_tasks.hello('in 10s')"),
        (10.0, "rq_tasks.flaky('pay', 3)"),
        (20.0, "rq_tasks.flaky('pay', 3)"),
        (50.0, "rq_tasks.flaky('pay', 3)"),
        (100.0, "rq_tasks.hello('in 100s')"),
    ]
    assert runtime.clock.now == 100.0


def test_pending_lists_queued_then_scheduled_jobs(runtime: RQRuntime) -> None:
    queue = runtime.queue()
    queue.enqueue_in(timedelta(seconds=60), rq_tasks.hello, "later")
    queue.enqueue(rq_tasks.hello, "now")

    pending = runtime.pending

    assert [(p.name, p.describe()) for p in pending] == [
        ("rq_tasks.hello", "rq_tasks.hello('now') on queue 'default'"),
        ("rq_tasks.hello", "rq_tasks.hello('later') on queue 'default'"),
    ]
    assert [p.due for p in pending] == [None, 60.0]


def test_perform_one_runs_one_attempt_at_a_time(runtime: RQRuntime) -> None:
    runtime.queue().enqueue(rq_tasks.flaky, "pay", 1, retry=Retry(max=1, interval=5))

    first = runtime.perform_one()
    assert (first.attempt, first.status, runtime.clock.now) == (1, "scheduled", 0.0)
    second = runtime.perform_one()
    assert (second.attempt, second.status, runtime.clock.now) == (2, "finished", 5.0)
    with pytest.raises(LookupError, match=r"^RQRuntime.perform_one\(\): no job is pending$"):
        runtime.perform_one()


def test_a_job_returning_retry_is_run_again(runtime: RQRuntime) -> None:
    runtime.queue().enqueue(rq_tasks.returns_retry, "ret", 1, 7)
    runs = runtime.drain()
    assert [(run.at, run.status) for run in runs] == [(0.0, "scheduled"), (7.0, "finished")]


def test_a_chain_that_never_ends_stops_at_max_jobs(runtime: RQRuntime) -> None:
    runtime.queue().enqueue(rq_tasks.forever)

    with pytest.raises(JobChainError) as caught:
        runtime.drain(max_jobs=5)

    message = str(caught.value)
    assert message.startswith(
        "RQRuntime.drain() performed max_jobs=5 attempts; this chain of jobs does not end"
        " (each enqueued by the one before it):"
    )
    assert message.endswith(
        "  <- next to run\nAttempts performed: forever x5\n"
        "If it does end, raise the bound: RQRuntime.drain(max_jobs=N)."
    )
    assert [p.name for p in runtime.pending] == ["rq_tasks.forever"]


def test_only_runs_the_named_jobs_and_leaves_what_they_enqueue(runtime: RQRuntime) -> None:
    queue = runtime.queue()
    queue.enqueue(rq_tasks.hello, "left alone")
    queue.enqueue(rq_tasks.parent_enqueues_children, 2)

    runs = runtime.drain(only="parent_enqueues_children")

    assert [run.description for run in runs] == ["rq_tasks.parent_enqueues_children(2)"]
    assert [p.describe() for p in runtime.pending] == [
        "rq_tasks.hello('left alone') on queue 'default'",
        "rq_tasks.hello(0) on queue 'default'",
        "rq_tasks.hello(1) on queue 'default'",
    ]


def test_jobs_enqueued_on_another_queue_are_drained_too(runtime: RQRuntime) -> None:
    runtime.queue().enqueue(rq_tasks.on_other_queue)
    runs = runtime.drain()
    assert [(run.queue, run.description) for run in runs] == [
        ("default", "rq_tasks.on_other_queue()"),
        ("mailers", "rq_tasks.hello('mail')"),
    ]


def test_a_canceled_job_is_not_run_nor_pending(runtime: RQRuntime) -> None:
    enqueued = runtime.queue().enqueue(rq_tasks.hello, 1)
    enqueued.cancel()
    assert runtime.drain() == []
    assert runtime.pending == []


def test_a_drain_off_the_main_thread_keeps_job_timeouts(runtime: RQRuntime) -> None:
    runtime.queue().enqueue(rq_tasks.slow, job_timeout=1)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.extend(runtime.drain(expect_failures=True)))
    thread.start()
    thread.join(10)

    (run,) = outcome
    assert run.status == "failed"
    assert type(run.exception).__name__ == "JobTimeoutException"


def test_closing_restores_rq() -> None:
    original = Queue.schedule_job
    with RQRuntime() as runtime:
        assert Queue.schedule_job is not original
        assert RQInstrumentor().is_instrumented_by_opentelemetry
        connection = runtime.connection
    assert Queue.schedule_job is original
    assert not RQInstrumentor().is_instrumented_by_opentelemetry
    assert connection.ping()
    with pytest.raises(RuntimeError, match="RQRuntime is not open"):
        runtime.queue()


def test_a_real_redis_gives_each_runtime_its_own_database_and_cleans_only_its_keys() -> None:
    import redis

    url = rq_fidelity.require_redis()
    two = RQRuntime(redis_url=url, instrument=False)
    with two:
        with RQRuntime(redis_url=url, instrument=False) as one:
            one.queue().enqueue(rq_tasks.hello, 1)
            two.queue().enqueue(rq_tasks.hello, 2)
            assert len(one.queue()) == len(two.queue()) == 1
            assert [run.status for run in one.drain()] == ["finished"]
            one_db, two_db = (_database(r) for r in (one, two))
            two_connection = two.connection
            # another client writes to the leased database during the test: its key outlives the lease
            other = redis.Redis.from_url(with_database(url, one_db))
            other.set("someone-else:key", "kept")
        assert one_db != two_db
        # the other client's key stays, no RQ key does (a database is lent when it holds no RQ key: keys of
        # other programs, which a shared Redis may hold, are neither counted nor touched)
        assert other.exists("someone-else:key") == 1
        assert _rq_keys(other) == []
        other.delete("someone-else:key")
        assert len(two.queue()) == 1  # closing `one` left `two`'s keys alone
    assert _rq_keys(two_connection) == []
    assert two_connection.get("pytest-jobtrace:rq:lease") is None


def _rq_keys(client: Any) -> list[bytes]:
    return sorted(client.scan_iter(match="rq:*"))


def _database(runtime: RQRuntime) -> int:
    return int(runtime.connection.connection_pool.connection_kwargs["db"])


def test_jobs_scheduled_behind_rq_s_back_are_found_from_their_registry(runtime: RQRuntime) -> None:
    from datetime import datetime, timezone

    from rq.job import Job

    queue = runtime.queue()
    job = Job.create(rq_tasks.hello, args=("registry",), connection=runtime.connection, origin="default")
    job.save()
    queue.scheduled_job_registry.schedule(job, datetime.now(timezone.utc) + timedelta(seconds=30))

    (run,) = runtime.drain()

    assert run.description == "rq_tasks.hello('registry')"
    assert 29.0 <= run.at <= 30.0  # RQ stored whole seconds of real time


def test_rate_limits_and_unique_jobs_run_on_the_default_fakeredis(runtime: RQRuntime) -> None:
    """rq 3 runs Lua scripts for them: fakeredis without Lua support failed with "unknown command 'evalsha'"."""
    rate_limit = pytest.importorskip("rq.rate_limit")
    from rq.exceptions import DuplicateJobError

    queue = runtime.queue()
    queue.enqueue(rq_tasks.hello, 1, rate_limit=rate_limit.RateLimit("mail", concurrency=1))
    queue.enqueue(rq_tasks.hello, 2, rate_limit=rate_limit.RateLimit("mail", concurrency=1))
    queue.enqueue(rq_tasks.hello, 3, job_id="only-once", unique=True)
    with pytest.raises(DuplicateJobError):
        queue.enqueue(rq_tasks.hello, 3, job_id="only-once", unique=True)

    assert [(run.description, run.status) for run in runtime.drain()] == [
        ("rq_tasks.hello(1)", "finished"),
        ("rq_tasks.hello(3)", "finished"),
        ("rq_tasks.hello(2)", "finished"),
    ]


def test_render_details_hides_wall_clock_times_and_job_ids(runtime: RQRuntime, job_spans: JobSpans) -> None:
    """enqueue_in/enqueue_at record rq.job.scheduled_for (real time), depends_on the ids: neither may vary."""
    import re
    from datetime import datetime, timezone

    queue = runtime.queue()
    first = queue.enqueue_in(timedelta(seconds=30), rq_tasks.hello, 1)
    queue.enqueue_at(datetime(2030, 1, 2, tzinfo=timezone.utc), rq_tasks.hello, 2)
    queue.enqueue(rq_tasks.hello, 3, depends_on=first)
    runtime.drain()

    text = job_spans.render(details=True)
    assert text.count("rq.job.scheduled_for=*") == 2
    assert "rq.job.depends_on=*" in text
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-|\d{4}-\d\d-\d\dT\d\d", text), text
