"""The live Celery worker: ``python -m pytest_jobtrace.celery._live_worker APP [celery worker options]``.

Started by the ``live_celery_worker`` fixture. It imports the user's app, applies the fixture's settings
(broker, result backend: ``$JOBTRACE_LIVE_CELERY_CONF``, JSON), sets tracing up where tasks run, then hands
over to Celery's own command line (``app.worker_main(["worker", ...])``): the real worker, prefork pool and all.

Tracing: with the prefork pool, in each pool process on ``worker_process_init`` (a ``BatchSpanProcessor``'s
thread does not survive the fork), as opentelemetry-instrumentation-celery's documentation says; with the
solo pool, in the worker itself. Spans are flushed on ``task_postrun`` (after the instrumentation's own
handler has ended the run span) and when a pool process exits (``max_tasks_per_child``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

CONF_ENV = "JOBTRACE_LIVE_CELERY_CONF"
POOL_ENV = "JOBTRACE_LIVE_CELERY_POOL"


def main(argv: list[str]) -> None:
    from celery import signals
    from celery.utils.imports import symbol_by_name

    from pytest_jobtrace.adapters import live_tracing

    if not argv:
        raise SystemExit("usage: python -m pytest_jobtrace.celery._live_worker package.module:app [worker options]")
    app = symbol_by_name(argv[0])
    app.conf.update(json.loads(os.environ.get(CONF_ENV, "{}")))
    if os.environ.get(POOL_ENV, "prefork") == "prefork":
        signals.worker_process_init.connect(_set_up, weak=False)
        signals.worker_process_shutdown.connect(_shut_down, weak=False)
    else:
        _set_up()
        signals.worker_shutdown.connect(_shut_down, weak=False)
    signals.worker_ready.connect(lambda **_: live_tracing.ready(), weak=False)
    app.worker_main(["worker", *argv[1:]])


def _set_up(**_: Any) -> None:
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from pytest_jobtrace.adapters import live_tracing

    live_tracing.install("celery-worker")
    CeleryInstrumentor().instrument()
    # connected after the instrumentation's own task_postrun handler, which ends the run span
    signals.task_postrun.connect(_flush, weak=False)


def _flush(**_: Any) -> None:
    from pytest_jobtrace.adapters import live_tracing

    live_tracing.flush()


def _shut_down(**_: Any) -> None:
    from pytest_jobtrace.adapters import live_tracing

    live_tracing.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
