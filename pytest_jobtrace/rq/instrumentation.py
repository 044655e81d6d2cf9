"""OpenTelemetry instrumentation for RQ 2.x and 3.x, for production code as much as for tests.

    from pytest_jobtrace.rq.instrumentation import RQInstrumentor

    RQInstrumentor().instrument()                      # global tracer provider, process spans as children
    RQInstrumentor().instrument(use_span_links=True)   # process spans start a new trace linked to the send

``opentelemetry-instrument`` finds it through the ``opentelemetry_instrumentor`` entry point (name ``rq``).
Spans follow the messaging semantic conventions: ``send {queue}`` (PRODUCER) whenever a job is put on a
queue or schedule, ``process {queue}`` (CONSUMER) for each execution by a worker. See docs/rq-instrumentation.md.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Callable, Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from pytest_jobtrace.rq._process import Processor
from pytest_jobtrace.rq._send import Sender

__all__ = ["SCHEMA_URL", "RQInstrumentor"]

SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
log = logging.getLogger(__name__)

# (module, "Class.method", which hook): every RQ method the instrumentation wraps, in rq 2.x and 3.x alike.
_SEND_HOOKS = (
    ("rq.queue", "Queue.enqueue_job", "enqueue_job"),
    ("rq.queue", "Queue.schedule_job", "schedule_job"),
    ("rq.queue", "Queue.enqueue_many", "enqueue_many"),
    ("rq.queue", "Queue._enqueue_job", "release"),
    ("rq.job", "Job.retry", "retry"),
    ("rq.job", "Job._handle_retry_result", "retry"),
)
_PROCESS_HOOKS = (
    ("rq.worker.base", "BaseWorker.perform_job", "perform_job"),
    ("rq.worker.base", "BaseWorker.handle_exception", "handle_exception"),
    ("rq.worker.base", "BaseWorker.handle_job_failure", "handle_job_failure"),
    ("rq.worker.base", "BaseWorker.handle_job_retry", "handle_job_retry"),
    # the parent of a forked work horse: a horse that died, or was stopped, gets its attempt's span from here
    ("rq.worker", "Worker.monitor_work_horse", "monitor_work_horse"),
    ("rq.worker", "Worker.handle_work_horse_killed", "handle_work_horse_killed"),
    ("rq.worker", "Worker.wait_for_horse", "wait_for_horse"),
)
_THIRD_PARTY = "opentelemetry-instrumentation-rq"


@functools.cache
def _version() -> str:
    """This package's version, for the tracer's scope (read from its metadata once: 1 ms from disk)."""
    try:
        return importlib.metadata.version("pytest-jobtrace")
    except importlib.metadata.PackageNotFoundError:
        return "0"


class RQInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces RQ enqueues and job executions.

    ``instrument(tracer_provider=None, use_span_links=False)``. Only one RQ instrumentation may be active:
    when the third-party ``opentelemetry-instrumentation-rq`` has already instrumented RQ, this one logs a
    warning and leaves RQ alone.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("rq >= 2.0",)

    def _instrument(self, **kwargs: Any) -> None:
        if third_party_active():
            log.warning("RQ is already instrumented by %s; pytest-jobtrace's RQInstrumentor stays off", _THIRD_PARTY)
            self.use_span_links = False
            self._wrapped: list[tuple[str, str]] = []
            return
        provider = kwargs.get("tracer_provider")
        tracer = trace.get_tracer(__name__, _version(), provider, schema_url=SCHEMA_URL)
        self.use_span_links = bool(kwargs.get("use_span_links", False))
        hooks = (Sender(tracer), Processor(tracer, self.use_span_links, _flusher(provider)))
        self._wrapped = []
        for hook, table in zip(hooks, (_SEND_HOOKS, _PROCESS_HOOKS)):
            for module, name, method in table:
                wrap_function_wrapper(module, name, getattr(hook, method))
                self._wrapped.append((module, name))

    def _uninstrument(self, **kwargs: Any) -> None:
        import importlib

        for module, name in getattr(self, "_wrapped", []):
            owner_name, attribute = name.split(".")
            unwrap(getattr(importlib.import_module(module), owner_name), attribute)
        self._wrapped = []


def _flusher(provider: Any) -> Callable[[], object]:
    def flush() -> object:
        current = provider or trace.get_tracer_provider()
        return current.force_flush() if hasattr(current, "force_flush") else None

    return flush


def third_party_active() -> bool:
    """Whether opentelemetry-instrumentation-rq has instrumented RQ in this process."""
    try:
        from opentelemetry_instrumentation_rq import RQInstrumentor as ThirdParty
    except Exception:  # not installed, or broken (it fails to import on some rq versions)
        return False
    return bool(getattr(ThirdParty(), "is_instrumented_by_opentelemetry", False))
