"""Jobs told apart by execution, not by id alone (issue 17, item 3): ``Task.replace``, two enqueues with one
id, a different job under the same id, and a real retry that must stay one job. Run as users run them."""

from __future__ import annotations

import re

import celery.contrib.pytest  # noqa: F401
import opentelemetry.instrumentation.celery  # noqa: F401
import pytest
from inline_snapshot import snapshot

import pytest_jobtrace.celery._runtime  # noqa: F401

pytest.importorskip("rq")
pytest.importorskip("fakeredis")

# In-process pytester runs forget the modules they imported: import Celery here once (see test_celery_jobs).

SHOP = """
import functools

from celery import Celery
from opentelemetry import trace

tracer = trace.get_tracer("shop")
app = Celery("shop", broker="memory://", backend="cache+memory://", set_as_current=False)
task = functools.partial(app.task, shared=False)


@task
def add(x, y):
    with tracer.start_as_current_span("adding"):
        return x + y


@task(bind=True)
def replacer(self, x):
    raise self.replace(add.s(x, 1))


@task(bind=True)
def flaky(self):
    if self.request.retries < 1:
        raise self.retry(countdown=1, exc=ConnectionError("gateway down"))


def hello(value):
    with tracer.start_as_current_span("hello.work"):
        return value


def charge(calls=[]):
    calls.append(1)
    if len(calls) < 2:
        raise ConnectionError("gateway down")
"""

TESTS = """
import pytest
from opentelemetry import trace
from rq import Retry

from pytest_jobtrace import SpanTreeMismatch, assert_span_tree, job
from shop import add, charge, flaky, hello, replacer

tracer = trace.get_tracer("test")


def report(job_spans, *failing):
    print("<<<")
    print(job_spans.render("jobs"))
    print([(j.short_name, len(j.attempts), j.outcome) for j in job_spans.jobs()])
    for expected in failing:
        with pytest.raises(SpanTreeMismatch) as excinfo:
            assert_span_tree(expected)
        print(str(excinfo.value).splitlines()[0])
    print(">>>")


def test_replace(job_spans, celery_jobs):
    with tracer.start_as_current_span("POST /sum"):
        replacer.delay(1)
    celery_jobs.drain()
    assert_span_tree(job("replacer", attempts=1, outcome="discarded", children=[job("add", outcome="succeeded")]))
    report(job_spans, job("replacer", attempts=2), job("replacer", outcome="succeeded"))


def test_two_apply_async_with_one_task_id(job_spans, celery_jobs):
    with tracer.start_as_current_span("POST /sum"):
        add.apply_async((1, 2), task_id="same")
        add.apply_async((3, 4), task_id="same")
    celery_jobs.drain()
    assert_span_tree(job("add", count=2, attempts=1, outcome="succeeded", children=["adding"]))
    report(job_spans, job("add", attempts=2))


def test_another_task_under_the_same_id(job_spans, celery_jobs):
    with tracer.start_as_current_span("POST /sum"):
        add.apply_async((1, 2), task_id="same")
        flaky.apply_async(task_id="same")
    celery_jobs.drain()
    assert_span_tree(job("add", attempts=1))
    assert_span_tree(job("flaky", attempts=2, exact=True))
    report(job_spans, job("add", attempts=3), job("flaky", children=["adding"]))


def test_the_same_task_under_other_ids(job_spans, celery_jobs):
    with tracer.start_as_current_span("POST /sum"):
        add.delay(1, 2)
        add.delay(3, 4)
    celery_jobs.drain()
    report(job_spans, job("add", attempts=2))


def test_a_celery_retry_is_one_job(job_spans, celery_jobs):
    with tracer.start_as_current_span("POST /sum"):
        flaky.delay()
    celery_jobs.drain()
    assert_span_tree(job("flaky", attempts=2, outcome="succeeded"))
    report(job_spans, job("flaky", count=2))


def test_two_rq_enqueues_with_one_job_id(job_spans, rq_jobs):
    queue = rq_jobs.queue()
    with tracer.start_as_current_span("POST /hello"):
        queue.enqueue(hello, 1, job_id="same")
        queue.enqueue(hello, 2, job_id="same")
    rq_jobs.drain()
    report(job_spans, job("hello", attempts=1, count=2))


def test_an_rq_retry_is_one_job(job_spans, rq_jobs):
    with tracer.start_as_current_span("POST /charge"):
        rq_jobs.queue().enqueue(charge, retry=Retry(max=2))
    rq_jobs.drain()
    assert_span_tree(job("charge", attempts=2, outcome="succeeded"))
    report(job_spans, job("charge", count=2))
"""


