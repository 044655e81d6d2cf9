"""The guide's jobs as plain functions: custom spans, attributes, events and errors, whatever runs them.

Each job system wraps these functions (``builtin_jobs.py``, ``celery_tasks.py``, ``rq_jobs.py``). A job that
enqueues further jobs gets an ``enqueue(name, *args)`` callable from its wrapper, so the logic names the next
job without knowing which system will run it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

tracer = trace.get_tracer("storefront")

DECLINED_CARD = "tok_declined"  # the card the fake payment gateway always declines
CHUNK_SIZE = 100
FAILING_ATTEMPTS = 2  # RetryAware fails this many times, then succeeds...
OFFLINE_PARTNER = "offline"  # ...unless the partner is offline: then every attempt fails


# The queue each job goes to, the same on every job system.
QUEUES = {
    "process_order": "orders",
    "fulfillment": "orders",
    "refund": "orders",
    "tracking_notification": "mailers",
    "user_onboarding": "onboarding",
    "send_welcome_email": "mailers",
    "create_sample_data": "onboarding",
    "schedule_follow_up": "onboarding",
    "data_import": "imports",
    "batch_process": "batches",
    "retry_aware": "partners",
}


Enqueue = Callable[..., None]  # enqueue(name, *args): the next job, by its name in QUEUES


class PaymentDeclined(Exception):
    """The bank said no: not worth a retry."""


class PartnerUnavailable(Exception):
    """A transient failure: worth a retry."""


class InvalidRow(ValueError):
    pass


# -- ProcessOrder and the order workflow ---------------------------------------------------------------


def process_order(order_id: int, total: float, card: str, enqueue: Enqueue) -> str:
    """Charge, update stock, confirm; then fulfil. A declined card enqueues a refund of the hold and raises."""
    try:
        transaction_id = _process_payment(order_id, total, card)
    except PaymentDeclined:
        enqueue("refund", order_id, total)
        raise
    with tracer.start_as_current_span("update_inventory", attributes={"order.id": order_id}):
        pass
    with tracer.start_as_current_span("send_confirmation", attributes={"order.id": order_id}):
        pass
    enqueue("fulfillment", order_id)
    return transaction_id


def _process_payment(order_id: int, total: float, card: str) -> str:
    attributes = {"order.id": order_id, "order.total": total}
    # set_status_on_exception=False keeps our own "Payment failed" instead of the SDK's "PaymentDeclined: ...".
    with tracer.start_as_current_span("process_payment", attributes=attributes, set_status_on_exception=False) as span:
        if card == DECLINED_CARD:
            span.set_attribute("payment.status", "declined")
            span.set_status(Status(StatusCode.ERROR, "Payment failed"))
            raise PaymentDeclined(f"card declined for order {order_id}")
        transaction_id = f"txn_{order_id}"
        span.set_attributes({"payment.status": "captured", "payment.transaction_id": transaction_id})
        return transaction_id


def fulfillment(order_id: int, enqueue: Enqueue) -> None:
    tracking = f"TRACK-{order_id}"
    with tracer.start_as_current_span("create_shipment", attributes={"order.id": order_id}) as span:
        span.set_attribute("shipment.tracking_number", tracking)
    enqueue("tracking_notification", order_id, tracking)


def tracking_notification(order_id: int, tracking: str) -> None:
    with tracer.start_as_current_span(
        "send_tracking_email", attributes={"order.id": order_id, "shipment.tracking_number": tracking}
    ):
        pass


def refund(order_id: int, total: float) -> None:
    with tracer.start_as_current_span("issue_refund", attributes={"order.id": order_id, "refund.amount": total}):
        pass


# -- UserOnboarding ----------------------------------------------------------------------------------------

# The three jobs onboarding enqueues, and the span each one makes.
ONBOARDING_STEPS = {
    "send_welcome_email": "deliver_email",
    "create_sample_data": "create_sample_project",
    "schedule_follow_up": "plan_follow_up",
}


def user_onboarding(user_id: int, enqueue: Enqueue) -> None:
    with tracer.start_as_current_span("onboard_user", attributes={"user.id": user_id}) as span:
        for name in ONBOARDING_STEPS:
            enqueue(name, user_id)
        span.add_event("onboarding_jobs_enqueued", {"jobs.count": len(ONBOARDING_STEPS)})


def onboarding_step(step: str, user_id: int) -> None:
    """What each of the three onboarding jobs does: one span."""
    with tracer.start_as_current_span(ONBOARDING_STEPS[step], attributes={"user.id": user_id}):
        pass


# -- DataImport ----------------------------------------------------------------------------------------------


def data_import(rows: Sequence[dict[str, Any]]) -> int:
    """One span per row; a bad row is an event, not an exception; the import span is ERROR if any row failed."""
    with tracer.start_as_current_span("import_records", attributes={"import.rows": len(rows)}) as span:
        errors = 0
        for index, row in enumerate(rows):
            with tracer.start_as_current_span("import_row", attributes={"row.index": index}):
                try:
                    _validate(row)
                except InvalidRow as error:
                    errors += 1
                    span.add_event("row_error", {"row.index": index, "error.message": str(error)})
        processed = len(rows) - errors
        span.set_attributes(
            {
                "import.records_processed": processed,
                "import.errors_count": errors,
                "import.success_rate": round(processed / len(rows), 2) if rows else 1.0,
            }
        )
        if errors:
            span.set_status(Status(StatusCode.ERROR, f"{errors} of {len(rows)} rows failed"))
        return processed


def _validate(row: dict[str, Any]) -> None:
    if "@" not in str(row.get("email", "")):
        raise InvalidRow(f"invalid email {row.get('email')!r}")


# -- BatchProcessor ------------------------------------------------------------------------------------------


def batch_process(item_ids: Sequence[int]) -> int:
    for index, start in enumerate(range(0, len(item_ids), CHUNK_SIZE)):
        chunk = item_ids[start : start + CHUNK_SIZE]
        with tracer.start_as_current_span(
            f"process_chunk_{index}", attributes={"chunk.index": index, "chunk.size": len(chunk)}
        ):
            pass
    return len(item_ids)


# -- RetryAware ------------------------------------------------------------------------------------------


def retry_aware(partner: str, attempt: int) -> None:
    """Marks the job's own span with its retry count (and a retry event after the first attempt)."""
    span = trace.get_current_span()  # the process span of whichever job system runs us
    span.set_attribute("job.retry_count", attempt - 1)
    if attempt > 1:
        span.add_event("retry", {"retry.attempt": attempt})
    with tracer.start_as_current_span("sync_partner", attributes={"partner.name": partner}):
        if attempt <= FAILING_ATTEMPTS or partner == OFFLINE_PARTNER:
            raise PartnerUnavailable(f"{partner} did not answer")
