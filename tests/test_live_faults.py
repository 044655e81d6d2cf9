"""Faults with real workers: a worker process killed mid-job, the broker connection cut and restored, the
receiver refusing spans for a moment. Each fault test starts a worker of its own (the session's shared
live workers are never killed or cut), on the Redis at 127.0.0.1:6379 (a leased database); a broker
connection is cut through a loopback TCP proxy the test owns (tests/tcp_proxy.py), never by touching the
service. Without Redis they skip, unless JOBTRACE_REQUIRE_REDIS=1 makes that a failure.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
pytest.importorskip("rq")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

import live_fault_jobs as jobs
from live_helpers import require_rabbitmq, require_redis
from tcp_proxy import TCPProxy

from pytest_jobtrace import JobSpans
from pytest_jobtrace._core.options import JobtraceOptions
from pytest_jobtrace._live.workers import LiveWorkers
from pytest_jobtrace.celery._live import CeleryLiveWorkers
from pytest_jobtrace.rq._live import RQLiveWorkers

REDIS = ("127.0.0.1", 6379)
RABBITMQ = ("127.0.0.1", 5672)


@pytest.fixture(autouse=True)
def _redis() -> None:
    require_redis()


@pytest.fixture(name="celery_app")
def _celery_app() -> Any:
    return jobs.app


@contextmanager
def dedicated(request: pytest.FixtureRequest, kind: type[LiveWorkers], **options: object) -> Iterator[Any]:
    """A live worker of this test's own (not the session's shared one), stopped and reaped at the end."""
    workers = kind(request.config)
    workers.options = JobtraceOptions({**workers.options, **options})
    handle = workers.begin(request)
    try:
        yield handle
    finally:
        workers.detach(handle)
        workers.stop()


def started(marker: Path, timeout: float = 30) -> int:
    """The pid of the process running the job, once the job says it started."""
    deadline = time.monotonic() + timeout
    while not (marker.exists() and marker.read_text()):
        if time.monotonic() > deadline:
            raise AssertionError(f"the job did not start within {timeout}s")
        time.sleep(0.02)
    return int(marker.read_text())


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


# -- a worker process killed mid-job ---------------------------------------------------------------


def test_a_celery_pool_process_killed_mid_task_is_reported_lost_by_wait(
    request: pytest.FixtureRequest, job_spans: JobSpans, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    with dedicated(request, CeleryLiveWorkers, celery_live_pool="prefork", celery_live_concurrency=2):
        result = jobs.charge.delay(str(marker))
        pid = started(marker)
        kill(pid)
        with pytest.raises(AssertionError) as lost:
            job_spans.wait(timeout=30)
    assert str(lost.value) == (
        "job_spans.wait(): job(s) lost: their worker process died running them, and they were not redelivered; "
        "no span of theirs will come:\n"
        f"  job 'faults.charge' (id {result.id}): attempt 1 started on worker pid {pid}, which died "
        "(WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 0.); not redelivered (the task has "
        "no acks_late: its message was acknowledged when the worker took it)"
    )
    job_spans.assert_span_tree(
        """
        apply_async/faults.charge
        charge started
        """,
        exact=True,
    )


def test_a_celery_task_with_acks_late_is_redelivered_and_the_trace_shows_both_attempts(
    request: pytest.FixtureRequest, job_spans: JobSpans, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    with dedicated(request, CeleryLiveWorkers, celery_live_pool="prefork", celery_live_concurrency=2):
        jobs.charge_late.delay(str(marker))
        kill(started(marker))
        job_spans.wait(timeout=30)  # for the redelivery; the killed attempt's span never comes
    job = job_spans.job("faults.charge_late")
    assert job.outcome == "succeeded"
    assert len(job.attempts) == 1  # the redelivered one; the killed one's run span died with its process
    # The unfinished attempt shows by the span it exported before it died, whose parent never arrived.
    job_spans.assert_span_tree(
        """
        apply_async/faults.charge_late
        └── run/faults.charge_late
            └── charge card
        charge started
        """,
        exact=True,
    )


def test_an_rq_work_horse_killed_mid_job_is_failed_by_its_worker_with_the_attempt_s_span(
    request: pytest.FixtureRequest, job_spans: JobSpans, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    with dedicated(request, RQLiveWorkers) as worker:
        queued = worker.queue().enqueue(jobs.rq_charge, str(marker))
        horse = started(marker)
        kill(horse)
        job_spans.wait(timeout=30)  # RQ's worker fails the job itself: no loss to report
    job = job_spans.job("rq_charge")
    assert job.outcome == "failed"
    (info,) = job.attempt_infos
    assert info.worker_lost == f"work horse pid {horse} terminated: signal 9 (SIGKILL)"
    job_spans.assert_span_tree(
        """
        send default
        └── process default [consumer, error "Work-horse terminated unexpectedly: signal 9 (SIGKILL)"]
        charge started
        """,
        exact=True,
    )
    assert queued.id == job.id


def test_an_rq_job_stopped_on_request_is_failed_as_stopped_with_the_attempt_s_span(
    request: pytest.FixtureRequest, job_spans: JobSpans, tmp_path: Path
) -> None:
    from rq import Retry
    from rq.command import send_stop_job_command

    marker = tmp_path / "started"
    with dedicated(request, RQLiveWorkers) as worker:
        queued = worker.queue().enqueue(jobs.rq_charge, str(marker), retry=Retry(max=1))
        horse = started(marker)
        send_stop_job_command(worker.connection, queued.id)  # RQ's worker kills the horse: no retry follows
        job_spans.wait(timeout=30)
    job = job_spans.job("rq_charge")
    assert job.outcome == "failed"
    (attempt,) = job.attempts
    assert (attempt.attributes or {})["rq.job.status"] == "stopped"
    assert job.attempt_infos[0].worker_lost == f"work horse pid {horse} terminated: signal 9 (SIGKILL)"
    job_spans.assert_span_tree(
        """
        send default
        └── process default [consumer, error "Job stopped by user, work-horse terminated."]
        charge started
        """,
        exact=True,
    )


def test_an_rq_job_with_a_retry_whose_horse_was_killed_is_retried_and_finishes(
    request: pytest.FixtureRequest, job_spans: JobSpans, tmp_path: Path
) -> None:
    from rq import Retry

    marker = tmp_path / "started"
    with dedicated(request, RQLiveWorkers) as worker:
        worker.queue().enqueue(jobs.rq_charge, str(marker), retry=Retry(max=1))
        kill(started(marker))
        job_spans.wait(timeout=30)
    job = job_spans.job("rq_charge")
    assert [i.attempt_outcome for i in job.attempt_infos] == ["retried", "succeeded"]
    assert job.retry_reasons == ["SIGKILL: Work-horse terminated unexpectedly: signal 9 (SIGKILL)"]
    job_spans.assert_span_tree(
        """
        send default
        └── process default [consumer, error]
            └── send default
                └── process default
                    └── charge card
        charge started
        """,
        exact=True,
    )


# -- the broker connection cut and restored ---------------------------------------------------------


def proxied(kind: type[LiveWorkers], proxy: TCPProxy) -> type[LiveWorkers]:
    """``kind`` whose worker reaches Redis through ``proxy``; the test process and results go direct."""

    class Proxied(kind):  # type: ignore[valid-type,misc]
        def prepare(self, request: pytest.FixtureRequest) -> None:
            super().prepare(request)
            database = self._lease.database
            self.proxied_url = f"redis://127.0.0.1:{proxy.port}/{database}"
            if hasattr(self, "conf"):
                self.conf["broker_url"] = self.proxied_url

        def command(self) -> Any:
            argv, env = super().command()
            return [
                arg.replace(self.redis_url, self.proxied_url) if getattr(self, "redis_url", "") else arg for arg in argv
            ], env

        def attach(self, request: pytest.FixtureRequest) -> Any:
            handle = super().attach(request)
            if hasattr(self, "conf"):
                self.app.conf.broker_url = self._lease.url  # the test publishes directly
                from pytest_jobtrace.celery._live import _reset_connections

                _reset_connections(self.app)
            return handle

    return Proxied


def test_celery_rides_out_a_broker_connection_cut_while_tasks_run(
    request: pytest.FixtureRequest, job_spans: JobSpans
) -> None:
    with (
        TCPProxy(REDIS) as proxy,
        dedicated(
            request, proxied(CeleryLiveWorkers, proxy), celery_live_pool="prefork", celery_live_concurrency=2
        ) as worker,
    ):
        before = [jobs.nap.delay(1.0) for _ in range(3)]
        time.sleep(0.5)
        proxy.cut()
        time.sleep(3)
        proxy.restore()
        after = [jobs.nap.delay(0.1) for _ in range(2)]
        job_spans.wait(timeout=60)  # the prefetched message comes back after the visibility timeout
        assert "consumer: Connection to broker lost" in worker.output()
    assert sorted(j.id or "" for j in job_spans.jobs()) == sorted(r.id for r in before + after)
    assert [(j.outcome, len(j.attempts)) for j in job_spans.jobs()] == [("succeeded", 1)] * 5
    job_spans.assert_span_tree("apply_async/faults.nap\n└── run/faults.nap\n    └── nap\n" * 5, exact=True)


def test_celery_on_rabbitmq_rides_out_a_broker_connection_cut_while_tasks_run(
    request: pytest.FixtureRequest, job_spans: JobSpans
) -> None:
    """On RabbitMQ the broker itself requeues what the worker had not acknowledged when the connection
    dropped: the prefetched task comes back as soon as the worker reconnects, no visibility timeout."""
    require_rabbitmq()
    with TCPProxy(RABBITMQ) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"  # the worker and the test both go through it
        with dedicated(
            request,
            CeleryLiveWorkers,
            celery_live_broker_url=url,
            celery_live_pool="prefork",
            celery_live_concurrency=2,
        ) as worker:
            before = [jobs.nap.delay(1.0) for _ in range(3)]
            time.sleep(0.5)
            proxy.cut()
            time.sleep(3)
            proxy.restore()
            after = [jobs.nap.delay(0.1) for _ in range(2)]
            job_spans.wait(timeout=60)
            assert "consumer: Connection to broker lost" in worker.output()
    assert sorted(j.id or "" for j in job_spans.jobs()) == sorted(r.id for r in before + after)
    assert [(j.outcome, len(j.attempts)) for j in job_spans.jobs()] == [("succeeded", 1)] * 5
    job_spans.assert_span_tree("apply_async/faults.nap\n└── run/faults.nap\n    └── nap\n" * 5, exact=True)


def test_rq_rides_out_a_cut_while_it_waits_for_jobs(request: pytest.FixtureRequest, job_spans: JobSpans) -> None:
    """RQ retries the connection around its dequeue only: cut while the worker waits there, it carries on
    (its scheduler process dies, which is what RQ does too)."""
    with TCPProxy(REDIS) as proxy, dedicated(request, proxied(RQLiveWorkers, proxy)) as worker:
        worker.queue().enqueue(jobs.rq_nap, 0)
        job_spans.wait(timeout=30)  # the worker is past its start-up,
        time.sleep(1)  # and past the job's bookkeeping: blocked in its dequeue, waiting for the next job
        pid = worker.pid
        proxy.cut()
        time.sleep(3)
        proxy.restore()
        for n in range(1, 3):
            worker.queue().enqueue(jobs.rq_nap, 0.05 * n)
        try:
            job_spans.wait(timeout=30)
        except AssertionError:
            print(worker.output())
            raise
        process = worker._workers.process
        assert process.alive(), process.death()
        assert worker.pid == pid
        assert "could not connect to Redis instance" in worker.output()
    assert [(j.outcome, len(j.attempts)) for j in job_spans.jobs()] == [("succeeded", 1)] * 3
    job_spans.assert_span_tree("send default\n└── process default\n    └── nap\n" * 3, exact=True)


def test_an_rq_worker_whose_connection_drops_mid_job_exits_and_the_trace_says_why(
    request: pytest.FixtureRequest, job_spans: JobSpans, tmp_path: Path
) -> None:
    """RQ 3.0 cannot ride out a cut while a job runs: the work horse cannot store the job's result, and the
    worker, asking Redis for the job's status when the horse ends, quits on the ConnectionError. The job's own
    code succeeded; the horse's span records the attempt as failed, with the ConnectionError, as the horse
    saw it; in Redis the job stays STARTED (another worker's registry cleanup later fails it as abandoned)."""
    from rq.job import Job, JobStatus

    marker = tmp_path / "started"
    with TCPProxy(REDIS) as proxy, dedicated(request, proxied(RQLiveWorkers, proxy)) as worker:
        queued = worker.queue().enqueue(jobs.rq_charge, str(marker), 1.0)
        started(marker)
        proxy.cut()
        time.sleep(3)
        proxy.restore()
        job_spans.wait(timeout=30)
        process = worker._workers.process
        deadline = time.monotonic() + 30
        while process.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process.alive()
        assert "found an unhandled exception, quitting" in worker.output()
        assert Job.fetch(queued.id, connection=worker.connection).get_status() == JobStatus.STARTED
    (attempt,) = job_spans.job("rq_charge").attempt_infos
    assert attempt.attempt_outcome == "failed"
    job_spans.assert_span_tree(
        """
        send default
        └── process default [consumer, error /.*reset by peer.*/, exception "redis.exceptions.ConnectionError"]
            └── charge started
        """,
        exact=True,
    )


# -- the receiver refusing spans for a moment ------------------------------------------------------


@pytest.mark.parametrize("system", ["celery", "rq"])
def test_spans_refused_for_a_moment_are_sent_again_by_the_worker_and_none_is_lost(
    request: pytest.FixtureRequest, job_spans: JobSpans, jobtrace_receiver: Any, system: str
) -> None:
    kind = CeleryLiveWorkers if system == "celery" else RQLiveWorkers
    with dedicated(request, kind) as worker:
        before = jobtrace_receiver.refused
        jobtrace_receiver.refuse(3, status=503, retry_after=0.2)
        for n in range(5):
            if system == "celery":
                jobs.nap.delay(0.01 * n)
            else:
                worker.queue().enqueue(jobs.rq_nap, 0.01 * n)
        job_spans.wait(timeout=60)
        assert jobtrace_receiver.refused - before == 3  # the worker's exporter met every refusal
    tree = (
        "apply_async/faults.nap\n└── run/faults.nap\n    └── nap\n"
        if system == "celery"
        else "send default\n└── process default\n    └── nap\n"
    )
    job_spans.assert_span_tree(tree * 5, exact=True)
    assert [j.outcome for j in job_spans.jobs()] == ["succeeded"] * 5
