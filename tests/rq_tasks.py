"""RQ job functions the RQ tests enqueue (RQ imports a job's function by its dotted name)."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import baggage, trace
from rq import Queue, Retry, get_current_job

tracer = trace.get_tracer("tests.rq_tasks")
CALLS: dict[str, int] = {}
SEEN: list[Any] = []


class PaymentError(Exception):
    pass


def hello(value: Any = None) -> Any:
    with tracer.start_as_current_span("hello.work"):
        return value


def _call(key: str) -> int:
    """How many times ``key`` was called (this call included).

    In a live worker (``live_rq_worker``) each job runs in a forked work horse, whose module state dies
    with it: there the count is kept in Redis, per job, so that a retry sees the attempts before it."""
    job = get_current_job()
    if job is not None and "JOBTRACE_LIVE_ENDPOINT" in os.environ:
        counter = f"rq_tasks:calls:{key}:{job.id}"
        count = int(job.connection.incr(counter))
        job.connection.expire(counter, 600)
        return count
    CALLS[key] = CALLS.get(key, 0) + 1
    return CALLS[key]


def flaky(key: str, failures: int) -> str:
    """Fail the first ``failures`` calls for ``key``, then succeed."""
    calls = _call(key)
    if calls <= failures:
        raise PaymentError(f"card declined {calls}")
    return "paid"


def returns_retry(key: str, times: int, interval: int = 0) -> str:
    if _call(key) <= times:
        return Retry(max=2, interval=interval)  # type: ignore[return-value]
    return "done"


def parent_enqueues_children(count: int) -> None:
    job = get_current_job()
    assert job is not None
    queue = Queue(job.origin, connection=job.connection)
    with tracer.start_as_current_span("fan_out"):
        for number in range(count):
            queue.enqueue(hello, number)


def note_meta_then_fail(key: str) -> str:
    """Write user meta on the first attempt, then fail once: the retry must keep the meta."""
    job = get_current_job()
    assert job is not None
    CALLS[key] = CALLS.get(key, 0) + 1
    if CALLS[key] == 1:
        job.meta["progress"] = "half"
        job.save_meta()
        raise PaymentError("first try")
    SEEN.append(dict(job.meta))
    return "ok"


def replace_meta_then_fail(key: str, failures: int) -> str:
    """Replace ``job.meta`` outright (a common pattern), and fail the first ``failures`` calls."""
    job = get_current_job()
    assert job is not None
    CALLS[key] = CALLS.get(key, 0) + 1
    job.meta = {"progress": CALLS[key]}
    job.save_meta()
    if CALLS[key] <= failures:
        raise PaymentError(f"card declined {CALLS[key]}")
    return "ok"


def read_baggage() -> None:
    SEEN.append(baggage.get_baggage("tenant"))


def on_success(job: Any, connection: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    with tracer.start_as_current_span("on_success"):
        SEEN.append(("success", result))


def on_failure(job: Any, connection: Any, exc_type: Any, exc_value: Any, tb: Any) -> None:
    with tracer.start_as_current_span("on_failure"):
        SEEN.append(("failure", str(exc_value)))


def boom() -> None:
    raise PaymentError("boom")


def forever(depth: int = 0) -> None:
    """Enqueue itself again: a chain that never ends."""
    job = get_current_job()
    assert job is not None
    Queue(job.origin, connection=job.connection).enqueue(forever, depth + 1)


def slow() -> None:
    import time

    time.sleep(5)


def on_other_queue() -> None:
    job = get_current_job()
    assert job is not None
    Queue("mailers", connection=job.connection).enqueue(hello, "mail")


def cancel(job_id: str) -> None:
    """Cancel another job, which has not run yet."""
    from rq.job import Job

    job = get_current_job()
    assert job is not None
    with tracer.start_as_current_span("cancel.work"):
        Job.fetch(job_id, connection=job.connection).cancel()
