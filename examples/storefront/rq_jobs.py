"""The guide's jobs as RQ functions around ``logic``; web handlers enqueue them with ``enqueuer``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq import Queue, Retry, get_current_job

from storefront import logic


def enqueuer(connection: Any) -> Callable[..., None]:
    """``enqueue(name, *args)`` on ``connection``: what the web app uses."""

    def enqueue(name: str, *args: Any) -> None:
        options: dict[str, Any] = {}
        if name == "retry_aware":
            options["retry"] = Retry(max=logic.FAILING_ATTEMPTS, interval=5)
        Queue(logic.QUEUES[name], connection=connection).enqueue(JOBS[name], *args, **options)

    return enqueue


def enqueue(name: str, *args: Any) -> None:
    """Inside a job: enqueue on the connection the current job came from."""
    job = get_current_job()
    assert job is not None, "enqueue() runs inside an RQ job"
    enqueuer(job.connection)(name, *args)


def process_order(order_id: int, total: float, card: str) -> str:
    return logic.process_order(order_id, total, card, enqueue)


def fulfillment(order_id: int) -> None:
    logic.fulfillment(order_id, enqueue)


def tracking_notification(order_id: int, tracking: str) -> None:
    logic.tracking_notification(order_id, tracking)


def refund(order_id: int, total: float) -> None:
    logic.refund(order_id, total)


def user_onboarding(user_id: int) -> None:
    logic.user_onboarding(user_id, enqueue)


def send_welcome_email(user_id: int) -> None:
    logic.onboarding_step("send_welcome_email", user_id)


def create_sample_data(user_id: int) -> None:
    logic.onboarding_step("create_sample_data", user_id)


def schedule_follow_up(user_id: int) -> None:
    logic.onboarding_step("schedule_follow_up", user_id)


def data_import(rows: list[dict[str, Any]]) -> int:
    return logic.data_import(rows)


def batch_process(item_ids: list[int]) -> int:
    return logic.batch_process(item_ids)


def retry_aware(partner: str) -> None:
    job = get_current_job()
    assert job is not None
    assert job.retries_left is not None, "retry_aware is enqueued with a Retry"
    # RQ counts down: retries_left starts at Retry.max and drops by one before each retry.
    logic.retry_aware(partner, attempt=logic.FAILING_ATTEMPTS - job.retries_left + 1)


JOBS: dict[str, Callable[..., Any]] = {
    "process_order": process_order,
    "fulfillment": fulfillment,
    "tracking_notification": tracking_notification,
    "refund": refund,
    "user_onboarding": user_onboarding,
    "send_welcome_email": send_welcome_email,
    "create_sample_data": create_sample_data,
    "schedule_follow_up": schedule_follow_up,
    "data_import": data_import,
    "batch_process": batch_process,
    "retry_aware": retry_aware,
}
