"""The built-in job adapter: a dependency-free, in-process job runtime with ActiveJob-like semantics.

Jobs are traced with OpenTelemetry following the messaging semantic conventions (version `SEMCONV_VERSION`):
one PRODUCER span ``send {destination}`` per enqueue and one CONSUMER span ``process {destination}`` per
attempt, with ``messaging.system = "jobtrace"``. ::

    from pytest_jobtrace.builtin import Job, JobRuntime

    class ProcessOrderJob(Job):
        queue = "orders"
        retry_on = (PaymentError,)
        attempts = 5
        wait = "exponential"

        def perform(self, order_id: int) -> None: ...

    with JobRuntime() as rt:
        ProcessOrderJob.perform_later(42)
        runs = rt.drain()  # performs on this thread, on a virtual clock: no real sleeping

`recognise_span` tells which spans a built-in job made; the built-in adapter (``adapters.adapters()["builtin"]``)
hands it to the job model.
"""

from __future__ import annotations

from pytest_jobtrace.adapters import JobChainError, JobFailedError
from pytest_jobtrace.builtin._adapter import ADAPTER
from pytest_jobtrace.builtin._job import Job
from pytest_jobtrace.builtin._model import (
    JobArgumentError,
    JobHandle,
    JobRun,
    PendingJob,
)
from pytest_jobtrace.builtin._runtime import JobRuntime
from pytest_jobtrace.builtin._tracing import SEMCONV_VERSION, recognise_span

# Tracebacks and reprs name the public module users import from, not the private one defining the class.
for _public in (Job, JobArgumentError, JobHandle, JobRun, JobRuntime, PendingJob):
    _public.__module__ = __name__
del _public

__all__ = [
    "ADAPTER",
    "SEMCONV_VERSION",
    "Job",
    "JobArgumentError",
    "JobChainError",
    "JobFailedError",
    "JobHandle",
    "JobRun",
    "JobRuntime",
    "PendingJob",
    "recognise_span",
]
