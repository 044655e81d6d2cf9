"""RQ: per job, enqueue + rq_jobs' drain() against RQ's own paths on fakeredis, all with the same instrumentation.

    python benchmarks/bench_rq.py [--quick]     (also run by benchmarks/run.py)

- bare worker path (the floor): enqueue, then ``Queue.dequeue_any`` + ``SimpleWorker.execute_job`` on one
  reused worker, no adapter code. Target: drain() costs at most 1.25x this.
- a new ``SimpleWorker(...).work(burst=True)`` per job (what a test does without rq_jobs). Target: drain()
  is at least 2x faster, i.e. costs at most 0.5x this.
- sync mode (``Queue(is_async=False)``, no worker path, no retries): printed as a ratio for information.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import fakeredis
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from rq import Queue, SimpleWorker

from pytest_jobtrace.rq._drain import RQRuntime
from pytest_jobtrace.rq.instrumentation import RQInstrumentor

sys.path.insert(0, str(Path(__file__).parent))
import bench_rq_jobs  # RQ imports job functions by module name

N = 300


class Counting(SpanProcessor):
    def __init__(self) -> None:
        self.ended = 0

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1


def interleaved(repeats: int, variants: tuple[Callable[[], None], ...]) -> list[float]:
    """The fastest of ``repeats`` runs of each variant, the variants taking turns."""
    best = [float("inf")] * len(variants)
    for _ in range(repeats):
        for index, variant in enumerate(variants):
            gc.collect()
            start = time.perf_counter()
            variant()
            best[index] = min(best[index], time.perf_counter() - start)
    return best


def _connection() -> fakeredis.FakeStrictRedis:
    return fakeredis.FakeStrictRedis(server=fakeredis.FakeServer())


def bare_worker_path() -> None:
    connection = _connection()
    queue = Queue(connection=connection)
    worker = SimpleWorker([queue], connection=connection)
    for i in range(N):
        queue.enqueue(bench_rq_jobs.charge, i)
        job, job_queue = Queue.dequeue_any(
            [queue], None, connection=connection, job_class=worker.job_class, serializer=worker.serializer
        )
        worker.execute_job(job, job_queue)


def rq_jobs_drain() -> None:
    with RQRuntime() as runtime:
        queue = runtime.queue()
        for i in range(N):
            queue.enqueue(bench_rq_jobs.charge, i)
            runtime.drain()


def burst_per_job() -> None:
    connection = _connection()
    queue = Queue(connection=connection)
    for i in range(N):
        queue.enqueue(bench_rq_jobs.charge, i)
        SimpleWorker([queue], connection=connection).work(burst=True, logging_level="WARNING")


def sync_mode() -> None:
    queue = Queue(connection=_connection(), is_async=False)
    for i in range(N):
        queue.enqueue(bench_rq_jobs.charge, i)


def run(repeats: int, report: Callable[[str, float, float, str], None]) -> None:
    provider = TracerProvider()
    provider.add_span_processor(Counting())
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    instrumentor = RQInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    logging.getLogger("rq").setLevel(logging.WARNING)
    variants = (bare_worker_path, rq_jobs_drain, burst_per_job, sync_mode)
    try:
        for variant in variants:
            variant()  # warm up: imports, caches, the first Redis script loads
        # interleaved, best of each: a shared, noisy machine slows one round, not one variant
        t_bare, t_drain, t_burst, t_sync = interleaved(repeats, variants)
    finally:
        instrumentor.uninstrument()
    per = {
        name: t / N * 1e3 for name, t in (("bare", t_bare), ("drain", t_drain), ("burst", t_burst), ("sync", t_sync))
    }
    print(
        "  per job: "
        + ", ".join(f"{name} {ms:.2f}ms" for name, ms in per.items())
        + f"; drain vs sync mode {t_drain / t_sync:.2f}x (for information)"
    )
    report("rq: enqueue + rq_jobs.drain() vs the bare reused-worker path", t_drain / t_bare, 1.25, "x")
    report("rq: enqueue + rq_jobs.drain() vs a new SimpleWorker burst per job", t_drain / t_burst, 0.5, "x")


def _print_report(name: str, value: float, limit: float, unit: str) -> None:
    verdict = "ok" if value <= limit else "MISSED"
    print(f"{name:<68} {value:10.3f}{unit:<3} (target <= {limit}{unit})  {verdict}", flush=True)
    if value > limit:
        _MISSED.append(name)


_MISSED: list[str] = []


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    run(3 if parser.parse_args().quick else 5, _print_report)
    sys.exit(1 if _MISSED else 0)
