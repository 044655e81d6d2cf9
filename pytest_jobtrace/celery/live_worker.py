"""The live Celery worker: ``python -m pytest_jobtrace.celery.live_worker APP [celery worker options]``.

Started by the ``live_celery_worker`` fixture, and the way to start workers elsewhere (``jobtrace_live_workers
= external``: a compose cluster, another host) so that they tell the test what the fixture's do: the same
tracing, flushed when each job ends, and the reports no span carries (a task revoked or expired, a rejection
requeued, a pool process lost). There, give it the receiver's traces URL in ``$JOBTRACE_LIVE_ENDPOINT`` or
the OTLP exporter's own ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (``docs/live.md``).

It imports the user's app, applies the fixture's settings if any (broker, result backend:
``$JOBTRACE_LIVE_CELERY_CONF``, JSON), sets tracing up where tasks run, then hands over to Celery's own
command line (``app.worker_main(["worker", ...])``): the real worker, prefork pool and all.

Tracing: with the prefork pool (``--pool`` / ``-P`` on the command line, else the app's ``worker_pool``), in
each pool process on ``worker_process_init`` (a ``BatchSpanProcessor``'s thread does not survive the fork),
as opentelemetry-instrumentation-celery's documentation says; with any other pool (solo, threads), in the
worker itself. Spans are flushed on ``task_postrun`` (after the instrumentation's own handler has ended the
run span) and when a pool process exits (``max_tasks_per_child``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

CONF_ENV = "JOBTRACE_LIVE_CELERY_CONF"
SUFFIX_ENV = "JOBTRACE_LIVE_CELERY_QUEUE_SUFFIX"


def renamed_queues(app: Any, names: list[str], suffix: str) -> list[Any]:
    """The queues ``names`` under this run's names (``orders-1a2b3c4d``: queue, exchange and routing key),
    each with its own name as alias, so that routes and ``-Q`` naming ``orders`` find it (RabbitMQ)."""
    from kombu.entity import Exchange, Queue

    declared = {queue.name: queue for queue in app.conf.task_queues or ()}
    renamed = []
    for name in names:
        queue = declared.get(name)
        exchange = queue.exchange if queue is not None and queue.exchange is not None else None
        kind = exchange.type if exchange is not None and exchange.type else "direct"
        key = (queue.routing_key if queue is not None and queue.routing_key else name) + suffix
        renamed.append(Queue(f"{name}{suffix}", Exchange(f"{name}{suffix}", kind), routing_key=key, alias=name))
    return renamed


def forks_pool_processes(options: list[str], app: Any) -> bool:
    """Whether the worker these options start runs tasks in forked pool processes (the prefork pool, named
    ``prefork`` or ``processes``): ``--pool`` / ``-P`` in ``options``, else the app's ``worker_pool``."""
    from celery.concurrency import get_implementation

    pool: Any = None
    for n, option in enumerate(options):
        if option in ("-P", "--pool") and n + 1 < len(options):
            pool = options[n + 1]
        elif option.startswith("--pool="):
            pool = option.split("=", 1)[1]
        elif option.startswith("-P") and len(option) > 2:
            pool = option[2:]
    if pool is None:
        pool = app.conf.worker_pool or "prefork"
    try:  # as Celery resolves it: an alias, a "module:Class" path or a class
        return bool(get_implementation(pool) is get_implementation("prefork"))
    except Exception:  # a pool whose package is missing (gevent): the worker says so itself
        return False


def main(argv: list[str]) -> None:
    from celery import signals
    from celery.utils.imports import symbol_by_name

    from pytest_jobtrace.adapters import live_tracing

    if not argv:
        raise SystemExit("usage: python -m pytest_jobtrace.celery.live_worker package.module:app [worker options]")
    if live_tracing.adopt_otlp_endpoint() is None:  # a worker started by hand, told nothing
        raise SystemExit(live_tracing.NO_ENDPOINT)
    app = symbol_by_name(argv[0])
    app.conf.update(json.loads(os.environ.get(CONF_ENV, "{}")))
    suffix = os.environ.get(SUFFIX_ENV, "")
    if suffix:
        names = next(arg.split("=", 1)[1] for arg in argv if arg.startswith("--queues=")).split(",")
        app.conf.task_queues = renamed_queues(app, names, suffix)
    _report_lost_tasks()
    if forks_pool_processes(argv[1:], app):
        signals.worker_process_init.connect(_set_up, weak=False)
        signals.worker_process_shutdown.connect(_shut_down, weak=False)
    else:
        _set_up()
        signals.worker_shutdown.connect(_shut_down, weak=False)
    signals.worker_ready.connect(lambda **_: live_tracing.ready(), weak=False)
    app.worker_main(["worker", *argv[1:]])


def _report_lost_tasks() -> None:
    """A pool process that dies mid-task takes its run span with it, and a revoked task leaves none: the main
    process tells the test."""
    from pytest_jobtrace.adapters import live_tracing
    from pytest_jobtrace.celery import _lost

    endpoint = os.environ.get(live_tracing.ENDPOINT_ENV)
    if endpoint:
        _lost.install(endpoint)


def _set_up(**_: Any) -> None:
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from pytest_jobtrace.adapters import live_tracing
    from pytest_jobtrace.celery import _lost

    live_tracing.install("celery-worker")
    endpoint = os.environ.get(live_tracing.ENDPOINT_ENV)
    if endpoint:  # before the instrumentation's task_postrun handler ends the run span (see _lost)
        signals.task_postrun.connect(_lost.report_requeue(endpoint), weak=False)
    CeleryInstrumentor().instrument(**live_tracing.instrumentation_options())  # as the test process does
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
