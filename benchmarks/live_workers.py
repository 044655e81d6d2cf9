"""Live workers: a job through ``live_rq_worker`` / ``live_celery_worker`` vs through a bare worker, one run.

    python benchmarks/live_workers.py [--quick]     (also run by benchmarks/run.py)

For each job system, the same job (a function that opens one span) is timed one at a time, from the test
publishing it to the test knowing it has ended:

- bare: the job system's own worker started from its command line with no plugin and no tracing (``rq
  worker``; ``celery worker`` with the prefork pool and one process), on a Redis database of its own; the
  test enqueues and blocks on the result (``job.latest_result(timeout=...)``, ``AsyncResult.get()``);
- live: a pytest session with the plugin, the job through ``live_rq_worker`` / ``live_celery_worker`` (same
  pool, same concurrency), the test enqueues and calls ``settle()``: it returns when the job's spans,
  exported by the worker over OTLP/HTTP, have arrived.

For Celery the live side is then timed a second time, against a bare worker that traces as a deployment
would without the plugin: the stock SDK and opentelemetry-instrumentation-celery set up in each pool
process (``worker_process_init``) and in the client, spans handed to a ``BatchSpanProcessor`` whose
exporter drops them. That ratio (printed, not a target) is what the plugin itself costs: exporting each
job's spans when it ends, receiving them in the test and waiting for them; the first ratio also counts
what the instrumentation costs on both sides, which tracing costs any deployment.

Worker start is paid once, outside the timed jobs, in both. Both sides run at once and take turns job by
job (a bare job, a live job, then the live side first): what a shared machine does meanwhile hits both
alike. Runs of whole sessions one after the other gave ratios from 0.99x to 1.72x within an hour. Each
side's figure is the median time per job (100 RQ jobs, 1,000 Celery jobs; 30 and 200 with --quick), and
the figure is their ratio (live / bare); the median of the job-by-job ratios is printed beside it.
Target: at most 1.2x for each system.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_jobtrace._live.redis import SessionLease

Report = Callable[[str, float, float, str], None]  # name, value, limit, unit (as benchmarks/run.py's)
REDIS = "redis://127.0.0.1:6379/1-15"
WARM_UP = 5

JOBS = textwrap.dedent(
    """
    import os

    from celery import Celery
    from opentelemetry import trace

    tracer = trace.get_tracer("bench")
    app = Celery("bench", set_as_current=False)
    app.conf.worker_hijack_root_logger = False


    def hello(value):
        with tracer.start_as_current_span("hello.work"):
            return value


    @app.task(name="bench.add")
    def add(x, y):
        with tracer.start_as_current_span("add.work"):
            return x + y


    def trace_here(**_):
        # tracing as a deployment without the plugin has it: the stock SDK and instrumentation, spans
        # batched and exported in the background (here dropped: nobody receives them)
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class Dropped(SpanExporter):
            def export(self, spans):
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Dropped()))
        trace.set_tracer_provider(provider)
        CeleryInstrumentor().instrument()


    if os.environ.get("JOBTRACE_BENCH_TRACED"):  # the traced bare worker: in each pool process
        from celery import signals

        signals.worker_process_init.connect(trace_here, weak=False)
    """
)

LIVE_TEST = textwrap.dedent(
    """
    import os
    import time

    import pytest

    import bench_jobs


    @pytest.fixture
    def celery_app():
        return bench_jobs.app


    def _serve(system, job_spans, publish, settle):
        # one job each time the benchmark says "go" (after the bare side's job), its time sent back
        with open(f"{system}.done", "w") as done, open(f"{system}.go") as go:
            for line in go:
                if line.strip() != "go":
                    break
                job_spans.clear()  # each job as the one job of a test: wait() reads that test's spans only
                started = time.perf_counter()
                publish()
                settle()
                done.write(f"{time.perf_counter() - started!r}\\n")
                done.flush()


    def test_rq(job_spans, live_rq_worker):
        queue = live_rq_worker.queue()
        _serve("rq", job_spans, lambda: queue.enqueue(bench_jobs.hello, 1), live_rq_worker.settle)


    def test_celery(job_spans, live_celery_worker):
        _serve("celery", job_spans, lambda: bench_jobs.add.delay(1, 1), live_celery_worker.settle)


    def test_celery_beside_traced(job_spans, live_celery_worker):
        _serve("celery", job_spans, lambda: bench_jobs.add.delay(1, 1), live_celery_worker.settle)
    """
)


class LiveSession:
    """The pytest session with the live fixtures, which runs one job each time :meth:`job` asks."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / "test_bench.py").write_text(LIVE_TEST)
        for system in ("rq", "celery"):
            os.mkfifo(directory / f"{system}.go")
            os.mkfifo(directory / f"{system}.done")
        env = {**os.environ, "PYTEST_ADDOPTS": ""}
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "test_bench.py"]
        argv += ["-o", "jobtrace_celery_live_pool=prefork", "-W", "ignore::DeprecationWarning"]
        self.process = subprocess.Popen(
            argv, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._go: int | None = None
        self._done: Any = None

    def open(self, system: str) -> None:
        """Once the session's test for ``system`` runs (its live worker started): the pipes to it."""
        done = os.open(self.directory / f"{system}.done", os.O_RDONLY | os.O_NONBLOCK)
        deadline = time.monotonic() + 120
        while True:
            try:
                self._go = os.open(self.directory / f"{system}.go", os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:  # no reader yet: the test is not there
                self._check(deadline)
                time.sleep(0.05)
        os.set_blocking(done, True)
        os.set_blocking(self._go, True)
        self._done = os.fdopen(done)

    def job(self) -> float:
        assert self._go is not None
        os.write(self._go, b"go\n")
        deadline = time.monotonic() + 60
        while not select.select([self._done], [], [], 0.5)[0]:
            self._check(deadline)
        line = self._done.readline()
        if not line:
            self._check(time.monotonic())
        return float(line)

    def close(self, system: str) -> None:
        if self._go is not None:
            os.write(self._go, b"end\n")
            os.close(self._go)
            self._go = None
        if self._done is not None:
            self._done.close()
            self._done = None

    def finish(self) -> None:
        output, _ = self.process.communicate(timeout=120)
        if self.process.returncode != 0:
            raise RuntimeError(f"the live session failed:\n{output}")

    def _check(self, deadline: float) -> None:
        if self.process.poll() is not None or time.monotonic() > deadline:
            self.process.kill()
            output, _ = self.process.communicate()
            raise RuntimeError(f"the live session did not answer:\n{output}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def _bare(
    argv: list[str], directory: Path, ready: Callable[[], bool], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(directory), **(env or {})}
    worker = subprocess.Popen(
        argv, cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 60
    try:
        while not ready():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bare worker {argv} did not start")
            time.sleep(0.05)
    except BaseException:
        _stop(worker)  # never left running on a database whose lease ends
        raise
    return worker


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is not None:
        return
    os.killpg(worker.pid, 15)
    try:
        worker.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, 9)
        worker.wait(15)


@contextmanager
def bare_rq(directory: Path, url: str) -> Iterator[Callable[[], float]]:
    """A bare ``rq worker``; yields a function that runs one job through it and returns its time."""
    import bench_jobs
    import redis
    from rq import Queue, Worker

    connection = redis.Redis.from_url(url)
    argv = [sys.executable, "-m", "rq.cli", "worker", f"--url={url}", "default"]
    worker = _bare(argv, directory, lambda: bool(Worker.all(connection=connection)))
    queue = Queue(connection=connection)

    def job() -> float:
        started = time.perf_counter()
        enqueued = queue.enqueue(bench_jobs.hello, 1)
        result = enqueued.latest_result(timeout=30)
        elapsed = time.perf_counter() - started
        if result is None or result.type != result.Type.SUCCESSFUL:
            raise RuntimeError(f"the bare rq worker did not run the job: {result}")
        return elapsed

    try:
        yield job
    finally:
        _stop(worker)
        connection.close()


@contextmanager
def bare_celery(directory: Path, url: str, traced: bool = False) -> Iterator[Callable[[], float]]:
    """A bare ``celery worker`` (prefork, one process); yields a function that runs one job through it.
    ``traced``: the worker's pool process and this process trace (``trace_here``), from now on."""
    import bench_jobs

    if traced:
        bench_jobs.trace_here()
    app = bench_jobs.app
    app.conf.update(broker_url=url, result_backend=url)
    argv = [sys.executable, "-m", "celery", "-A", "bench_jobs:app", "-b", url, "--result-backend", url]
    argv += ["worker", "--pool=prefork", "--concurrency=1", "--without-mingle", "--without-gossip"]
    argv += ["--without-heartbeat", "--loglevel=WARNING"]
    # ready once it ran a first job (no app.control.ping: its reply queue's binding would outlive the lease)
    ready = lambda: bench_jobs.add.delay(0, 0).get(timeout=60) == 0  # noqa: E731
    worker = _bare(argv, directory, ready, {"JOBTRACE_BENCH_TRACED": "1"} if traced else None)

    def job() -> float:
        started = time.perf_counter()
        value = bench_jobs.add.delay(1, 1).get(timeout=30)
        elapsed = time.perf_counter() - started
        if value != 2:
            raise RuntimeError(f"the bare celery worker answered {value!r}")
        return elapsed

    try:
        yield job
    finally:
        _stop(worker)


def run(report: Report, quick: bool = False) -> None:
    # an RQ job costs a fork (70 ms and more); a Celery job 2 ms, whose median needs more jobs to settle
    rounds = {"rq": 30, "celery": 200} if quick else {"rq": 100, "celery": 1000}
    # (system, the bare worker, traced): in the order of the session's tests; this process is the bare
    # side's client, without tracing until the traced bare worker's turn
    sides = [("rq", bare_rq, False), ("celery", bare_celery, False), ("celery", bare_celery, True)]
    with tempfile.TemporaryDirectory(prefix="jobtrace-bench-live-") as name:
        directory = Path(name)
        (directory / "bench_jobs.py").write_text(JOBS)
        (directory / "pytest.ini").write_text("[pytest]\n")
        sys.path.insert(0, str(directory))
        leases = {system: SessionLease(REDIS, "benchmark") for system in ("rq", "celery")}
        session = LiveSession(directory)
        try:
            for system, bare_worker, traced in sides:
                with bare_worker(directory, leases[system].url, *([True] if traced else [])) as bare:
                    session.open(system)
                    live, anchor = _take_turns(session, bare, rounds[system])
                    session.close(system)
                mine, bare_median = statistics.median(live), statistics.median(anchor)
                paired = statistics.median(a / b for a, b in zip(live, anchor))
                what = "bare, traced" if traced else "bare"
                print(
                    f"  {system}: live {mine * 1e3:.2f} ms vs {what} {bare_median * 1e3:.2f} ms per job (medians of "
                    f"{rounds[system]}, interleaved; median of the job-by-job ratios {paired:.2f}x)"
                )
                if traced:  # what the plugin costs beyond tracing: printed, the target is the untraced one's
                    print(
                        f"  {system}: live vs a bare {system} worker tracing with the stock instrumentation "
                        f"(spans dropped): {mine / bare_median:.2f}x"
                    )
                else:
                    report(
                        f"live: a job through live_{system}_worker vs a bare {system} worker",
                        mine / bare_median,
                        1.2,
                        "x",
                    )
            session.finish()
        finally:
            session.kill()
            for lease in leases.values():
                lease.release()
            sys.path.remove(str(directory))


def _take_turns(session: LiveSession, bare: Callable[[], float], rounds: int) -> tuple[list[float], list[float]]:
    """``rounds`` jobs a side (after WARM_UP), job by job, each side first in turn: what the machine does
    meanwhile hits both alike. Returns the live times and the bare ones."""
    live: list[float] = []
    anchor: list[float] = []
    for n in range(rounds + WARM_UP):
        pair = (bare(), session.job()) if n % 2 else tuple(reversed((session.job(), bare())))
        if n >= WARM_UP:
            anchor.append(pair[0])
            live.append(pair[1])
    return live, anchor


def _print(name: str, value: float, limit: float, unit: str) -> None:
    print(f"{name}: {value:.2f}{unit} (target <= {limit}{unit})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer jobs")
    print(f"load average: {os.getloadavg()}")
    run(_print, parser.parse_args().quick)
