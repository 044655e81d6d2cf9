"""One expectation in both modes: a test body that runs once in-process and once against live workers.

``@pytest.mark.jobtrace_modes("in_process", "live")`` runs the test once per mode (ids ``[in_process]``,
``[live]``); its ``celery_runner`` / ``rq_runner`` is the mode's fixture (``celery_jobs`` or
``live_celery_worker``...), and ``settle()`` is the mode's way to let the test's jobs finish: ``drain()``
in-process, ``job_spans.wait()`` live. Both fail alike when a job failed for good and the test does not
say it expects failures (``@pytest.mark.jobtrace(expect_failures=True)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

MODES = ("in_process", "live")
MARKER = "jobtrace_modes"
MARKER_HELP = (
    f'{MARKER}(*modes="in_process", "live"): run the test once per mode, in-process (celery_jobs, rq_jobs: '
    "drained) and against live workers (live_celery_worker, live_rq_worker: waited); celery_runner and "
    "rq_runner are the mode's fixture, and their settle() drains or waits."
)


def modes_of(marker: pytest.Mark) -> Sequence[str]:
    """The marker's modes (both when it names none); a ValueError naming the valid ones otherwise."""
    if marker.kwargs:
        raise TypeError(f"@pytest.mark.{MARKER} takes modes as arguments only, got {marker.kwargs!r}")
    modes = tuple(marker.args) or MODES
    wrong = [mode for mode in modes if mode not in MODES]
    if wrong or len(set(modes)) != len(modes):
        raise ValueError(f"@pytest.mark.{MARKER}{tuple(marker.args)!r}: give each of {', '.join(MODES)} at most once")
    return modes


def raise_failed_jobs(job_spans: Any, where: str) -> None:
    """Raise ``JobFailedError`` if the spans show jobs that failed for good, worded as ``drain()`` words it
    in-process (the exception is the one the attempt's span recorded; ``runs`` holds the jobs' views)."""
    __tracebackhide__ = True
    from pytest_jobtrace._core.errors import JobFailedError

    failed = [job for job in job_spans.jobs() if job.outcome == "failed"]
    if not failed:
        return
    lines = [f"{where}: {len(failed)} job{'s' * (len(failed) != 1)} failed:"]
    for job in failed[:20]:
        attempts = len(job.attempt_nodes)
        lines.append(
            f"  {job.name} id={job.id} failed after {attempts} attempt{'s' * (attempts != 1)}: {_exception(job)}"
        )
    lines.append(
        f"Their spans were recorded. To let jobs fail without raising, pass {where[:-1]}expect_failures=True),"
    )
    lines.append("or mark the test @pytest.mark.jobtrace(expect_failures=True).")
    raise JobFailedError("\n".join(lines), failed)


def _exception(job: Any) -> str:
    node = job.attempt_nodes[-1] if job.attempt_nodes else None
    for event in reversed(node.span.events if node is not None else ()):
        if event.name == "exception":
            attributes = event.attributes or {}
            return f"{attributes.get('exception.type')}: {attributes.get('exception.message')}"
    status = node.span.status.description if node is not None else None
    return status or "no exception recorded"


class ModeRunner:
    """The job runner of the test's mode: ``celery_jobs``/``rq_jobs`` in-process, a live worker live.

    Attributes are the mode's fixture's (``rq_runner.queue()``, ``celery_runner.app``); ``settle()`` lets
    the test's jobs finish the mode's way. Only exposed for type hints.
    """

    def __init__(self, mode: str, target: Any) -> None:
        self.mode = mode
        self.target = target

    def settle(self, timeout: float | None = None) -> Any:
        """In-process: ``drain()`` (its ``JobFailedError`` included); live: ``settle(timeout)``."""
        __tracebackhide__ = True
        if self.mode == "live":
            return self.target.settle(timeout)
        return self.target.drain()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)

    def __repr__(self) -> str:
        return f"<ModeRunner {self.mode}: {self.target!r}>"
