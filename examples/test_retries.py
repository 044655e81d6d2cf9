"""Retries: attempts, waits on the virtual clock, retry events, and what happens when they run out."""

from __future__ import annotations

import pytest

from pytest_jobtrace import JobSpans, assert_span_tree, job, span
from pytest_jobtrace.builtin import JobFailedError, JobRuntime
from shop import web
from shop.payments import FakeGateway, GatewayTimeout


def test_a_timeout_is_retried(job_spans: JobSpans, builtin_jobs: JobRuntime, gateway: FakeGateway) -> None:
    gateway.script("timeout", "timeout", "ok")
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)
    builtin_jobs.drain()

    assert builtin_jobs.now == 3.0  # waited 1 s, then 2 s: on the virtual clock, nobody slept
    assert [via for _, _, via in gateway.charges] == ["primary", "primary", "backup"]
    assert_span_tree(job("ChargePaymentJob", attempts=3, outcome="succeeded"))
    assert_span_tree(
        span(
            "send payments",
            children=[
                span(
                    "process payments",
                    status="error",
                    events=[{"name": "jobtrace.retry", "attributes": {"jobtrace.retry.delay": 1.0}}],
                    exception=GatewayTimeout,
                ),
                span("process payments", attributes={"jobtrace.job.attempt": 2}, events=["jobtrace.retry"]),
                span(
                    "process payments",
                    status="unset",
                    children=[span("charge_card", attributes={"payment.attempt": 3, "payment.backup": True})],
                ),
            ],
        ),
        ordered=True,  # the attempts, in the order they started
    )
    assert job_spans.job("ChargePaymentJob").retry_reasons == [
        "shop.payments.GatewayTimeout: primary gateway timed out",
        "shop.payments.GatewayTimeout: primary gateway timed out",
    ]


def test_every_attempt_is_a_span(job_spans: JobSpans, builtin_jobs: JobRuntime, gateway: FakeGateway) -> None:
    gateway.script("timeout", "timeout", "ok")
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)
    builtin_jobs.drain()

    # count=N: this one expected node stands for exactly N sibling spans.
    assert_span_tree(span("send payments", children=[span("process payments", count=3)]))
    assert_span_tree(span("send payments", children=[span("process payments", status="error", count=2)]))


def test_retries_run_out(job_spans: JobSpans, builtin_jobs: JobRuntime, gateway: FakeGateway) -> None:
    gateway.script("timeout", "timeout", "timeout")
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)

    with pytest.raises(JobFailedError, match=r"ChargePaymentJob.* failed after 3 attempts: GatewayTimeout"):
        builtin_jobs.drain()

    # The spans were recorded all the same.
    assert_span_tree(job("ChargePaymentJob", attempts=3, outcome="failed"))
    assert_span_tree(
        span(
            "process payments",
            attributes={"jobtrace.job.attempt": 3},
            events=["jobtrace.retries_exhausted"],
            exception={"type": "GatewayTimeout", "message": "backup gateway timed out"},
        )
    )
    assert job_spans.find(attributes={"messaging.destination.name": "mailers"}) == []
