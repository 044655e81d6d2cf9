"""Failures that are not retried, discards, and the exception events both leave on the spans."""

from __future__ import annotations

import re

import pytest

from pytest_jobtrace import JobSpans, assert_span_tree, job, span
from pytest_jobtrace.builtin import JobRuntime
from shop import web
from shop.jobs import ChargePaymentJob
from shop.payments import CardDeclined, FakeGateway


@pytest.mark.jobtrace(expect_failures=True)
def test_a_declined_card_fails_at_once(job_spans: JobSpans, builtin_jobs: JobRuntime, gateway: FakeGateway) -> None:
    gateway.script("declined")
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)
    runs = builtin_jobs.drain()

    assert [(r.job_class.__name__, r.outcome) for r in runs] == [
        ("ProcessOrderJob", "succeeded"),
        ("ChargePaymentJob", "failed"),
    ]
    assert isinstance(runs[1].exception, CardDeclined)
    assert_span_tree(
        """
        process payments [consumer, ERROR "card declined for order 7"]
          charge_card [ERROR "CardDeclined: card declined for order 7"]
        """
    )
    assert_span_tree(
        job(
            "ChargePaymentJob",
            attempts=1,
            outcome="failed",
            attributes={"error.type": "shop.payments.CardDeclined"},
            children=[span("charge_card", exception=CardDeclined)],
        )
    )
    assert_span_tree(
        span(
            "process payments",
            exception={"type": "shop.payments.CardDeclined", "message": re.compile(r"card declined.*")},
        )
    )


def test_a_vanished_order_is_discarded(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    ChargePaymentJob.perform_later(404, 1999)  # no such order: discard_on, not a failure
    (run,) = builtin_jobs.drain()

    assert run.outcome == "discarded"
    assert_span_tree(
        {
            "job": "ChargePaymentJob",
            "outcome": "discarded",
            "attempts": 1,
        }
    )
    assert_span_tree(
        span("process payments", status="error", events=[{"name": "jobtrace.discard"}], exception="OrderNotFound")
    )
