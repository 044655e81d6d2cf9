"""job(exception=...): the exception the job's last attempt recorded, in Python, in a text tree, in the
expected block and in the folded snapshot form."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from pytest_jobtrace import JobSpans, assert_span_tree, job, span
from pytest_jobtrace.builtin import Job, JobRuntime

tracer = trace.get_tracer(__name__)


class CardDeclined(Exception):
    pass


class GatewayTimeout(Exception):
    pass


class ChargeJob(Job):
    queue = "payments"
    retry_on = (GatewayTimeout,)
    attempts = 2

    def perform(self, order_id: int, fail: str = "") -> None:
        if fail == "declined":
            raise CardDeclined(f"card declined for order {order_id}")
        if fail == "once" and self.executions == 1:
            raise GatewayTimeout("gateway timed out")


def _charge(builtin_jobs: JobRuntime, fail: str) -> None:
    with tracer.start_as_current_span("POST /orders"):
        ChargeJob.perform_later(8, fail)
    builtin_jobs.drain(expect_failures=True)


@pytest.mark.parametrize(
    "exception",
    [
        CardDeclined,
        "CardDeclined",
        {"type": CardDeclined, "message": "card declined for order 8"},
        {"message": "card declined for order 8"},
    ],
    ids=["class", "name", "type and message", "message"],
)
def test_the_last_attempt_s_exception(builtin_jobs: JobRuntime, job_spans: JobSpans, exception: object) -> None:
    _charge(builtin_jobs, "declined")
    assert_span_tree(span("POST /orders", children=[job("ChargeJob", outcome="failed", exception=exception)]))


@pytest.mark.parametrize(
    ("exception", "difference"),
    [
        (KeyError, "expected KeyError, got test_job_exception.CardDeclined: 'card declined for order 8'"),
        ("Declined", "expected 'Declined', got test_job_exception.CardDeclined"),  # a look-alike name
        (
            {"type": CardDeclined, "message": "card declined for order 9"},
            "expected CardDeclined with message 'card declined for order 9', got",
        ),
    ],
    ids=["other type", "look-alike name", "other message"],
)
def test_a_wrong_exception_fails_naming_it(
    builtin_jobs: JobRuntime, job_spans: JobSpans, exception: object, difference: str
) -> None:
    _charge(builtin_jobs, "declined")
    with pytest.raises(AssertionError) as failure:
        assert_span_tree(job("ChargeJob", exception=exception))
    message = str(failure.value)
    assert f"at 'POST /orders' > 'send payments': job 'ChargeJob': exception: {difference}" in message
    assert "(on 'process payments')" in message


def test_an_earlier_attempt_s_exception_is_not_the_job_s(builtin_jobs: JobRuntime, job_spans: JobSpans) -> None:
    # Retried once, then succeeded: the job's last attempt recorded nothing.
    _charge(builtin_jobs, "once")
    assert_span_tree(job("ChargeJob", attempts=2, outcome="succeeded"))
    with pytest.raises(AssertionError, match=r"exception: expected GatewayTimeout, got no exception event"):
        assert_span_tree(job("ChargeJob", exception=GatewayTimeout))


def test_a_job_never_processed_has_no_exception(builtin_jobs: JobRuntime, job_spans: JobSpans) -> None:
    with tracer.start_as_current_span("POST /orders"):
        ChargeJob.perform_later(8, "declined")
    with pytest.raises(AssertionError, match=r"job 'ChargeJob' was enqueued under 'POST /orders' but never processed"):
        assert_span_tree(job("ChargeJob", exception=CardDeclined))
    with pytest.raises(AssertionError, match=r"expected CardDeclined, but the job was never processed"):
        assert_span_tree(job("ChargeJob", outcome="pending", exception=CardDeclined))
    builtin_jobs.drain(expect_failures=True)


def test_the_text_tree_and_the_expected_block_say_it_the_same_way(
    builtin_jobs: JobRuntime, job_spans: JobSpans
) -> None:
    _charge(builtin_jobs, "declined")
    assert_span_tree(
        'POST /orders\n  job ChargeJob [outcome "failed", exception "CardDeclined" "card declined for order 8"]'
    )
    with pytest.raises(AssertionError) as failure:
        assert_span_tree("job ChargeJob [exception * /.*order 9/]")
    assert "job ChargeJob [exception * /.*order 9/]" in str(failure.value)  # the expected block
    with pytest.raises(ValueError, match="unknown key"):
        job("ChargeJob", exception={"typ": CardDeclined})


def test_the_folded_snapshot_form_writes_the_job_s_exception(builtin_jobs: JobRuntime, job_spans: JobSpans) -> None:
    _charge(builtin_jobs, "declined")
    folded = job_spans.render("jobs", details=True)
    line = folded.splitlines()[1]
    assert line.startswith(
        '└── job test_job_exception.ChargeJob [queue "payments", attempts 1, outcome "failed", '
        'exception "test_job_exception.CardDeclined" "card declined for order 8"] {error.type='
    )
    assert_span_tree(folded, exact=True)
    # Without details the folded form stays short: no exception, no attributes.
    assert job_spans.render("jobs").splitlines()[1] == (
        '└── job test_job_exception.ChargeJob [queue "payments", attempts 1, outcome "failed"]'
    )
