"""The rq_jobs fixture, run the way users run it (pytester, in-process and in a subprocess, with xdist)."""

from __future__ import annotations

import pytest

pytest.importorskip("rq")
pytest.importorskip("fakeredis")

import rq_fidelity
from helpers import both_modes, run_pytest

from pytest_jobtrace.adapters import adapters
from pytest_jobtrace.rq._names import recognise_span

SHOP = """
import pytest
from opentelemetry import trace
from rq import Retry, get_current_job
from pytest_jobtrace import JobFailedError, assert_span_tree, job, span

tracer = trace.get_tracer("shop")
CALLS = {}


def send_invoice(order_id):
    with tracer.start_as_current_span("render_pdf"):
        return order_id


def charge(order_id, failures):
    CALLS[order_id] = CALLS.get(order_id, 0) + 1
    if CALLS[order_id] <= failures:
        raise ConnectionError("gateway down")


def place_order(queue, order_id, failures=0):
    with tracer.start_as_current_span("POST /orders"):
        queue.enqueue(send_invoice, order_id)
        queue.enqueue(charge, order_id, failures, retry=Retry(max=2, interval=[5, 30]))
"""


def shop(pytester: pytest.Pytester, tests: str) -> None:
    pytester.makepyfile(test_shop=SHOP + tests)


@both_modes
def test_rq_jobs_drains_real_rq_queues_and_job_matches_them(pytester: pytest.Pytester, run: str) -> None:
    shop(
        pytester,
        """
def test_order(job_spans, rq_jobs, job_clock):
    place_order(rq_jobs.queue(), 42, failures=1)
    runs = rq_jobs.drain()

    assert [(r.name.split(".")[-1], r.status, r.at) for r in runs] == [
        ("send_invoice", "finished", 0.0), ("charge", "scheduled", 0.0), ("charge", "finished", 5.0),
    ]
    assert job_clock.now == 5.0
    assert_span_tree(
        span("POST /orders", children=[
            job("send_invoice", queue="default", outcome="succeeded", children=["render_pdf"]),
            job("charge", attempts=2, outcome="succeeded", linked=False),
        ])
    )
    charge = job_spans.job("charge")
    assert charge.system == "rq"
    assert charge.retry_reasons == ["ConnectionError: gateway down"]
""",
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=1)


def test_a_wrong_expectation_fails_with_the_tree_and_the_difference(pytester: pytest.Pytester) -> None:
    shop(
        pytester,
        """
def test_order(job_spans, rq_jobs):
    place_order(rq_jobs.queue(), 42, failures=1)
    rq_jobs.drain()
    assert_span_tree(span("POST /orders", children=[job("charge", attempts=3)]))
""",
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*job 'charge': expected 3 attempts, found 2 (attempt 1 retried, attempt 2 succeeded)",
            "*captured (*",
            "*POST /orders",
        ]
    )


def test_undrained_jobs_are_named_with_rq_jobs_drain(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings =\n    always\n")
    shop(
        pytester,
        """
def test_forgot_to_drain(job_spans, rq_jobs):
    place_order(rq_jobs.queue(), 7)
    assert_span_tree(span("POST /orders", children=[job("send_invoice", outcome="succeeded")]))
""",
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*job 'send_invoice' was enqueued under 'POST /orders' but never processed*",
            "*note: enqueued but never processed: *drain the queue first (rq_jobs.drain())",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*2 job(s) were enqueued but never performed: test_shop.send_invoice(7) on queue 'default'*rq_jobs.drain()*"]
    )


def test_failed_jobs_raise_the_common_error_unless_expected(pytester: pytest.Pytester) -> None:
    shop(
        pytester,
        """
def test_raises(rq_jobs):
    place_order(rq_jobs.queue(), 1, failures=9)
    with pytest.raises(JobFailedError) as caught:
        rq_jobs.drain()
    assert "rq_jobs.drain(): 1 job failed:" in str(caught.value)
    assert "failed after 3 attempts at +0s, +5s, +35s: ConnectionError: gateway down" in str(caught.value)


@pytest.mark.jobtrace(expect_failures=True)
def test_expected(job_spans, rq_jobs):
    place_order(rq_jobs.queue(), 2, failures=9)
    runs = rq_jobs.drain()
    assert [r.status for r in rq_jobs.failed] == ["failed"]
    assert_span_tree(span("POST /orders", children=[job("charge", attempts=3, outcome="failed")]))
""",
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)


def test_one_scenario_passes_on_the_builtin_adapter_and_on_rq(pytester: pytest.Pytester) -> None:
    work = """
from opentelemetry import trace

tracer = trace.get_tracer("both")
FAILS = {"n": 0}


def deliver():
    FAILS["n"] += 1
    with tracer.start_as_current_span("deliver"):
        if FAILS["n"] == 1:
            raise ConnectionError("smtp down")
"""
    rq_side = """
import work


def notify():
    work.deliver()
"""
    test = """
from rq import Retry
from pytest_jobtrace import assert_span_tree, job, span
from pytest_jobtrace.builtin import Job
import rq_side, work


class notify(Job):
    retry_on = (ConnectionError,)
    attempts = 2
    wait = 5

    def perform(self):
        work.deliver()


EXPECTED = span("POST /notify", children=[job("notify", attempts=2, outcome="succeeded", children=["deliver"])])


def test_builtin(job_spans, builtin_jobs):
    work.FAILS["n"] = 0
    with work.tracer.start_as_current_span("POST /notify"):
        notify.perform_later()
    builtin_jobs.drain()
    assert_span_tree(EXPECTED)


def test_rq(job_spans, rq_jobs):
    work.FAILS["n"] = 0
    with work.tracer.start_as_current_span("POST /notify"):
        rq_jobs.queue().enqueue(rq_side.notify, retry=Retry(max=1, interval=5))
    rq_jobs.drain()
    assert_span_tree(EXPECTED)
"""
    pytester.makepyfile(work=work, rq_side=rq_side, test_both=test)
    pytester.syspathinsert()
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)


