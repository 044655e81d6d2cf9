"""How a job's spans relate to the request that enqueued it: child (default), link, or none."""

from __future__ import annotations

import pytest

from pytest_jobtrace import JobSpans, assert_span_tree, job, span
from pytest_jobtrace.builtin import JobRuntime
from shop import web


def test_a_detached_job_links_to_its_enqueue(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    web.handle("POST", "/catalog/publish")  # RebuildSearchIndexJob sets propagation = "link"
    builtin_jobs.drain()

    assert job_spans.render() == (
        "POST /catalog/publish [server]\n"
        "└── send maintenance [producer]\n"
        "\n"  # a blank line between traces
        'process maintenance [consumer, link "send maintenance"]\n'
        "└── rebuild_index"
    )
    assert_span_tree(
        [
            span("POST /catalog/publish", children=[span("send maintenance")]),
            span("process maintenance", links=[span("send maintenance", kind="producer")], children=["rebuild_index"]),
        ],
        exact=True,
    )
    assert_span_tree(job("RebuildSearchIndexJob", linked=True, children=["rebuild_index"]))


@pytest.mark.jobtrace(propagation="link")
def test_link_every_job_of_a_test(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)
    builtin_jobs.drain()

    assert_span_tree(
        """
        POST /checkout [server]
          send orders [producer]
        process orders [consumer, link "send orders"]
          reserve_stock
          send payments [producer]
        """
    )
    assert_span_tree(job("ChargePaymentJob", linked=True))


@pytest.mark.jobtrace(mode="inline")
def test_inline_mode_runs_jobs_at_once(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)

    assert builtin_jobs.pending == []
    assert_span_tree(job("SendReceiptJob", outcome="succeeded", children=["render_receipt"]))
