"""A request enqueues a job, which enqueues the next: the same trace asserted in each expectation form."""

from __future__ import annotations

from pytest_jobtrace import JobSpans, assert_span_tree, job, span
from pytest_jobtrace.builtin import JobRuntime
from shop import web
from shop.jobs import ORDERS


def test_checkout_as_a_text_tree(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)
    builtin_jobs.drain()

    assert ORDERS[7] == "paid"
    assert_span_tree(
        """
        POST /checkout [server]
          send orders [producer]
            process orders [consumer]
              reserve_stock
              send payments [producer]
                process payments [consumer]
                  charge_card
                  send mailers [producer]
                    process mailers [consumer]
                      render_receipt
        """
    )


def test_checkout_with_span_matchers(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)
    builtin_jobs.drain()

    assert_span_tree(
        span(
            "POST /checkout",
            kind="server",
            attributes={"http.route": "/checkout", "http.response.status_code": 202},
            children=[
                span(
                    "send orders",
                    kind="producer",
                    attributes={"messaging.system": "jobtrace", "messaging.destination.name": "orders"},
                    children=[span("process orders", kind="consumer", attributes={"jobtrace.job.attempt": 1})],
                )
            ],
        )
    )


def test_checkout_as_dicts(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)
    builtin_jobs.drain()

    # An expected root may match any span, so a subtree needs no mention of what sits above it.
    assert_span_tree(
        {
            "name": "process payments",
            "children": [
                {"name": "charge_card", "attributes": {"order.id": 7, "payment.status": "captured"}},
                {"name": "send mailers"},
            ],
        }
    )


def test_checkout_as_jobs(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)
    builtin_jobs.drain()

    assert_span_tree(
        span(
            "POST /checkout",
            children=[
                job(
                    "ProcessOrderJob",
                    queue="orders",
                    outcome="succeeded",
                    children=[
                        span("reserve_stock"),
                        job(
                            "ChargePaymentJob",
                            attempts=1,
                            children=[span("charge_card"), {"job": "SendReceiptJob", "outcome": "succeeded"}],
                        ),
                    ],
                )
            ],
        )
    )


def test_job_views(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)
    builtin_jobs.drain()

    order, charge, receipt = job_spans.jobs()  # in enqueue order
    assert order.name == "shop.jobs.ProcessOrderJob"
    assert (order.queue, order.outcome, len(order.attempts)) == ("orders", "succeeded", 1)
    assert order.enqueued == [charge]
    assert charge.enqueued == [receipt]
    assert job_spans.job("SendReceiptJob") is receipt
    assert receipt.publish is not None
    assert receipt.publish.name == "send mailers"
    assert {(s.attributes or {}).get("messaging.message.id") for s in receipt.attempts} == {receipt.id}


def test_folded_rendering(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    web.handle("POST", "/checkout", order_id=7, amount_cents=1999)
    builtin_jobs.drain()

    assert job_spans.render("jobs") == (
        "POST /checkout [server]\n"
        "└── job shop.jobs.ProcessOrderJob [queue 'orders', 1 attempt (succeeded), succeeded]\n"
        "    ├── reserve_stock\n"
        "    └── job shop.jobs.ChargePaymentJob [queue 'payments', 1 attempt (succeeded), succeeded]\n"
        "        ├── charge_card\n"
        "        └── job shop.jobs.SendReceiptJob [queue 'mailers', 1 attempt (succeeded), succeeded]\n"
        "            └── render_receipt"
    )
