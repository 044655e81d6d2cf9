"""The shop's background jobs, run by pytest-jobtrace's built-in adapter."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from pytest_jobtrace.builtin import Job
from shop.payments import GATEWAY, GatewayTimeout

tracer = trace.get_tracer("shop.jobs")


class OrderNotFound(Exception):
    pass


ORDERS: dict[int, str] = {}  # order id -> status; a stand-in for the database


class ProcessOrderJob(Job):
    """Reserves stock, then hands the payment to a job of its own."""

    queue = "orders"

    def perform(self, order_id: int, amount_cents: int) -> None:
        with tracer.start_as_current_span("reserve_stock", attributes={"order.id": order_id}):
            ORDERS[order_id] = "reserved"
        ChargePaymentJob.perform_later(order_id, amount_cents)


class ChargePaymentJob(Job):
    """Retry-aware: timeouts are retried with exponential waits, the last attempt uses the backup gateway."""

    queue = "payments"
    retry_on = (GatewayTimeout,)
    discard_on = (OrderNotFound,)
    attempts = 3
    wait = "exponential"

    def perform(self, order_id: int, amount_cents: int) -> None:
        if order_id not in ORDERS:
            raise OrderNotFound(f"order {order_id} is gone")
        last_try = self.executions == self.attempts
        attributes = {"order.id": order_id, "payment.attempt": self.executions, "payment.backup": last_try}
        with tracer.start_as_current_span("charge_card", attributes=attributes) as span:
            status = GATEWAY.charge(order_id, amount_cents, via="backup" if last_try else "primary")
            span.set_attribute("payment.status", status)
        ORDERS[order_id] = "paid"
        SendReceiptJob.perform_later(order_id)


class SendReceiptJob(Job):
    queue = "mailers"

    def perform(self, order_id: int) -> None:
        with tracer.start_as_current_span("render_receipt", attributes={"order.id": order_id}):
            pass


class ImportProductsJob(Job):
    """A batch job: one span per chunk of rows."""

    queue = "imports"

    def perform(self, rows: list[dict[str, Any]], chunk_size: int) -> None:
        for number, start in enumerate(range(0, len(rows), chunk_size)):
            chunk = rows[start : start + chunk_size]
            with tracer.start_as_current_span(f"process_chunk_{number}", attributes={"chunk.rows": len(chunk)}):
                for row in chunk:
                    if not row.get("sku"):
                        raise ValueError(f"row without a sku: {row!r}")


class RebuildSearchIndexJob(Job):
    """Long and detached from the request that asked for it: its own trace, linked to the enqueue."""

    queue = "maintenance"
    propagation = "link"

    def perform(self) -> None:
        with tracer.start_as_current_span("rebuild_index"):
            pass


class RecordHeartbeatJob(Job):
    queue = "maintenance"

    def perform(self) -> None:
        with tracer.start_as_current_span("write_heartbeat"):
            pass
