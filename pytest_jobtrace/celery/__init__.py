"""The Celery adapter: ``celery_jobs`` runs Celery tasks through Celery's own publish and worker code paths.

Tasks publish through Celery's real path (signals, headers, trace context) into memory, and
``celery_jobs.drain()`` performs them on the test's thread through ``celery.worker.request.Request``,
in due order on the test's virtual clock. See docs/celery.md.

Importing this package does not import Celery: the entry point loads ``ADAPTER`` for span recognition
in every session, and ``CeleryJobs`` is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_jobtrace.celery._adapter import ADAPTER, CELERY_APP

if TYPE_CHECKING:
    from pytest_jobtrace.celery._live import LiveCeleryWorker
    from pytest_jobtrace.celery._model import PendingTask, TaskRun
    from pytest_jobtrace.celery._runtime import CeleryJobs
    from pytest_jobtrace.celery._worker import UnregisteredTaskError

__all__ = ["ADAPTER", "CELERY_APP", "CeleryJobs", "LiveCeleryWorker", "PendingTask", "TaskRun", "UnregisteredTaskError"]

_LAZY = {
    "CeleryJobs": "pytest_jobtrace.celery._runtime",
    "LiveCeleryWorker": "pytest_jobtrace.celery._live",
    "PendingTask": "pytest_jobtrace.celery._model",
    "TaskRun": "pytest_jobtrace.celery._model",
    "UnregisteredTaskError": "pytest_jobtrace.celery._worker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
