"""The declined-card workflow pinned as a snapshot: ``render(details=True)`` compared with inline-snapshot.

The snapshot form writes every span with its attributes, events and exception, and replaces what changes
from run to run (message ids, Celery's ETA and host name, stack traces) with ``*``. The web framework's
user agent carries its version, so the test names that key volatile too. Each system's tree is its own:
span names, the attributes each instrumentation sets, where the exception is recorded.

Refill after a deliberate change with ``pytest examples/test_snapshots.py --inline-snapshot=fix``.
"""
# ruff: noqa: E501  (a snapshot line is one span, attributes included)

from __future__ import annotations

import pytest
from inline_snapshot import snapshot

from conftest import Post, System
from pytest_jobtrace import JobSpans, assert_span_tree

DECLINED = {"id": 8, "total": 25.0, "card": "tok_declined"}


@pytest.mark.jobtrace(expect_failures=True)
def test_a_declined_card_as_a_snapshot(system: System, post: Post, job_spans: JobSpans) -> None:
    post("/orders", json=DECLINED)
    system.drain()

    text = job_spans.render(details=True, volatile=["http.user_agent"])
    assert (
        text
        == snapshot(
            {
                "builtin": """\
POST /orders [server] {http.flavor="1.1", http.host="localhost", http.method="POST", http.route="/orders", http.scheme="http", http.server_name="localhost", http.status_code=202, http.target="/orders", http.user_agent=*, net.host.name="localhost", net.host.port=80, net.peer.ip="127.0.0.1"}
└── send orders [producer] {jobtrace.job.class="storefront.builtin_jobs.ProcessOrderJob", messaging.destination.name="orders", messaging.message.id=*, messaging.operation.name="send", messaging.operation.type="send", messaging.system="jobtrace"}
    └── process orders [consumer, ERROR "card declined for order 8", exception "storefront.logic.PaymentDeclined" "card declined for order 8"] {error.type="storefront.logic.PaymentDeclined", jobtrace.job.attempt=1, jobtrace.job.class="storefront.builtin_jobs.ProcessOrderJob", messaging.destination.name="orders", messaging.message.id=*, messaging.operation.name="process", messaging.operation.type="process", messaging.system="jobtrace"}
        ├── process_payment [ERROR "Payment failed", exception "storefront.logic.PaymentDeclined" "card declined for order 8"] {order.id=8, order.total=25.0, payment.status="declined"}
        └── send orders [producer] {jobtrace.job.class="storefront.builtin_jobs.RefundJob", messaging.destination.name="orders", messaging.message.id=*, messaging.operation.name="send", messaging.operation.type="send", messaging.system="jobtrace"}
            └── process orders [consumer] {jobtrace.job.attempt=1, jobtrace.job.class="storefront.builtin_jobs.RefundJob", messaging.destination.name="orders", messaging.message.id=*, messaging.operation.name="process", messaging.operation.type="process", messaging.system="jobtrace"}
                └── issue_refund {order.id=8, refund.amount=25.0}\
""",
                "celery": """\
POST /orders [server] {http.flavor="1.1", http.host="localhost", http.method="POST", http.route="/orders", http.scheme="http", http.server_name="localhost", http.status_code=202, http.target="/orders", http.user_agent=*, net.host.name="localhost", net.host.port=80, net.peer.ip="127.0.0.1"}
└── apply_async/storefront.celery_tasks.process_order [producer] {celery.action="apply_async", celery.task_name="storefront.celery_tasks.process_order", messaging.destination="orders", messaging.destination_kind="queue", messaging.message.id=*}
    └── run/storefront.celery_tasks.process_order [consumer, ERROR "card declined for order 8", exception "storefront.logic.PaymentDeclined" "card declined for order 8"] {celery.action="run", celery.delivery_info="{'exchange': '', 'routing_key': 'orders', 'priority': 0, 'redelivered': False}", celery.hostname=*, celery.reply_to=*, celery.state="FAILURE", celery.task_name="storefront.celery_tasks.process_order", messaging.conversation_id=*, messaging.destination="orders", messaging.message.id=*}
        ├── process_payment [ERROR "Payment failed", exception "storefront.logic.PaymentDeclined" "card declined for order 8"] {order.id=8, order.total=25.0, payment.status="declined"}
        └── apply_async/storefront.celery_tasks.refund [producer] {celery.action="apply_async", celery.task_name="storefront.celery_tasks.refund", messaging.destination="orders", messaging.destination_kind="queue", messaging.message.id=*}
            └── run/storefront.celery_tasks.refund [consumer] {celery.action="run", celery.delivery_info="{'exchange': '', 'routing_key': 'orders', 'priority': 0, 'redelivered': False}", celery.hostname=*, celery.reply_to=*, celery.state="SUCCESS", celery.task_name="storefront.celery_tasks.refund", messaging.conversation_id=*, messaging.destination="orders", messaging.message.id=*}
                └── issue_refund {order.id=8, refund.amount=25.0}\
""",
                "rq": """\
POST /orders [server] {http.flavor="1.1", http.host="localhost", http.method="POST", http.route="/orders", http.scheme="http", http.server_name="localhost", http.status_code=202, http.target="/orders", http.user_agent=*, net.host.name="localhost", net.host.port=80, net.peer.ip="127.0.0.1"}
└── send orders [producer] {messaging.destination.name="orders", messaging.message.id=*, messaging.operation.name="send", messaging.operation.type="send", messaging.system="rq", rq.enqueue.reason="enqueue", rq.job.func_name="storefront.rq_jobs.process_order"}
    └── process orders [consumer, ERROR "card declined for order 8", exception "storefront.logic.PaymentDeclined" "card declined for order 8"] {error.type="storefront.logic.PaymentDeclined", messaging.destination.name="orders", messaging.message.id=*, messaging.operation.name="process", messaging.operation.type="process", messaging.system="rq", rq.job.attempt=1, rq.job.func_name="storefront.rq_jobs.process_order", rq.job.status="failed"}
        ├── process_payment [ERROR "Payment failed", exception "storefront.logic.PaymentDeclined" "card declined for order 8"] {order.id=8, order.total=25.0, payment.status="declined"}
        └── send orders [producer] {messaging.destination.name="orders", messaging.message.id=*, messaging.operation.name="send", messaging.operation.type="send", messaging.system="rq", rq.enqueue.reason="enqueue", rq.job.func_name="storefront.rq_jobs.refund"}
            └── process orders [consumer] {messaging.destination.name="orders", messaging.message.id=*, messaging.operation.name="process", messaging.operation.type="process", messaging.system="rq", rq.job.attempt=1, rq.job.func_name="storefront.rq_jobs.refund", rq.job.status="finished"}
                └── issue_refund {order.id=8, refund.amount=25.0}\
""",
            }
        )[system.name]
    )
    # The same text is an expectation: the snapshot and the assertion say one thing.
    assert_span_tree(text, exact=True)
    # So is the folded form: one `job` line per job, with the spans its attempts made under it.
    assert_span_tree(job_spans.render("jobs"), exact=True)
