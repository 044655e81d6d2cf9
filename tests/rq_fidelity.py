"""Helpers of the RQ fidelity tests: the scenarios, RQ's own worker on a real Redis, and a normalised tree."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
import rq_tasks
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from rq import Callback, Queue, Retry, SimpleWorker

# A real Redis is used only when asked for: JOBTRACE_REQUIRE_REDIS=1 (CI) or a JOBTRACE_TEST_REDIS_URL. The
# default names a range, so that tests on pytest-xdist workers each lease a database of their own.
REDIS_URL = os.environ.get("JOBTRACE_TEST_REDIS_URL", "redis://127.0.0.1:6379/1-15")
tracer = trace.get_tracer("tests.rq_fidelity")

# What a tree keeps: everything but ids, timestamps and real-time schedule values.
_KEPT = (
    "messaging.operation.type",
    "messaging.destination.name",
    "rq.job.func_name",
    "rq.enqueue.reason",
    "rq.job.attempt",
    "rq.job.status",
    "rq.job.retries_left",
    "error.type",
)


def require_redis() -> str:
    """The real Redis URL when JOBTRACE_REQUIRE_REDIS=1 or JOBTRACE_TEST_REDIS_URL asks for one, else a skip.

    Asked for and not answering is a failure: CI sets JOBTRACE_REQUIRE_REDIS=1.
    """
    import redis

    from pytest_jobtrace.rq._connection import databases_of, with_database

    if os.environ.get("JOBTRACE_REQUIRE_REDIS") != "1" and not os.environ.get("JOBTRACE_TEST_REDIS_URL"):
        pytest.skip("a real Redis is used only when JOBTRACE_REQUIRE_REDIS=1 or JOBTRACE_TEST_REDIS_URL is set")
    try:
        url = with_database(REDIS_URL, databases_of(REDIS_URL)[0])
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            client.ping()
    except redis.RedisError as error:
        pytest.fail(f"no Redis answers at {REDIS_URL} ({error}), and the environment asks for a real Redis")
    return REDIS_URL


class _Worker(SimpleWorker):
    """RQ's SimpleWorker without its command channel (stop/kill commands), which no scenario sends.

    With rq 3.0 and redis-py 8 the channel's pubsub thread can miss the wake-up RQ's teardown counts on and
    sleep out its 60 s while the worker joins it: a burst then took a minute longer, at random.
    """

    def subscribe(self) -> None:
        pass


def run_with_rq_worker(connection: Any, scenario: Callable[[Queue], None]) -> None:
    """RQ's own path: ``SimpleWorker.work(burst=True, with_scheduler=True)``, again whenever a job falls due."""
    queue = Queue(connection=connection)
    with tracer.start_as_current_span("test"):
        scenario(queue)
    while True:
        _Worker([queue], connection=connection).work(burst=True, with_scheduler=True)
        due = connection.zrange(queue.scheduled_job_registry.key, 0, 0, withscores=True)
        if not due and not len(queue):
            return
        if due:
            time.sleep(max(0.0, due[0][1] - time.time()) + 0.05)


# -- the scenarios ----------------------------------------------------------------------------------


def single_job(queue: Queue) -> None:
    queue.enqueue(rq_tasks.hello, 1)


def children_in_a_custom_span(queue: Queue) -> None:
    queue.enqueue(rq_tasks.parent_enqueues_children, 2)


def retries_then_success(queue: Queue) -> None:
    queue.enqueue(rq_tasks.flaky, "retries", 2, retry=Retry(max=3))


def retries_with_intervals(queue: Queue) -> None:
    queue.enqueue(rq_tasks.flaky, "intervals", 2, retry=Retry(max=2, interval=[1, 1]))


def retries_exhausted(queue: Queue) -> None:
    queue.enqueue(rq_tasks.flaky, "exhausted", 9, retry=Retry(max=2))


def returned_retry(queue: Queue) -> None:
    queue.enqueue(rq_tasks.returns_retry, "returned", 1)


def dependencies(queue: Queue) -> None:
    first = queue.enqueue(rq_tasks.hello, 1)
    second = queue.enqueue(rq_tasks.hello, 2, depends_on=first)
    queue.enqueue(rq_tasks.hello, 3, depends_on=[first, second])


def scheduled(queue: Queue) -> None:
    queue.enqueue_in(timedelta(seconds=1), rq_tasks.hello, "later")
    queue.enqueue(rq_tasks.hello, "now")


def callbacks(queue: Queue) -> None:
    queue.enqueue(rq_tasks.hello, 5, on_success=Callback(rq_tasks.on_success))
    queue.enqueue(rq_tasks.boom, on_failure=Callback(rq_tasks.on_failure))


def canceled_and_deleted_before_they_ran(queue: Queue) -> None:
    """No span says a job was dropped unrun: live, the test's cancel and delete tell wait() instead."""
    queue.enqueue_in(timedelta(seconds=30), rq_tasks.hello, "canceled").cancel()
    parent = queue.enqueue_in(timedelta(seconds=30), rq_tasks.hello, "deleted")
    queue.enqueue(rq_tasks.hello, "deleted with its dependency", depends_on=parent)
    parent.delete(delete_dependents=True)
    queue.enqueue(rq_tasks.hello, "runs")


def a_job_cancels_another(queue: Queue) -> None:
    """Live, the worker tells wait() of the job it canceled."""
    later = queue.enqueue_in(timedelta(seconds=30), rq_tasks.hello, "canceled by a job")
    queue.enqueue(rq_tasks.cancel, later.id)


def expired_before_it_was_due(queue: Queue) -> None:
    """Its ttl runs out before it is due: RQ's scheduler finds no job and drops it without a word (and no
    span says so); live, the worker tells wait()."""
    queue.enqueue_in(timedelta(seconds=2), rq_tasks.hello, "expired", ttl=1)
    queue.enqueue(rq_tasks.hello, "runs")


SCENARIOS = [
    single_job,
    children_in_a_custom_span,
    retries_then_success,
    retries_with_intervals,
    retries_exhausted,
    returned_retry,
    dependencies,
    scheduled,
    callbacks,
    canceled_and_deleted_before_they_ran,
    a_job_cancels_another,
    expired_before_it_was_due,
]


# -- the normalised tree ----------------------------------------------------------------------------


def normalised(spans: Sequence[ReadableSpan]) -> str:
    """The spans as an indented tree of names, kinds, statuses, kept attributes, events and links."""
    by_id = {span.context.span_id: span for span in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None and span.parent.span_id in by_id else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            lines.append("  " * depth + _line(span, by_id))
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def _line(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> str:
    attributes = span.attributes or {}
    kept = ", ".join(f"{key}={attributes[key]}" for key in _KEPT if key in attributes)
    events = ",".join(event.name for event in span.events)
    links = ",".join(_link_target(link.context.span_id, by_id) for link in span.links)
    status = span.status.status_code.name
    return f"{span.name} [{span.kind.name} {status}] {{{kept}}} events=[{events}] links=[{links}]"


def _link_target(span_id: int, by_id: dict[int, ReadableSpan]) -> str:
    target = by_id.get(span_id)
    if target is None:
        return "?"
    attributes = target.attributes or {}
    return f"{target.name}:{attributes.get('rq.job.func_name')}:{attributes.get('rq.enqueue.reason')}"
