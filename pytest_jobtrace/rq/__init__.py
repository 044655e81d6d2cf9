"""RQ support: an OpenTelemetry instrumentation (``pytest_jobtrace.rq.instrumentation``) and the ``rq_jobs`` adapter.

Importing this package does not import RQ: the adapter recognises RQ spans from their attributes alone.
"""

from pytest_jobtrace.rq._adapter import ADAPTER

__all__ = ["ADAPTER"]
