"""RQ support: an OpenTelemetry instrumentation (``pytest_jobtrace.rq.instrumentation``) and the ``rq_jobs`` adapter.

Importing this package does not import RQ: the adapter recognises RQ spans from their attributes alone,
and RQ is imported when a test asks for ``rq_jobs``.
"""

from pytest_jobtrace.rq._adapter import ADAPTER
from pytest_jobtrace.rq._drain import RQRuntime
from pytest_jobtrace.rq._records import PendingRQJob, RQRun

__all__ = ["ADAPTER", "PendingRQJob", "RQRun", "RQRuntime"]
