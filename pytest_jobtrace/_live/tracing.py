"""Tracing inside a live worker process: spans exported over OTLP/HTTP to the test's receiver.

Runs in the worker, never in the test process: no pytest here. The worker bootstraps of the adapters
(``pytest_jobtrace.celery._live_worker``, ``pytest_jobtrace.rq._live_worker``) call :func:`install` where
the worker runs jobs and :func:`flush` when a job ends, so that ``job_spans.wait()`` returns as soon as the
job's last span is sent instead of after the batch processor's next tick.

A ``BatchSpanProcessor``'s thread and its exporter's HTTP connection do not survive ``fork``: a forked
child (Celery's prefork pool, RQ's work horse) would lose its spans or write on its parent's socket.
:class:`ForkSafeExport` builds a new processor and exporter in every child, so each process sends its
own spans on its own connection, and the parent's unsent spans stay the parent's to send.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

ENDPOINT_ENV = "JOBTRACE_LIVE_ENDPOINT"
"""The receiver's traces URL (``http://127.0.0.1:PORT/v1/traces``) the fixture gives the worker."""
READY_ENV = "JOBTRACE_LIVE_READY"
"""A file the worker writes once it takes jobs."""
FLUSH_TIMEOUT_MILLIS = 10_000
SCHEDULE_DELAY_MILLIS = 100  # spans outside a job (a scheduler's) go out within this, flushed or not

_provider: TracerProvider | None = None
_lock = threading.Lock()


class ForkSafeExport(SpanProcessor):
    """A batch processor exporting over OTLP/HTTP, made anew in each forked child."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._inner = self._new()
        os.register_at_fork(after_in_child=self._renew)

    def _new(self) -> BatchSpanProcessor:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return BatchSpanProcessor(OTLPSpanExporter(endpoint=self.endpoint), schedule_delay_millis=SCHEDULE_DELAY_MILLIS)

    def _renew(self) -> None:
        self._inner = self._new()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._inner.on_end(span)

    def force_flush(self, timeout_millis: int = FLUSH_TIMEOUT_MILLIS) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]


def install(service: str, endpoint: str | None = None) -> TracerProvider:
    """The process's global provider, exporting to ``endpoint`` (default: ``$JOBTRACE_LIVE_ENDPOINT``).

    Once per process; a forked child inherits it (and exports on its own processor, see above)."""
    global _provider
    with _lock:
        if _provider is None:
            target = endpoint or os.environ.get(ENDPOINT_ENV)
            if not target:
                raise RuntimeError(f"pytest-jobtrace live worker: {ENDPOINT_ENV} is not set (the receiver's URL)")
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(ForkSafeExport(target))
            trace.set_tracer_provider(provider)
            _provider = provider
        return _provider


def flush() -> None:
    """Send every ended span now (at the end of each job)."""
    if _provider is not None:
        _provider.force_flush(FLUSH_TIMEOUT_MILLIS)


def shutdown() -> None:
    """Send what is left and stop the exporter (when a worker process exits)."""
    if _provider is not None:
        _provider.shutdown()


def ready() -> None:
    """Tell the fixture that the worker takes jobs now."""
    path = os.environ.get(READY_ENV)
    if path:
        Path(path).write_text(str(os.getpid()))
    print(f"pytest-jobtrace live worker ready (pid {os.getpid()})", file=sys.stderr, flush=True)
