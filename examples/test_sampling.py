"""Sampling: a sampler's decision at the request travels with the jobs it enqueues, unless they are linked.

The global TracerProvider is set once per process, so these tests hand the server a provider of its own, with
the application's sampler, as OpenTelemetry instrumentations accept (``tracer_provider=``). job_spans captures
from every SDK provider, whoever made it; spans a sampler drops are never recorded, so never captured.
"""

from __future__ import annotations

from pytest_jobtrace import JobSpans, assert_span_tree, job, span
from pytest_jobtrace.builtin import JobRuntime
from shop import telemetry
from shop.web import Server


def test_health_checks_and_their_jobs_are_not_sampled(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    server = Server(tracer_provider=telemetry.tracer_provider())
    server.handle("GET", "/health")
    server.handle("POST", "/checkout", order_id=7, amount_cents=1999)
    (heartbeat, *_) = builtin_jobs.drain()

    assert heartbeat.job_class.__name__ == "RecordHeartbeatJob"  # it ran, untraced
    assert job_spans.find("GET /health") == []
    assert job_spans.find("write_heartbeat") == []
    assert [j.short_name for j in job_spans.jobs()] == ["ProcessOrderJob", "ChargePaymentJob", "SendReceiptJob"]
    assert_span_tree(job("ProcessOrderJob", outcome="succeeded"))


def test_a_linked_job_is_sampled_on_its_own(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    # RebuildSearchIndexJob starts a new trace linked to its enqueue, so the sampler decides afresh: the
    # dropped request's decision does not reach it, and its link points at a span that was never recorded.
    server = Server(tracer_provider=telemetry.tracer_provider(skip_routes=["/catalog/publish"]))
    server.handle("POST", "/catalog/publish")
    builtin_jobs.drain()

    assert job_spans.find("POST /catalog/publish") == []
    assert job_spans.render() == "process maintenance [consumer, link (not captured)]\n└── rebuild_index"
    assert_span_tree(span("process maintenance", children=["rebuild_index"]), exact=True)
