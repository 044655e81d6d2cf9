"""The adaptation layer that runs RQ's own tests (``tests/`` of RQ's sdist) under ``rq_jobs``, or on RQ's workers.

``upstream/run.py rq`` copies this file into the work tree's ``tests/`` (RQ's own tests package, which imports
``tests`` and ``tests.fixtures``). The mode (``--upstream-mode``):

- ``fixture``: each test's ``self.connection`` is ``rq_jobs.connection`` (an embedded fakeredis with Lua), and a
  worker's ``work()`` runs the jobs through ``rq_jobs`` instead: ``rq_jobs.use_worker`` with the worker's class
  and options, then ``rq_jobs.drain()``, or ``perform_one()`` up to ``max_jobs`` times. The worker object the
  test made does not run the jobs; rq_jobs' own worker of that class does.
- ``reference``: RQ's tests as written, their own workers (``Worker`` forks a work horse, ``SimpleWorker`` does
  not) on the Redis at ``JOBTRACE_UPSTREAM_REDIS_URL`` (default ``redis://127.0.0.1:6379/1-15``), each test in
  a database leased as ``rq_jobs`` leases one (``pytest_jobtrace.rq._connection``): never database 0, never a
  database another test or run holds. The worker's command channel polls every second, not every 60 s (see
  ``_poll_commands_often``).

In both modes RQTestCase's ``flushdb`` in setUp/tearDown is dropped: each test starts on a database of its own
that holds no RQ keys, and the lease deletes what the test wrote (``flushdb`` would also delete the lease key
and other clients' keys). ``find_empty_redis_database`` (any empty database of 4-16, flushed) fails instead.

Which tests run: those of the suite's files (suite.toml) that run a worker (their code calls a worker's
``.work(``, not ``scheduler.work()``), less those RQ marks ``slow`` or ``ssl_test`` (RQ skips them by default).
The others check RQ's API against Redis and would test fakeredis, not rq_jobs. In fixture mode a test that never
calls ``work()`` fails at teardown, so none passes without rq_jobs running its jobs. expected.toml lists the
tests expected to differ.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REFERENCE_URL = os.environ.get("JOBTRACE_UPSTREAM_REDIS_URL", "redis://127.0.0.1:6379/1-15")
RUNS_A_WORKER = re.compile(r"(?<!scheduler)\.work\(")  # a worker's work(), not RQScheduler.work()
LEFT_OUT_MARKERS = ("slow", "ssl_test")


def _mode(config: pytest.Config) -> str:
    try:
        return str(config.getoption("upstream_mode"))
    except ValueError:  # run without upstream/run.py's plugin
        return os.environ.get("JOBTRACE_UPSTREAM_MODE", "fixture")


def pytest_configure(config: pytest.Config) -> None:
    import rq

    import tests  # RQ's tests package: this file's folder

    if Path(rq.__file__).is_relative_to(Path(tests.__file__).parent.parent):
        raise pytest.UsageError(f"upstream/rq: rq is imported from {rq.__file__}, not from the installed package")
    for marker in LEFT_OUT_MARKERS:
        config.addinivalue_line("markers", f"{marker}: RQ's marker (left out of this suite)")
    _adapt(tests)
    if _mode(config) == "reference":
        _poll_commands_often()


def _poll_commands_often() -> None:
    """A real worker's command channel polls every second instead of every 60 s.

    RQ 3.0 runs its pubsub thread with ``sleep_time=60``; when the worker stops, redis-py 8's ``stop()`` joins
    that thread, which can sit out the whole 60 s after ``unsubscribe()``. A burst then ends a minute late, and
    RQ's tests that time it fail at random: a callback's key set with ``ex=60`` is gone, a retry due in 10 s is
    already due. Commands are still received, only sooner."""
    from redis.client import PubSub

    original = PubSub.run_in_thread

    def run_in_thread(pubsub: Any, sleep_time: float = 0.0, *args: Any, **kwargs: Any) -> Any:
        return original(pubsub, min(sleep_time, 1.0), *args, **kwargs)

    PubSub.run_in_thread = run_in_thread  # type: ignore[method-assign, assignment]


def _adapt(tests: Any) -> None:
    """RQTestCase without a connection of its own (the fixture below gives each test one)."""

    def no_redis(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("upstream/rq: find_empty_redis_database() would take and flush any empty database")

    tests.find_empty_redis_database = no_redis
    tests.min_redis_version = lambda version: lambda test: test  # asks database 0's server; 7.x here and fakeredis
    case = tests.RQTestCase
    case.setUpClass = classmethod(lambda cls: logging.disable(logging.ERROR))
    case.tearDownClass = classmethod(lambda cls: logging.disable(logging.NOTSET))
    case.setUp = lambda self: None
    case.tearDown = lambda self: None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = [item for item in items if _runs_a_worker(item)]
    config.hook.pytest_deselected(items=[item for item in items if item not in chosen])
    items[:] = chosen


def _runs_a_worker(item: pytest.Item) -> bool:
    if any(item.get_closest_marker(name) for name in LEFT_OUT_MARKERS):
        return False
    try:
        return RUNS_A_WORKER.search(inspect.getsource(item.obj)) is not None  # type: ignore[attr-defined]
    except (AttributeError, TypeError, OSError):
        return False


@pytest.fixture(autouse=True)
def _upstream_connection(request: pytest.FixtureRequest) -> Iterator[None]:
    """``self.connection``: rq_jobs' in fixture mode, a leased database of the Redis here in reference mode."""
    if request.instance is None:
        yield
        return
    if _mode(request.config) == "fixture":
        rq_jobs = request.getfixturevalue("rq_jobs")
        request.instance.connection = rq_jobs.connection
        ran = _work_through(rq_jobs, request.getfixturevalue("monkeypatch"))
        yield
        if not ran:  # a pass that never went through rq_jobs would say nothing of it
            pytest.fail("upstream/rq: the test never ran a worker's work(), so rq_jobs ran none of its jobs")
        return
    from pytest_jobtrace.rq._connection import open_connection

    lease = open_connection(REFERENCE_URL)
    request.instance.connection = lease.connection
    try:
        yield
    finally:
        lease.close()


