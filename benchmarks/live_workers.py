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

Worker start is paid once, outside the timed jobs, in both. Each side's figure is the median time per job
(60 RQ jobs, 300 Celery jobs: a Celery job takes about 2 ms and its median moves with the machine); the
bare and live sessions alternate three times (once with --quick) and the repetition with the median
ratio (live / bare) is reported. Target: at most 1.2x for each system.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from pytest_jobtrace._live.redis import SessionLease

Report = Callable[[str, float, float, str], None]  # name, value, limit, unit (as benchmarks/run.py's)
REDIS = "redis://127.0.0.1:6379/1-15"
WARM_UP = 5

JOBS = textwrap.dedent(
    """
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
    """
)

LIVE_TEST = textwrap.dedent(
    """
    import json
    import os
    import time

    import pytest

    import bench_jobs

    ROUNDS = json.loads(os.environ["BENCH_ROUNDS"])


    @pytest.fixture
    def celery_app():
        return bench_jobs.app


    def _time(job_spans, publish, settle, rounds):
        times = []
        for n in range(rounds + {warm_up}):
            job_spans.clear()  # each job as the one job of a test: wait() reads that test's spans only
            started = time.perf_counter()
            publish(n)
            settle()
            times.append(time.perf_counter() - started)
        return times[{warm_up}:]


    def test_rq(job_spans, live_rq_worker):
        queue = live_rq_worker.queue()
        times = _time(job_spans, lambda n: queue.enqueue(bench_jobs.hello, n), live_rq_worker.settle, ROUNDS["rq"])
        with open("rq.json", "w") as out:
            json.dump(times, out)


    def test_celery(job_spans, live_celery_worker):
        times = _time(job_spans, lambda n: bench_jobs.add.delay(n, 1), live_celery_worker.settle, ROUNDS["celery"])
        with open("celery.json", "w") as out:
            json.dump(times, out)
    """
).format(warm_up=WARM_UP)


def _bare(argv: list[str], directory: Path, ready: Callable[[], bool]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(directory)}
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


def bare_rq(directory: Path, rounds: int, url: str) -> list[float]:
    import redis
    from rq import Queue, Worker

    sys.path.insert(0, str(directory))
    import bench_jobs

    connection = redis.Redis.from_url(url)
    argv = [sys.executable, "-m", "rq.cli", "worker", f"--url={url}", "default"]
    worker = _bare(argv, directory, lambda: bool(Worker.all(connection=connection)))
    try:
        queue = Queue(connection=connection)
        times = []
        for n in range(rounds + WARM_UP):
            started = time.perf_counter()
            job = queue.enqueue(bench_jobs.hello, n)
            result = job.latest_result(timeout=30)
            if result is None or result.type != result.Type.SUCCESSFUL:
                raise RuntimeError(f"the bare rq worker did not run the job: {result}")
            times.append(time.perf_counter() - started)
        return times[WARM_UP:]
    finally:
        _stop(worker)
        connection.close()


def bare_celery(directory: Path, rounds: int, url: str) -> list[float]:
    sys.path.insert(0, str(directory))
    import bench_jobs

    app = bench_jobs.app
    app.conf.update(broker_url=url, result_backend=url)  # one URL for every repetition: the app keeps its pool
    argv = [sys.executable, "-m", "celery", "-A", "bench_jobs:app", "-b", url, "--result-backend", url]
    argv += ["worker", "--pool=prefork", "--concurrency=1", "--without-mingle", "--without-gossip"]
    argv += ["--without-heartbeat", "--loglevel=WARNING"]
    # ready once it ran a first job (no app.control.ping: its reply queue's binding would outlive the lease)
    worker = _bare(argv, directory, lambda: bench_jobs.add.delay(0, 0).get(timeout=60) == 0)
    try:
        times = []
        for n in range(rounds + WARM_UP):
            started = time.perf_counter()
            assert bench_jobs.add.delay(n, 1).get(timeout=30) == n + 1
            times.append(time.perf_counter() - started)
        return times[WARM_UP:]
    finally:
        _stop(worker)


def live(directory: Path, rounds: dict[str, int]) -> dict[str, list[float]]:
    (directory / "test_bench.py").write_text(LIVE_TEST)
    env = {**os.environ, "BENCH_ROUNDS": json.dumps(rounds), "PYTEST_ADDOPTS": ""}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "test_bench.py"]
    argv += ["-o", "jobtrace_celery_live_pool=prefork", "-W", "ignore::DeprecationWarning"]
    done = subprocess.run(argv, cwd=directory, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the live session failed:\n{done.stdout}\n{done.stderr}")
    return {name: json.loads((directory / f"{name}.json").read_text()) for name in ("rq", "celery")}


def run(report: Report, quick: bool = False) -> None:
    # an RQ job costs a fork (70 ms and more); a Celery job 2 ms, whose median needs more jobs to settle
    rounds, repetitions = ({"rq": 30, "celery": 100}, 1) if quick else ({"rq": 60, "celery": 300}, 3)
    ours: dict[str, list[float]] = {"rq": [], "celery": []}
    anchor: dict[str, list[float]] = {"rq": [], "celery": []}
    with tempfile.TemporaryDirectory(prefix="jobtrace-bench-live-") as name:
        directory = Path(name)
        (directory / "bench_jobs.py").write_text(JOBS)
        (directory / "pytest.ini").write_text("[pytest]\n")
        leases = {system: SessionLease(REDIS, "benchmark") for system in ("rq", "celery")}
        try:
            for _ in range(repetitions):  # alternated: a load change on a shared machine hits both sides
                for system, bare in (("rq", bare_rq), ("celery", bare_celery)):
                    anchor[system].append(statistics.median(bare(directory, rounds[system], leases[system].url)))
                for system, times in live(directory, rounds).items():
                    ours[system].append(statistics.median(times))
        finally:
            for lease in leases.values():
                lease.release()
    for system in ("rq", "celery"):
        # the repetition whose ratio is the median of the ratios
        pairs = sorted(zip(ours[system], anchor[system]), key=lambda pair: pair[0] / pair[1])
        mine, bare = pairs[len(pairs) // 2]
        print(f"  {system}: live {mine * 1e3:.2f} ms vs bare {bare * 1e3:.2f} ms per job (median of {rounds[system]})")
        report(f"live: a job through live_{system}_worker vs a bare {system} worker", mine / bare, 1.2, "x")


def _print(name: str, value: float, limit: float, unit: str) -> None:
    print(f"{name}: {value:.2f}{unit} (target <= {limit}{unit})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer jobs")
    print(f"load average: {os.getloadavg()}")
    run(_print, parser.parse_args().quick)
