"""What every live worker fixture does alike: one worker process per test process, reused by every test.

An adapter with live workers subclasses :class:`LiveWorkers` and writes only what differs: what to prepare
once (``prepare``: its app, its broker), the worker's command (``command``), what to switch on in the test
process for a test (``attach``/``detach``: the publish side's instrumentation, the app's broker), and what to
clean up (``cleanup``). Starting, readiness, restarting a dead worker, failing the test in which it died
(with its output), stopping and reaping at the end of the session live here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from pytest_jobtrace._core.options import JobtraceOptions, session_options
from pytest_jobtrace._jobs import waiting
from pytest_jobtrace._live import tracing as live_tracing
from pytest_jobtrace._live.process import LiveWorkerError, WorkerProcess
from pytest_jobtrace._live.receiver import session_receiver

_SESSION = pytest.StashKey[dict[str, "LiveWorkers"]]()
_lock = threading.Lock()


class LiveWorkers:
    """One job system's live worker for this test process (per xdist worker), started on first use."""

    label = "live worker"
    fixture_name = "live_worker"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.options: JobtraceOptions = session_options(config)
        self.process: WorkerProcess | None = None
        self.external = self.options["live_workers"] == "external"
        self.timeout = float(self.options["live_timeout"])
        self._prepared = False
        self._starts = 0
        self._death_told = False  # a wait() in the test already failed saying the worker died
        self._instrumented_with: dict[str, object] = {}  # instrumentation() when the running worker started

    # -- what an adapter writes -------------------------------------------------------------------

    def prepare(self, request: pytest.FixtureRequest) -> None:
        """Once, before the first worker starts (or the first test, with external workers)."""

    def command(self) -> tuple[Sequence[str], dict[str, str]]:
        """The worker's argv and the environment it needs beyond the test process's."""
        raise NotImplementedError

    def attach(self, request: pytest.FixtureRequest) -> Any:
        """Switch the test process over to the live workers for one test; returns what the fixture yields."""
        raise NotImplementedError

    def detach(self, handle: Any) -> None:
        """Undo :meth:`attach`."""

    def cleanup(self) -> None:
        """At the end of the session, after the worker stopped: what ``prepare`` created goes."""

    def instrumentation(self) -> dict[str, object]:
        """The options of the test process's instrumentation of the job system as the test will run
        (``use_span_links``), JSON-serialisable: the worker instruments with the same ones."""
        return {}

    # -- alike for every adapter ------------------------------------------------------------------

    @property
    def starts(self) -> int:
        """How many worker processes this session started (1 unless one died)."""
        return self._starts

    def begin(self, request: pytest.FixtureRequest) -> Any:
        """For one test: the worker running (started, or restarted after a death), the test process attached."""
        __tracebackhide__ = True
        if not self._prepared:
            self._prepared = True
            self.prepare(request)
        wanted = self.instrumentation()
        running = self.process is not None and self.process.alive()
        if self.external:  # workers elsewhere export to the receiver: it listens from the first test on
            session_receiver(self.config)
        elif not (running and wanted == self._instrumented_with):
            if self.process is not None:
                # reap the dead one (its death failed the test it happened in), or stop the one instrumented
                # otherwise than this process is now: its traces would not be the ones production gives
                self.process.stop()
                self.process = None
            self._instrumented_with = wanted
            self.process = self._start()
        return self.attach(request)

    def _start(self) -> WorkerProcess:
        __tracebackhide__ = True
        receiver = session_receiver(self.config)
        argv, env = self.command()
        env = {**env, live_tracing.INSTRUMENTATION_ENV: json.dumps(self._instrumented_with)}
        process = WorkerProcess(self.label, argv, env, receiver.traces_endpoint)
        self._starts += 1
        try:
            return process.start(self.timeout)
        except LiveWorkerError as error:
            process.stop()
            pytest.fail(f"{self.fixture_name}: {error}", pytrace=False)

    def death(self) -> str | None:
        """Why the worker died (with its output), or None while it runs (or runs elsewhere)."""
        if self.process is None:
            return None
        death = self.process.death()
        return f"{self.fixture_name}: {death}" if death else None

    def tell_death(self) -> str | None:
        """:meth:`death`, for ``job_spans.wait()``; the test's teardown then does not say it again."""
        death = self.death()
        self._death_told = self._death_told or death is not None
        return death

    def death_untold(self) -> str | None:
        """At the test's teardown: the worker's death, unless the test already failed with it."""
        told, self._death_told = self._death_told, False
        return None if told else self.death()

    def stop(self) -> None:
        process, self.process = self.process, None
        try:
            if process is not None:
                process.stop()
        finally:
            if self._prepared:
                self._prepared = False
                self.cleanup()


class LiveHandle:
    """What a live fixture yields, alike for every system: the worker, and ``settle()``.

    Adapters subclass it with what their users publish through (the app, a queue)."""

    def __init__(self, workers: LiveWorkers, request: pytest.FixtureRequest) -> None:
        from pytest_jobtrace._core.options import options_for

        self._workers = workers
        self._job_spans = request.getfixturevalue("job_spans")
        self._expect_failures = bool(options_for(request.node).get("expect_failures", False))

    @property
    def pid(self) -> int | None:
        """The worker's process id (None with external workers)."""
        return self._workers.process.pid if self._workers.process is not None else None

    def output(self) -> str:
        """What the worker printed so far (its log)."""
        return self._workers.process.output() if self._workers.process is not None else ""

    def settle(self, timeout: float | None = None, *, expect_failures: bool | None = None) -> None:
        """Wait until every job of the test has ended (``job_spans.wait``, ``jobtrace_live_timeout`` by
        default); then fail if one failed for good, as ``drain()`` does in-process, unless failures are
        expected (``expect_failures=True`` here or in the ``jobtrace`` marker)."""
        __tracebackhide__ = True
        from pytest_jobtrace._live.modes import raise_failed_jobs

        self._job_spans.wait(self._workers.timeout if timeout is None else timeout)
        expected = self._expect_failures if expect_failures is None else expect_failures
        if not expected:
            raise_failed_jobs(self._job_spans, f"{self._workers.fixture_name}.settle()")


def session_workers(config: pytest.Config, name: str, make: Any) -> LiveWorkers:
    """The session's :class:`LiveWorkers` for adapter ``name`` (made by ``make(config)`` on first use)."""
    with _lock:
        table = config.stash.setdefault(_SESSION, {})
        if name not in table:
            table[name] = make(config)
        return table[name]


def stop_session_workers(config: pytest.Config) -> None:
    """Stop every live worker of the session and reap it (before the receiver stops)."""
    table = config.stash.get(_SESSION, {})
    errors = []
    for workers in table.values():
        try:
            workers.stop()
        except Exception as error:  # stop the others still; report after
            errors.append(f"{workers.fixture_name}: {type(error).__name__}: {error}")
    table.clear()
    if errors:
        raise RuntimeError("pytest-jobtrace: stopping live workers failed: " + "; ".join(errors))


def live_fixture(request: pytest.FixtureRequest, workers: LiveWorkers) -> Any:
    """The body of every ``live_<system>_worker`` fixture (a generator: setup, the test, teardown)."""
    __tracebackhide__ = True
    handle = workers.begin(request)
    waiting.add_check(workers.tell_death)
    try:
        yield handle
    finally:
        waiting.remove_check(workers.tell_death)
        workers.detach(handle)
    death = workers.death_untold()
    if death is not None:
        pytest.fail(f"{death}\n  (it was running the jobs of this test; the next test starts a new one)", pytrace=False)
