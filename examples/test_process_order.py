"""ProcessOrder and the order workflow: custom spans with business attributes, an error the code sets itself,
and jobs that enqueue jobs (payment -> Fulfillment -> TrackingNotification; a declined card -> Refund).

Every test runs on the built-in adapter, Celery and RQ (the ``system`` fixture): the trees are the same.
"""

from __future__ import annotations

import pytest
from opentelemetry.trace import StatusCode

from conftest import Post, System
from pytest_jobtrace import JobFailedError, JobSpans, assert_span_tree, span
from storefront.logic import PaymentDeclined

PAID = {"id": 7, "total": 99.5, "card": "tok_visa"}
DECLINED = {"id": 8, "total": 25.0, "card": "tok_declined"}


def test_a_paid_order_is_fulfilled_and_tracked(system: System, post: Post, job_spans: JobSpans) -> None:
    post("/orders", json=PAID)
    system.drain()

    assert_span_tree(
        span(
            "POST /orders",
            kind="server",
            attributes={"http.route": "/orders", "http.status_code": 202},  # Flask instrumentation, old HTTP semconv
            children=[
                system.job(
                    "process_order",
                    queue="orders",
                    attempts=1,
                    outcome="succeeded",
                    children=[
                        span(
                            "process_payment",
                            status="unset",
                            attributes={
                                "order.id": 7,
                                "order.total": 99.5,
                                "payment.status": "captured",
                                "payment.transaction_id": "txn_7",
                            },
                        ),
                        span("update_inventory", attributes={"order.id": 7}),
                        span("send_confirmation"),
                        system.job(
                            "fulfillment",
                            outcome="succeeded",
                            children=[
                                span("create_shipment", attributes={"shipment.tracking_number": "TRACK-7"}),
                                system.job(
                                    "tracking_notification",
                                    queue="mailers",
                                    outcome="succeeded",
                                    children=[span("send_tracking_email", attributes={"order.id": 7})],
                                ),
                            ],
                        ),
                    ],
                )
            ],
        ),
        ordered=True,  # payment, then inventory, then confirmation, then the next job
        exact=True,  # no other span, anywhere: nothing is enqueued that the test does not name
    )
    assert job_spans.find("issue_refund") == []


@pytest.mark.jobtrace(expect_failures=True)
def test_a_declined_card_fails_the_job_and_refunds(system: System, post: Post, job_spans: JobSpans) -> None:
    post("/orders", json=DECLINED)
    system.drain()

    declined_payment = span(
        "process_payment",
        status="error",
        description="Payment failed",  # our own, kept: set_status_on_exception=False
        attributes={"order.id": 8, "order.total": 25.0, "payment.status": "declined"},
        exception={"type": PaymentDeclined, "message": "card declined for order 8"},
    )
    assert_span_tree(
        span(
            "POST /orders",
            kind="server",
            children=[
                system.job(
                    "process_order",
                    attempts=1,
                    outcome="failed",
                    # Each system's own process span records the exception that escaped the job.
                    exception={"type": PaymentDeclined, "message": "card declined for order 8"},
                    children=[
                        declined_payment,
                        system.job("refund", outcome="succeeded", children=[span("issue_refund")]),
                    ],
                )
            ],
        ),
        exact=True,  # no inventory update, no confirmation, no fulfillment
    )
    # ... and sets str(exc) as its status description.
    (attempt,) = job_spans.job(system.full_name("process_order")).attempts
    assert (attempt.status.status_code, attempt.status.description) == (StatusCode.ERROR, "card declined for order 8")


def test_an_unexpected_failure_fails_the_drain(system: System, post: Post, job_spans: JobSpans) -> None:
    # Without expect_failures, a job that failed for good is an AssertionError naming it, on every system.
    post("/orders", json=DECLINED)
    with pytest.raises(JobFailedError, match=r"(process_order|ProcessOrderJob).* failed"):
        system.drain()

    assert_span_tree(system.job("process_order", outcome="failed"))
