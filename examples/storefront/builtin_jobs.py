"""The guide's jobs on pytest-jobtrace's built-in adapter: ``Job`` subclasses around ``logic``."""

from __future__ import annotations

from typing import Any

from pytest_jobtrace.builtin import Job
from storefront import logic


def enqueue(name: str, *args: Any) -> None:
    JOBS[name].perform_later(*args)


class ProcessOrderJob(Job):
    queue = "orders"

    def perform(self, order_id: int, total: float, card: str) -> str:
        return logic.process_order(order_id, total, card, enqueue)


class FulfillmentJob(Job):
    queue = "orders"

    def perform(self, order_id: int) -> None:
        logic.fulfillment(order_id, enqueue)


class TrackingNotificationJob(Job):
    queue = "mailers"

    def perform(self, order_id: int, tracking: str) -> None:
        logic.tracking_notification(order_id, tracking)


class RefundJob(Job):
    queue = "orders"

    def perform(self, order_id: int, total: float) -> None:
        logic.refund(order_id, total)


class UserOnboardingJob(Job):
    queue = "onboarding"

    def perform(self, user_id: int) -> None:
        logic.user_onboarding(user_id, enqueue)


class SendWelcomeEmailJob(Job):
    queue = "mailers"

    def perform(self, user_id: int) -> None:
        logic.onboarding_step("send_welcome_email", user_id)


class CreateSampleDataJob(Job):
    queue = "onboarding"

    def perform(self, user_id: int) -> None:
        logic.onboarding_step("create_sample_data", user_id)


class ScheduleFollowUpJob(Job):
    queue = "onboarding"

    def perform(self, user_id: int) -> None:
        logic.onboarding_step("schedule_follow_up", user_id)


class DataImportJob(Job):
    queue = "imports"

    def perform(self, rows: list[dict[str, Any]]) -> int:
        return logic.data_import(rows)


class BatchProcessorJob(Job):
    queue = "batches"

    def perform(self, item_ids: list[int]) -> int:
        return logic.batch_process(item_ids)


class RetryAwareJob(Job):
    queue = "partners"
    retry_on = (logic.PartnerUnavailable,)
    attempts = logic.FAILING_ATTEMPTS + 1
    wait = 5

    def perform(self, partner: str) -> None:
        logic.retry_aware(partner, attempt=self.executions)


JOBS: dict[str, type[Job]] = {
    "process_order": ProcessOrderJob,
    "fulfillment": FulfillmentJob,
    "tracking_notification": TrackingNotificationJob,
    "refund": RefundJob,
    "user_onboarding": UserOnboardingJob,
    "send_welcome_email": SendWelcomeEmailJob,
    "create_sample_data": CreateSampleDataJob,
    "schedule_follow_up": ScheduleFollowUpJob,
    "data_import": DataImportJob,
    "batch_process": BatchProcessorJob,
    "retry_aware": RetryAwareJob,
}
