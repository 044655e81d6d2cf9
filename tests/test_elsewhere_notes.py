"""A job its fixture never received: the failure note says where it went, not "drain the queue first"
(issue 17, item 18). Run as users run them."""

from __future__ import annotations

import re

import celery.contrib.pytest  # noqa: F401
import opentelemetry.instrumentation.celery  # noqa: F401
import pytest
from inline_snapshot import snapshot

import pytest_jobtrace.celery._runtime  # noqa: F401

pytest.importorskip("rq")
pytest.importorskip("fakeredis")

SHOP = """
import functools

from celery import Celery

app = Celery("shop", broker="memory://", backend="cache+memory://", set_as_current=False)
other = Celery("reports", broker="memory://", backend="cache+memory://", set_as_current=False)


@functools.partial(app.task, shared=False)
def add(x, y):
    return x + y


@functools.partial(other.task, shared=False, name="shop.add")
def add_elsewhere(x, y):
    return x + y


def hello(value):
    return value
"""

TESTS = """
import fakeredis
import pytest
from opentelemetry import trace
from rq import Queue

from pytest_jobtrace import SpanTreeMismatch, assert_span_tree, job
from pytest_jobtrace.builtin import Job, JobRuntime
from shop import add, add_elsewhere, hello

tracer = trace.get_tracer("test")


def notes(expected):
    with pytest.raises(SpanTreeMismatch) as excinfo:
        assert_span_tree(expected)
    print("<<<")
    print("\\n".join(line for line in str(excinfo.value).splitlines() if line.startswith("note:")))
    print(">>>")


def test_another_celery_app(job_spans, celery_jobs):
    # refused at the publish, naming both apps (it would leave the test for that app's broker): no note needed
    with pytest.raises(RuntimeError, match="published through the Celery app 'reports'.*celery_jobs runs the app 'shop'"):
        add_elsewhere.delay(1, 2)
    print("<<<\\nrefused\\n>>>")


def test_celery_not_drained(job_spans, celery_jobs):
    add.delay(1, 2)
    notes(job("add", outcome="succeeded"))
    celery_jobs.drain()


def test_another_redis_connection(job_spans, rq_jobs):
    Queue(connection=fakeredis.FakeStrictRedis(server=fakeredis.FakeServer())).enqueue(hello, 1)
    rq_jobs.drain()
    notes(job("hello", outcome="succeeded"))


def test_rq_not_drained(job_spans, rq_jobs):
    rq_jobs.queue().enqueue(hello, 1)
    notes(job("hello", outcome="succeeded"))
    rq_jobs.drain()


def test_rq_id_reused(job_spans, rq_jobs):
    rq_jobs.queue().enqueue(hello, 1, job_id="same")
    rq_jobs.queue().enqueue(hello, 2, job_id="same")
    rq_jobs.drain()
    notes(job("hello", attempts=1))


@pytest.fixture
def rq_traced():
    # RQ traced with no rq_jobs in the test: as with live workers, which run the jobs in other processes
    from pytest_jobtrace.rq.instrumentation import RQInstrumentor

    RQInstrumentor().instrument()
    yield Queue(connection=fakeredis.FakeStrictRedis(server=fakeredis.FakeServer()))
    RQInstrumentor().uninstrument()


def test_rq_with_no_fixture_that_drains_it(job_spans, rq_traced):
    rq_traced.enqueue(hello, 1)
    notes(job("hello", outcome="succeeded"))


def test_rq_discarded_by_a_worker(job_spans, rq_traced):
    from pytest_jobtrace.adapters import report_verdict
    from pytest_jobtrace.rq import _verdicts

    dropped = rq_traced.enqueue(hello, 1, ttl=1)
    report_verdict(_verdicts.dropped(dropped.id, _verdicts.DROPPED_BY_WORKER))  # as a live worker reports it
    notes(job("hello", outcome="succeeded"))


class Greet(Job):
    def perform(self, value):
        return value


def test_builtin_runtime_left_undrained(job_spans):
    # the built-in system has no live workers: the note names its drain() only
    with JobRuntime():
        Greet.perform_later(1)
    notes(job("Greet", outcome="succeeded"))
"""


def test_a_job_the_fixture_never_received_says_where_it_went(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shop=SHOP, test_notes=TESTS)
    pytester.makeini("[pytest]\njobtrace_celery_app = shop:app\n")
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:randomly", "-s", "-v")
    result.assert_outcomes(passed=8)
    output = result.stdout.str()
    reports = dict(zip(re.findall(r"test_notes.py::(\w+) <<<", output), re.findall(r"<<<\n(.*?)>>>", output, re.S)))
    assert reports == snapshot(
        {
            "test_another_celery_app": "refused\n",
            "test_celery_not_drained": "note: enqueued but never processed: 'add'; drain the queue first (celery_jobs.drain())\n",
            "test_another_redis_connection": "note: 'hello' was never processed: it was enqueued on a Redis connection other than rq_jobs', so rq_jobs never saw it; enqueue on rq_jobs.queue() or a Queue built on rq_jobs.connection\n",
            "test_rq_not_drained": "note: enqueued but never processed: 'hello'; drain the queue first (rq_jobs.drain())\n",
            "test_rq_id_reused": "\n",
            "test_rq_with_no_fixture_that_drains_it": "note: enqueued but never processed: 'hello'; drain the queue first (rq_jobs.drain()), or with live_rq_worker wait for it (job_spans.wait())\n",
            "test_rq_discarded_by_a_worker": "note: 'hello' was never processed: discarded: its data was gone when RQ's worker took it off its queue (its ttl ran out while it waited, or its key was deleted): RQ dropped it\n",
            "test_builtin_runtime_left_undrained": "note: enqueued but never processed: 'Greet'; drain the queue first (builtin_jobs.drain())\n",
        }
    )
