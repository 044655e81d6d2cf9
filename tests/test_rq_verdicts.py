"""RQ jobs dropped unrun (``Job.cancel``, ``Job.delete``) are reported discarded, and only those.

The live RQ fixture installs this in the test process and the live worker in its own; the trees in both modes
are in tests/test_live_fidelity.py (``canceled_and_deleted_before_they_ran``, ``a_job_cancels_another``).
Here, on fakeredis, what is reported and what is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("rq")
pytest.importorskip("fakeredis")

import fakeredis
import rq_tasks
from rq import Queue
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus

from pytest_jobtrace._jobs.lost import VERDICTS, report_verdict
from pytest_jobtrace.rq import _verdicts


@pytest.fixture
def reports() -> Iterator[list[dict[str, object]]]:
    found: list[dict[str, object]] = []
    undo = _verdicts.install(found.append)
    try:
        yield found
    finally:
        undo()


@pytest.fixture
def queue() -> Queue:
    return Queue(connection=fakeredis.FakeRedis())


def _reasons(found: list[dict[str, object]]) -> list[tuple[Any, Any]]:
    return [(report["job_id"], report["reason"]) for report in found]


def test_a_queued_job_canceled_is_reported_discarded_with_its_name(
    reports: list[dict[str, object]], queue: Queue
) -> None:
    job = queue.enqueue(rq_tasks.hello, 1)
    job.cancel()
    assert reports == [
        {
            "job_id": job.id,
            "job_name": "rq_tasks.hello",
            "verdict": "discarded",
            "reason": "canceled (Job.cancel) before a worker took it",
        }
    ]


def test_scheduled_and_deferred_jobs_deleted_are_reported_dependents_included(
    reports: list[dict[str, object]], queue: Queue
) -> None:
    parent = queue.enqueue_in(timedelta(seconds=30), rq_tasks.hello, "parent")
    child = queue.enqueue(rq_tasks.hello, "child", depends_on=parent)
    assert child.get_status() == JobStatus.DEFERRED
    parent.delete(delete_dependents=True)
    assert sorted(_reasons(reports)) == sorted(
        [
            (parent.id, "deleted (Job.delete) before a worker took it"),
            (child.id, "deleted (Job.delete) before a worker took it"),
        ]
    )


def test_a_job_a_worker_took_is_not_reported(reports: list[dict[str, object]], queue: Queue) -> None:
    """It runs on (or ran): its spans arrive, and wait() must wait for them."""
    started = queue.enqueue(rq_tasks.hello, "started")
    started.set_status(JobStatus.STARTED)
    started.cancel()
    finished = queue.enqueue(rq_tasks.hello, "finished")
    finished.set_status(JobStatus.FINISHED)
    finished.delete()
    assert reports == []


def test_a_stale_job_object_is_read_afresh(reports: list[dict[str, object]], queue: Queue) -> None:
    """The test's Job says queued; Redis says a worker has it: not reported."""
    job = queue.enqueue(rq_tasks.hello, 1)
    Job.fetch(job.id, connection=queue.connection).set_status(JobStatus.STARTED)
    assert job._status == JobStatus.QUEUED
    job.cancel()
    assert reports == []


def test_a_refused_cancel_reports_nothing_and_raises_as_before(reports: list[dict[str, object]], queue: Queue) -> None:
    job = queue.enqueue(rq_tasks.hello, 1)
    job.cancel()
    with pytest.raises(InvalidJobOperation, match="Cannot cancel already canceled job"):
        job.cancel()
    assert len(reports) == 1


def test_a_report_that_fails_is_logged_and_the_cancel_still_happens(
    queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(report: dict[str, object]) -> None:
        raise ConnectionError("receiver gone")

    undo = _verdicts.install(broken)
    try:
        job = queue.enqueue(rq_tasks.hello, 1)
        job.cancel()
    finally:
        undo()
    assert job.get_status() == JobStatus.CANCELED
    assert f"could not report job {job.id} discarded" in caplog.text


def test_undo_restores_rq_s_own_methods(queue: Queue) -> None:
    cancel, delete = Job.cancel, Job.delete
    found: list[dict[str, object]] = []
    _verdicts.install(found.append)()
    assert (Job.cancel, Job.delete) == (cancel, delete)
    queue.enqueue(rq_tasks.hello, 1).cancel()
    assert found == []


def test_the_test_process_report_reaches_wait_s_verdicts(queue: Queue) -> None:
    job = queue.enqueue(rq_tasks.hello, 1)
    undo = _verdicts.install(report_verdict)
    try:
        job.cancel()
    finally:
        undo()
    (verdict,) = VERDICTS.of(job.id)
    assert verdict.describe() == "discarded: canceled (Job.cancel) before a worker took it"