def test_drain_only_naming_nothing_pending_lists_what_is(pytester: pytest.Pytester) -> None:
    shop(
        pytester,
        """
def test_only(rq_jobs):
    place_order(rq_jobs.queue(), 3)
    with pytest.raises(ValueError) as caught:
        rq_jobs.drain(only="refund")
    assert str(caught.value).startswith(
        "rq_jobs.drain(only='refund'): no pending job matches; pending: test_shop.send_invoice(3) on queue 'default'"
    )
    assert [r.name for r in rq_jobs.drain(only=send_invoice)] == ["test_shop.send_invoice"]
    rq_jobs.drain()
""",
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_a_real_redis_from_the_flag_with_xdist(pytester: pytest.Pytester) -> None:
    url = rq_fidelity.require_redis()
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    shop(
        pytester,
        "".join(
            f"""
def test_order_{n}(job_spans, rq_jobs):
    queue = rq_jobs.queue()
    assert "fake" not in type(queue.connection).__module__
    assert len(queue) == 0
    place_order(queue, {n})
    rq_jobs.drain()
    assert_span_tree(span("POST /orders", children=[job("send_invoice", outcome="succeeded")]))
"""
            for n in range(6)
        ),
    )
    result = pytester.runpytest_subprocess("-n", "2", f"--jobtrace-redis-url={url}")
    result.assert_outcomes(passed=6)


def test_the_adapter_is_registered_and_recognises_only_rq_spans() -> None:
    adapter = adapters()["rq"]
    assert (adapter.name, adapter.fixture_name, adapter.extra) == ("rq", "rq_jobs", "rq")
    assert [option.name for option in adapter.options] == [
        "redis_url",
        "expect_failures",
        "rq_live_redis_url",
        "rq_live_queues",
        "live_workers",
        "live_timeout",
        "live_receiver",
    ]
    assert adapter.recognise is not None
    assert recognise_span.__module__ == "pytest_jobtrace.rq._names"


def test_recognition_does_not_import_rq(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_no_rq="""
import sys

def test_spans(job_spans):
    from opentelemetry import trace
    with trace.get_tracer("t").start_as_current_span("plain"):
        pass
    assert job_spans.jobs() == []
    assert "rq" not in sys.modules
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


@both_modes
def test_a_job_function_defined_inside_the_test_is_refused_at_enqueue(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        test_local="""
import pytest
from rq import Queue


def module_level(n):
    return n


def test_nested(rq_jobs):
    def charge(order_id):
        return order_id

    rq_jobs.queue().enqueue(charge, 1)


def test_lambda_in_enqueue_many(rq_jobs):
    rq_jobs.queue().enqueue_many([Queue.prepare_data(lambda: 1)])


def test_module_level_and_dotted_names_still_run(rq_jobs):
    rq_jobs.queue().enqueue(module_level, 1)
    rq_jobs.queue().enqueue("test_local.module_level", 2)
    assert [run.status for run in rq_jobs.drain()] == ["finished", "finished"]


def test_rq_is_restored_after_the_test():
    assert Queue.create_job.__module__ == "rq.queue"
"""
    )
    result = run_pytest(pytester, run, "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "E *.JobNotImportable: rq_jobs: test_local.test_nested.<locals>.charge cannot be an RQ job: RQ stores a "
            "job's function by its dotted name and imports it when the job runs, and a function defined inside "
            "another function (or a lambda) cannot be imported (a real worker fails the job with 'Invalid "
            "attribute name: charge'). Define charge at module level.",
            "E *.JobNotImportable: rq_jobs: test_local.test_lambda_in_enqueue_many.<locals>.<lambda> cannot be an "
            "RQ job: *'Invalid attribute name: <lambda>'). Define a named function at module level.",
        ]
    )
