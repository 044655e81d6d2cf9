"""``job()`` naming what is not a job, or a job that cannot be where it was expected (issue 17, item 19):
a Celery inline errback, an RQ callback, a link callback of a failed job, a chord body."""

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
task = functools.partial(app.task, shared=False)


@task
def add(x, y):
    return x + y


@task
def tsum(numbers):
    return sum(numbers)


@task
def charge(order_id):
    raise ValueError(f"card declined for order {order_id}")


@task
def report_failure(request, exc, traceback):
    return f"{request.id} failed: {exc}"


@task
def mark_failed(task_id):
    return task_id


def pay(order_id):
    raise ValueError("card declined")


def ship(order_id):
    return order_id


def log_failure(job, connection, type, value, traceback):
    pass


def log_success(job, connection, result):
    pass
"""

TESTS = """
import pytest
from celery import chord
from opentelemetry import trace
from rq import Callback

from pytest_jobtrace import SpanTreeMismatch, assert_span_tree, job, span
from shop import add, charge, log_failure, log_success, mark_failed, pay, report_failure, ship, tsum

tracer = trace.get_tracer("test")


def headline(expected):
    with pytest.raises(SpanTreeMismatch) as excinfo:
        assert_span_tree(expected)
    print("<<<" + str(excinfo.value).splitlines()[0] + ">>>")


@pytest.mark.jobtrace(expect_failures=True)
def test_celery_inline_errback(job_spans, celery_jobs):
    with tracer.start_as_current_span("POST /orders"):
        charge.apply_async((8,), link_error=[report_failure.s(), mark_failed.s()])
    celery_jobs.drain()
    headline(job("report_failure"))


@pytest.mark.jobtrace(expect_failures=True)
def test_celery_link_of_a_failed_job(job_spans, celery_jobs):
    with tracer.start_as_current_span("POST /orders"):
        charge.apply_async((8,), link=add.s(1), link_error=mark_failed.s())
    celery_jobs.drain()
    headline(job("charge", children=[job("add")]))


def test_celery_chord_body(job_spans, celery_jobs):
    with tracer.start_as_current_span("POST /sums"):
        chord((add.s(i, i) for i in range(3)), tsum.s()).apply_async()
    celery_jobs.drain()
    headline(span("POST /sums", children=[job("tsum")]))


@pytest.mark.jobtrace(expect_failures=True)
def test_rq_on_failure_callback(job_spans, rq_jobs):
    with tracer.start_as_current_span("POST /orders"):
        rq_jobs.queue().enqueue(pay, 8, on_failure=Callback(log_failure))
    rq_jobs.drain()
    headline(job("log_failure"))


def test_rq_on_success_callback(job_spans, rq_jobs):
    with tracer.start_as_current_span("POST /orders"):
        rq_jobs.queue().enqueue(ship, 8, on_success=Callback(log_success))
    rq_jobs.drain()
    headline(job("log_success"))


def test_a_succeeded_parent_gets_no_link_hint(job_spans, celery_jobs):
    with tracer.start_as_current_span("POST /orders"):
        add.apply_async((1, 2), link=mark_failed.s())
    celery_jobs.drain()
    headline(job("add", children=[job("tsum")]))
"""


def test_job_names_what_is_not_a_job_or_cannot_be_there(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shop=SHOP, test_callbacks=TESTS)
    pytester.makeini("[pytest]\njobtrace_celery_app = shop:app\n")
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:randomly", "-s", "-v")
    result.assert_outcomes(passed=6)
    output = re.sub(r"id '[0-9a-f-]{36}'", "id '<uuid>'", result.stdout.str())
    reports = dict(zip(re.findall(r"test_callbacks.py::(\w+) <<<", output), re.findall(r"<<<(.*?)>>>", output)))
    assert reports == snapshot(
        {
            "test_celery_inline_errback": "span tree does not match: no job 'report_failure' was enqueued; jobs captured: 'shop.charge' (failed), 'shop.mark_failed' (succeeded); if 'shop.report_failure' is a link_error errback: Celery calls an errback that takes (request, exc, traceback) inline, inside the failed job's process span ('run/shop.charge'), so it is not a job",
            "test_celery_link_of_a_failed_job": "span tree does not match: missing child matching job 'add' under job 'charge'; the job enqueued there: 'mark_failed'; job 'charge' failed, so its link callbacks did not run",
            "test_celery_chord_body": "span tree does not match: missing child matching job 'tsum' under 'POST /sums'; the jobs enqueued there: 'add', 'add', 'add'; job 'tsum' was enqueued under job 'add' (the 3rd of the 3 'add' jobs under 'POST /sums', id '<uuid>', the last to finish: a chord body runs under the header task that finished last)",
            "test_rq_on_failure_callback": "span tree does not match: no job 'log_failure' was enqueued; jobs captured: 'shop.pay' (failed); 'shop.log_failure' is the on_failure callback of job 'pay': RQ runs it inside the job's process span ('process default'), so it is not a job",
            "test_rq_on_success_callback": "span tree does not match: no job 'log_success' was enqueued; jobs captured: 'shop.ship' (succeeded); 'shop.log_success' is the on_success callback of job 'ship': RQ runs it inside the job's process span ('process default'), so it is not a job",
            "test_a_succeeded_parent_gets_no_link_hint": "span tree does not match: missing child matching job 'tsum' under job 'add'; the job enqueued there: 'mark_failed'",
        }
    )
