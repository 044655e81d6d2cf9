"""Celery benchmarks for ``celery_jobs``: ratios against anchors measured side by side in the same run.

    python benchmarks/celery_jobs.py            # all figures
    python benchmarks/celery_jobs.py --quick    # fewer repetitions

- per task: publish + drain through ``CeleryJobs`` (instrumented) vs ``task_always_eager`` with the same
  instrumentation, target <= 2.0x (eager makes half the spans: no publish span);
- per test: a test's worth of work (activate, publish one task, drain, read its result, restore) vs the
  same with a worker thread started per test as ``celery.contrib.pytest``'s ``celery_worker`` does,
  target <= 1/20.

Exits 1 if a figure misses its target (like benchmarks/run.py, it is not part of the test suite).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from celery import Celery
from celery import _state as celery_state
from celery.contrib.testing.worker import start_worker
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).parent))
from run import RESULTS, best_of, report

from pytest_jobtrace.celery import CeleryJobs

TASKS = 100


def make_app(backend: str | None = None) -> Celery:
    app = Celery("bench", broker="memory://", backend=backend, set_as_current=False)
    app.conf.worker_hijack_root_logger = False
    app.conf.broker_transport_options = {"polling_interval": 0.01}

    @app.task(name="bench.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    return app


def eager_tasks(app: Celery, count: int) -> None:
    add = app.tasks["bench.add"]
    for i in range(count):
        add.delay(i, i)


def celery_jobs_tasks(jobs: CeleryJobs, count: int) -> None:
    add = jobs.app.tasks["bench.add"]
    for i in range(count):
        add.delay(i, i)
    jobs.drain()


def per_task(repeats: int, exporter: InMemorySpanExporter, backend: str | None) -> tuple[float, float]:
    """Seconds per task with task_always_eager and with celery_jobs, on apps configured alike."""
    eager_app = make_app(backend)
    eager_app.conf.task_always_eager = True
    app = make_app(backend)
    # Interleaved, so that both sides see the same load on a shared machine. The eager side runs between
    # celery_jobs' activations: while one is active, a publish through another app is refused.
    t_eager = t_ours = float("inf")
    for n in range(repeats + 1):  # the first round warms up (compiled tracers, lazy imports)
        eager = best_of(1, lambda: (eager_tasks(eager_app, TASKS), exporter.clear()))
        with CeleryJobs(app) as jobs:
            celery_jobs_tasks(jobs, 2)  # each activation compiles the task's tracer again (forgotten at close)
            ours = best_of(1, lambda: (celery_jobs_tasks(jobs, TASKS), exporter.clear()))
        if n:
            t_eager, t_ours = min(t_eager, eager), min(t_ours, ours)
    return t_eager / TASKS, t_ours / TASKS


def bench_per_task(repeats: int, exporter: InMemorySpanExporter) -> None:
    t_eager, t_ours = per_task(repeats, exporter, None)
    print(f"  per task: task_always_eager {t_eager * 1e6:.0f}us, celery_jobs {t_ours * 1e6:.0f}us")
    report("celery_jobs: publish + drain per task vs task_always_eager", t_ours / t_eager, 2.0, "x")
    # With a result backend the worker path also stores each result, which eager mode skips.
    t_eager, t_ours = per_task(repeats, exporter, "cache+memory://")
    print(
        f"  for information, with a cache+memory:// result backend: task_always_eager {t_eager * 1e6:.0f}us,"
        f" celery_jobs {t_ours * 1e6:.0f}us ({t_ours / t_eager:.2f}x)"
    )


def one_test_with_celery_jobs(app: Celery) -> None:
    with CeleryJobs(app) as jobs:
        result = app.tasks["bench.add"].delay(1, 2)
        jobs.drain()
        assert result.get(timeout=1) == 3


def one_test_with_a_worker(app: Celery) -> None:
    default, current = celery_state.default_app, celery_state._tls.current_app
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            assert app.tasks["bench.add"].delay(1, 2).get(timeout=10) == 3
    finally:
        celery_state.set_default_app(default)
        celery_state._set_current_app(current)


def bench_per_test(repeats: int, exporter: InMemorySpanExporter) -> None:
    app = make_app("cache+memory://")
    one_test_with_celery_jobs(app)
    t_ours = best_of(repeats, lambda: (one_test_with_celery_jobs(app), exporter.clear()))
    t_worker = best_of(3, lambda: (one_test_with_a_worker(app), exporter.clear()))
    print(f"  per test: worker thread {t_worker * 1e3:.1f}ms, celery_jobs {t_ours * 1e3:.2f}ms")
    report("celery_jobs: one test's task vs a worker thread per test", t_ours / t_worker, 0.05, "x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    repeats = 5 if parser.parse_args().quick else 21
    logging.disable(logging.WARNING)  # the worker logs its start and stop
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    CeleryInstrumentor().instrument(tracer_provider=provider)  # the same instrumentation for every side
    try:
        bench_per_task(repeats, exporter)
        bench_per_test(repeats, exporter)
    finally:
        CeleryInstrumentor().uninstrument()
    missed = [name for name, value, limit, _ in RESULTS if value > limit]
    print(f"\n{len(RESULTS) - len(missed)} of {len(RESULTS)} figures within target")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