def _work_through(rq_jobs: Any, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A worker's ``work()`` runs the jobs through rq_jobs, with the worker's class and options.

    Returns the calls made so far (one entry each), as the test goes on."""
    from rq.worker import BaseWorker

    calls: list[bool] = []

    def work(worker: Any, burst: bool = False, max_jobs: int | None = None, **ignored: Any) -> bool:
        calls.append(burst)
        return _work(worker, max_jobs)

    def _work(worker: Any, max_jobs: int | None) -> bool:
        # Without burst a worker runs until stopped: here by max_jobs (the tests that stop one by a signal are
        # excluded); with_scheduler and dequeue_strategy are ignored: rq_jobs is the scheduler, and takes jobs
        # queue by queue.
        rq_jobs.use_worker(type(worker), **_options(worker))
        if max_jobs is None:
            return bool(rq_jobs.drain(expect_failures=True))
        performed = 0
        while performed < max_jobs:
            try:
                rq_jobs.perform_one(expect_failures=True)
            except LookupError:  # nothing pending
                break
            performed += 1
        return performed > 0

    monkeypatch.setattr(BaseWorker, "work", work)
    return calls


def _options(worker: Any) -> dict[str, Any]:
    """What ``use_worker`` takes of the test's worker (queues, connection, serializer and job class are rq_jobs')."""
    return {
        "name": worker.name,
        "default_result_ttl": worker.default_result_ttl,
        "exception_handlers": list(worker._exc_handlers),
        "disable_default_exception_handler": worker.disable_default_exception_handler,
        "queue_class": worker.queue_class,
        "log_job_description": worker.log_job_description,
        "worker_ttl": worker.worker_ttl,
        "work_horse_killed_handler": worker._work_horse_killed_handler,
    }