@pytest.fixture(name="reports")
def _reports(pytester: pytest.Pytester) -> dict[str, str]:
    pytester.makepyfile(shop=SHOP, test_identity=TESTS)
    pytester.makeini("[pytest]\njobtrace_celery_app = shop:app\n")
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:randomly", "-s", "-v")
    result.assert_outcomes(passed=7)
    output = result.stdout.str()
    names = re.findall(r"test_identity.py::(\w+) <<<", output)
    blocks = re.findall(r"<<<\n(.*?)\n>>>", output, re.S)
    assert len(names) == len(blocks) == 7
    return dict(zip(names, blocks))


def test_jobs_are_told_apart_by_execution(reports: dict[str, str]) -> None:
    assert reports == snapshot(
        {
            "test_replace": """\
POST /sum
└── job shop.replacer [queue "celery", attempts 1, outcome "discarded"]
    └── job shop.add [queue "celery", attempts 1, outcome "succeeded"]
        └── adding
[('replacer', 1, 'discarded'), ('add', 1, 'succeeded')]
span tree does not match: at 'POST /sum' > 'apply_async/shop.replacer': job 'replacer': expected 2 attempts, found 1 (attempt 1 discarded)
span tree does not match: at 'POST /sum' > 'apply_async/shop.replacer': job 'replacer': expected outcome 'succeeded', got 'discarded' (attempt 1 discarded)\
""",
            "test_two_apply_async_with_one_task_id": """\
POST /sum
├── job shop.add [queue "celery", attempts 1, outcome "succeeded"]
│   └── adding
└── job shop.add [queue "celery", attempts 1, outcome "succeeded"]
    └── adding
[('add', 1, 'succeeded'), ('add', 1, 'succeeded')]
span tree does not match: nothing in the capture matches job add [attempts 2]; 2 spans come equally close, the first: at 'POST /sum' > 'apply_async/shop.add': job 'add': expected 2 attempts, found 1 (attempt 1 succeeded)\
""",
            "test_another_task_under_the_same_id": """\
POST /sum
├── job shop.add [queue "celery", attempts 1, outcome "succeeded"]
│   └── adding
└── job shop.flaky [queue "celery", attempts 2, outcome "succeeded"]
[('add', 1, 'succeeded'), ('flaky', 2, 'succeeded')]
span tree does not match: at 'POST /sum' > 'apply_async/shop.add': job 'add': expected 3 attempts, found 1 (attempt 1 succeeded)
span tree does not match: missing child matching 'adding' under job 'flaky'; it has no children\
""",
            "test_the_same_task_under_other_ids": """\
POST /sum
├── job shop.add [queue "celery", attempts 1, outcome "succeeded"]
│   └── adding
└── job shop.add [queue "celery", attempts 1, outcome "succeeded"]
    └── adding
[('add', 1, 'succeeded'), ('add', 1, 'succeeded')]
span tree does not match: nothing in the capture matches job add [attempts 2]; 2 spans come equally close, the first: at 'POST /sum' > 'apply_async/shop.add': job 'add': expected 2 attempts, found 1 (attempt 1 succeeded)\
""",
            "test_a_celery_retry_is_one_job": """\
POST /sum
└── job shop.flaky [queue "celery", attempts 2, outcome "succeeded"]
[('flaky', 2, 'succeeded')]
span tree does not match: expected 2 jobs matching 'flaky' in the capture, found 1\
""",
            "test_two_rq_enqueues_with_one_job_id": """\
POST /hello
├── job shop.hello [queue "default", attempts 0, outcome "pending"]
└── job shop.hello [queue "default", attempts 2, outcome "succeeded"]
    ├── hello.work
    └── hello.work
[('hello', 0, 'pending'), ('hello', 2, 'succeeded')]
span tree does not match: expected 2 jobs matching 'hello' in the capture, found 0; the closest other one differs: at 'POST /hello' > 'send default': job 'hello' was enqueued under 'POST /hello' but never processed: a later enqueue reused its id 'same'\
""",
            "test_an_rq_retry_is_one_job": """\
POST /charge
└── job shop.charge [queue "default", attempts 2, outcome "succeeded"]
[('charge', 2, 'succeeded')]
span tree does not match: expected 2 jobs matching 'charge' in the capture, found 1\
""",
        }
    )
