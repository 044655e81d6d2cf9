"""The guide's jobs as Celery tasks around ``logic``."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from storefront import logic

app = Celery("storefront", broker="memory://", backend="cache+memory://", set_as_current=False)
app.conf.task_routes = {f"{__name__}.{name}": {"queue": queue} for name, queue in logic.QUEUES.items()}


def enqueue(name: str, *args: Any) -> None:
    JOBS[name].delay(*args)


@app.task
def process_order(order_id: int, total: float, card: str) -> str:
    return logic.process_order(order_id, total, card, enqueue)


@app.task
def fulfillment(order_id: int) -> None:
    logic.fulfillment(order_id, enqueue)


@app.task
def tracking_notification(order_id: int, tracking: str) -> None:
    logic.tracking_notification(order_id, tracking)


@app.task
def refund(order_id: int, total: float) -> None:
    logic.refund(order_id, total)


@app.task
def user_onboarding(user_id: int) -> None:
    logic.user_onboarding(user_id, enqueue)


@app.task
def send_welcome_email(user_id: int) -> None:
    logic.onboarding_step("send_welcome_email", user_id)


@app.task
def create_sample_data(user_id: int) -> None:
    logic.onboarding_step("create_sample_data", user_id)


@app.task
def schedule_follow_up(user_id: int) -> None:
    logic.onboarding_step("schedule_follow_up", user_id)


@app.task
def data_import(rows: list[dict[str, Any]]) -> int:
    return logic.data_import(rows)


@app.task
def batch_process(item_ids: list[int]) -> int:
    return logic.batch_process(item_ids)


@app.task(bind=True, max_retries=logic.FAILING_ATTEMPTS)
def retry_aware(self: Task, partner: str) -> None:
    try:
        logic.retry_aware(partner, attempt=self.request.retries + 1)
    except logic.PartnerUnavailable as error:
        raise self.retry(exc=error, countdown=5) from error


JOBS: dict[str, Any] = {
    name: globals()[name]
    for name in (
        "process_order",
        "fulfillment",
        "tracking_notification",
        "refund",
        "user_onboarding",
        "send_welcome_email",
        "create_sample_data",
        "schedule_follow_up",
        "data_import",
        "batch_process",
        "retry_aware",
    )
}
