"""RQ support: an OpenTelemetry instrumentation (``pytest_jobtrace.rq.instrumentation``) and the ``rq_jobs`` adapter.

Importing this package does not import RQ: the adapter recognises RQ spans from their attributes alone,
and RQ is imported when a test asks for ``rq_jobs``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_jobtrace.rq._adapter import ADAPTER
    from pytest_jobtrace.rq._drain import RQRuntime
    from pytest_jobtrace.rq._live import LiveRQWorker
    from pytest_jobtrace.rq._records import PendingRQJob, RQRun

__all__ = ["ADAPTER", "LiveRQWorker", "PendingRQJob", "RQRun", "RQRuntime"]

# Imported on first use: production code that imports only the instrumentation loads no test machinery.
_WHERE = {
    "ADAPTER": "_adapter",
    "LiveRQWorker": "_live",
    "RQRuntime": "_drain",
    "PendingRQJob": "_records",
    "RQRun": "_records",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_jobtrace.rq' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pytest_jobtrace.rq.{module}"), name)
    globals()[name] = value
    return value
