"""Load: 1,000 jobs through one live worker, every span accounted for (exact counts, each job's tree).

Marked ``load``: deselect with ``-m "not load"``. Each test prints how long its jobs took (``-s`` shows it,
and so does the summary line of ``-rP``); speed figures belong in benchmarks/, this only checks nothing is lost.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("celery")
pytest.importorskip("rq")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

import live_fault_jobs as jobs
from live_helpers import require_redis
from test_live_faults import dedicated

from pytest_jobtrace import JobSpans
from pytest_jobtrace.celery._live import CeleryLiveWorkers
from pytest_jobtrace.rq._live import RQLiveWorkers

JOBS = 1000

pytestmark = pytest.mark.load


@pytest.fixture(autouse=True)
def _redis() -> None:
    require_redis()


@pytest.fixture(name="celery_app")
def _celery_app() -> Any:
    return jobs.app


def report(capsys: pytest.CaptureFixture[str], what: str, published: float, waited: float) -> None:
    with capsys.disabled():
        print(f"\n{what}: {JOBS} jobs published in {published:.1f}s, all their spans in after {waited:.1f}s")


def check_every_job(job_spans: JobSpans, send: str, process: str) -> None:
    counts = Counter(span.name for span in job_spans.spans)
    assert counts == {send: JOBS, process: JOBS, "tick": JOBS}
    found = job_spans.jobs()
    assert len(found) == JOBS
    assert len({job.id for job in found}) == JOBS
    for job in found:
        assert (job.outcome, len(job.attempts)) == ("succeeded", 1), job
        (attempt,) = job.attempt_nodes
        assert job.publish_node is not None
        assert attempt.parent is job.publish_node  # the run continues its publish's trace
        assert [child.name for child in attempt.children] == ["tick"]


def test_a_thousand_celery_tasks_through_one_prefork_worker(
    request: pytest.FixtureRequest, job_spans: JobSpans, capsys: pytest.CaptureFixture[str]
) -> None:
    with dedicated(request, CeleryLiveWorkers, celery_live_pool="prefork", celery_live_concurrency=2):
        began = time.perf_counter()
        for n in range(JOBS):
            jobs.tick.delay(n)
        published = time.perf_counter() - began
        job_spans.wait(timeout=300)
        waited = time.perf_counter() - began
    report(capsys, "live_celery_worker (prefork, 2 processes)", published, waited)
    check_every_job(job_spans, "apply_async/faults.tick", "run/faults.tick")


def test_a_thousand_rq_jobs_through_one_forking_worker(
    request: pytest.FixtureRequest, job_spans: JobSpans, capsys: pytest.CaptureFixture[str]
) -> None:
    with dedicated(request, RQLiveWorkers) as worker:
        queue = worker.queue()
        began = time.perf_counter()
        for n in range(JOBS):
            queue.enqueue(jobs.rq_tick, n)
        published = time.perf_counter() - began
        job_spans.wait(timeout=300)
        waited = time.perf_counter() - began
    report(capsys, "live_rq_worker (forking Worker)", published, waited)
    check_every_job(job_spans, "send default", "process default")
