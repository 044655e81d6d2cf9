"""``celery_jobs`` type-checks in a user's test module (mypy --strict), with Celery untyped as it is."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

USER_TEST = """
from __future__ import annotations

from pytest_jobtrace import JobSpans, JobView, assert_span_tree, job
from pytest_jobtrace.celery import CeleryJobs, PendingTask, TaskRun


def test_user(job_spans: JobSpans, celery_jobs: CeleryJobs) -> None:
    pending: list[PendingTask] = celery_jobs.pending
    runs: list[TaskRun] = celery_jobs.drain(max_jobs=10, only="process_order", expect_failures=True)
    one: TaskRun | None = celery_jobs.perform_one()
    failed: list[TaskRun] = celery_jobs.failed
    now: float = celery_jobs.clock.now
    assert_span_tree([job("shop.process_order", attempts=3, linked=False)])
    views: list[JobView] = job_spans.jobs()
    reasons: list[str] = views[0].retry_reasons
    lines = [p.describe() for p in pending] + [r.describe() for r in runs + failed] + reasons
    assert lines and one is None and now >= 0


def test_standalone(app: object) -> None:
    with CeleryJobs(app) as jobs:
        jobs.drain()
"""


def test_celery_jobs_type_checks_in_user_code(tmp_path: Path) -> None:
    module = tmp_path / "test_user_celery.py"
    module.write_text(textwrap.dedent(USER_TEST))
    stdout, stderr, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy_cache"), str(module)]
    )
    assert status == 0, stdout + stderr
