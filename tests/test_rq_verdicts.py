"""RQ jobs dropped unrun are reported discarded, and only those: canceled or deleted (``Job.cancel``,
``Job.delete``), or dropped by RQ's worker or scheduler because their data is gone (a ttl that ran out).

The live RQ fixture installs the first in the test process and the live worker both in its own; the trees in
both modes are in tests/test_live_fidelity.py (``canceled_and_deleted_before_they_ran``,
``a_job_cancels_another``, ``expired_before_it_was_due``). Here, on fakeredis, what is reported and what is
not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def _collected(install: Callable[[_verdicts.Report], Callable[[], None]]) -> Iterator[list[dict[str, object]]]:
    """What ``install`` reports, while it is installed."""
    found: list[dict[str, object]] = []
    undo = install(found.append)
    try:
        yield found
    finally:
        undo()


@pytest.fixture
def reports() -> Iterator[list[dict[str, object]]]:
    yield from _collected(_verdicts.install)


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


# -- jobs RQ drops because their data is gone (a ttl that ran out while they waited) -----------------------


@pytest.fixture
def dropped() -> Iterator[list[dict[str, object]]]:
    yield from _collected(_verdicts.install_dropped)


def _expire(job: Job) -> None:
    """What Redis does when the job's ttl runs out: its hash goes, its id stays where it waits."""
    job.connection.delete(job.key)


def test_a_queued_job_whose_data_is_gone_is_reported_when_the_worker_drops_it(
    dropped: list[dict[str, object]], queue: Queue
) -> None:
    stale = queue.enqueue(rq_tasks.hello, "stale", ttl=1)
    fresh = queue.enqueue(rq_tasks.hello, "fresh", ttl=60)
    _expire(stale)

    taken = Queue.dequeue_any([queue], None, connection=queue.connection)  # what RQ's worker calls

    assert taken is not None
    assert taken[0].id == fresh.id
    assert dropped == [
        {"job_id": stale.id, "job_name": stale.id, "verdict": "discarded", "reason": _verdicts.DROPPED_BY_WORKER}
    ]
    assert "ttl ran out" in _verdicts.DROPPED_BY_WORKER


def test_a_scheduled_job_whose_data_is_gone_is_reported_when_the_scheduler_drops_it(
    dropped: list[dict[str, object]], queue: Queue
) -> None:
    from rq.scheduler import RQScheduler

    stale = queue.enqueue_in(timedelta(seconds=-1), rq_tasks.hello, "stale", ttl=1)  # due already
    due = queue.enqueue_in(timedelta(seconds=-1), rq_tasks.hello, "due")
    _expire(stale)
    scheduler = RQScheduler([queue], connection=queue.connection)
    scheduler.acquire_locks()

    scheduler.enqueue_scheduled_jobs()

    assert queue.job_ids == [due.id]
    assert _reasons(dropped) == [(stale.id, _verdicts.DROPPED_BY_SCHEDULER)]


def test_jobs_found_and_lookups_outside_the_worker_s_and_scheduler_s_report_nothing(
    dropped: list[dict[str, object]], queue: Queue
) -> None:
    """A missing job looked up by anyone else (the test, a registry's cleanup) was not dropped by RQ."""
    from rq.exceptions import NoSuchJobError

    gone = queue.enqueue(rq_tasks.hello, "gone")
    _expire(gone)
    with pytest.raises(NoSuchJobError):
        Job.fetch(gone.id, connection=queue.connection)
    assert Job.fetch_many([gone.id], connection=queue.connection) == [None]
    kept = queue.enqueue(rq_tasks.hello, "kept")
    assert Queue.dequeue_any([queue], None, connection=queue.connection) is not None  # passes over gone
    assert Queue.dequeue_any([queue], None, connection=queue.connection) is None  # kept was taken: empty
    assert _reasons(dropped) == [(gone.id, _verdicts.DROPPED_BY_WORKER)]
    assert kept.id not in {report["job_id"] for report in dropped}


def test_ids_given_as_an_iterator_are_read_once_and_still_reported(
    dropped: list[dict[str, object]], queue: Queue
) -> None:
    """Should RQ's scheduler pass its ids as an iterator, the fetch must not spend them before the check."""
    job = queue.enqueue(rq_tasks.hello, 1)
    gone = queue.enqueue(rq_tasks.hello, "gone")
    _expire(gone)
    _verdicts._taking.where = "scheduler"  # as inside RQScheduler.enqueue_scheduled_jobs
    try:
        found = Job.fetch_many(iter([job.id, gone.id]), connection=queue.connection)
    finally:
        _verdicts._taking.where = None
    assert [found_job.id if found_job else None for found_job in found] == [job.id, None]
    assert _reasons(dropped) == [(gone.id, _verdicts.DROPPED_BY_SCHEDULER)]


def test_undo_restores_what_install_dropped_wrapped(queue: Queue) -> None:
    from rq.scheduler import RQScheduler

    before = [
        Queue.__dict__["dequeue_any"],
        RQScheduler.__dict__["enqueue_scheduled_jobs"],
        Job.__dict__["fetch"],
        Job.__dict__["fetch_many"],
    ]
    found: list[dict[str, object]] = []
    _verdicts.install_dropped(found.append)()
    after = [
        Queue.__dict__["dequeue_any"],
        RQScheduler.__dict__["enqueue_scheduled_jobs"],
        Job.__dict__["fetch"],
        Job.__dict__["fetch_many"],
    ]
    assert after == before
    stale = queue.enqueue(rq_tasks.hello, "stale")
    _expire(stale)
    Queue.dequeue_any([queue], None, connection=queue.connection)
    assert found == []


def test_a_dropped_job_s_report_reaches_wait_s_verdicts(queue: Queue) -> None:
    stale = queue.enqueue(rq_tasks.hello, "stale", ttl=1)
    _expire(stale)
    undo = _verdicts.install_dropped(report_verdict)
    try:
        Queue.dequeue_any([queue], None, connection=queue.connection)
    finally:
        undo()
    (verdict,) = VERDICTS.of(stale.id)
    assert verdict.describe() == f"discarded: {_verdicts.DROPPED_BY_WORKER}"
