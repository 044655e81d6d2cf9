"""``live_rq_worker``: the test enqueues on a real Redis, a real ``rq worker`` process runs the jobs.

One worker per test process (per xdist worker), started on first use with RQ's own command line
(``live_worker.py``): the forking ``Worker``, with the scheduler, on the queues ``jobtrace_rq_live_queues``
names. It works on one Redis database leased for the session (``jobtrace_rq_live_redis_url``, default
``redis://127.0.0.1:6379/1-15``): queue names stay the application's own and no other run shares them.
For each test RQ is instrumented in the test process (the send spans), and undone at teardown.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import pytest

from pytest_jobtrace.adapters import LiveHandle, LiveWorkers, RedisLeaseError, SessionLease, report_verdict


class LiveRQWorker(LiveHandle):
    """What ``live_rq_worker`` gives a test: the connection the worker listens on, and the worker
    (``pid``, ``output()``, ``settle()``). Only exposed for type hints; the constructor is not API.
    """

    def __init__(self, workers: RQLiveWorkers, request: pytest.FixtureRequest) -> None:
        super().__init__(workers, request)
        self.connection: Any = workers.connection
        self.redis_url: str = workers.redis_url
        self.queues: tuple[str, ...] = tuple(workers.queues)

    def queue(self, name: str | None = None, **kwargs: Any) -> Any:
        """An ``rq.Queue`` on the worker's connection (default: the first of its queues)."""
        from rq import Queue

        return Queue(name or self.queues[0], connection=self.connection, **kwargs)

    def __repr__(self) -> str:
        return f"<LiveRQWorker pid={self.pid} redis={self.redis_url} queues={','.join(self.queues)}>"


LiveRQWorker.__module__ = "pytest_jobtrace.rq"


class RQLiveWorkers(LiveWorkers):
    label = "rq worker"
    fixture_name = "live_rq_worker"

    def __init__(self, config: pytest.Config) -> None:
        super().__init__(config)
        self.queues = [name.strip() for name in str(self.options["rq_live_queues"]).split(",") if name.strip()]
        self.redis_url = ""
        self.connection: Any = None
        self._lease: SessionLease | None = None
        self._instrumentor: Any = None
        self._undo_verdicts: Any = None

    def prepare(self, request: pytest.FixtureRequest) -> None:
        __tracebackhide__ = True
        import redis

        if request._fixturemanager.getfixturedefs("rq_live_queues", request.node):
            # a fixture the project overrides, as celery_app: the queues its jobs use
            self.queues = [str(name) for name in request.getfixturevalue("rq_live_queues")]

        url = str(self.options["rq_live_redis_url"])
        if self.external:
            self.redis_url = url
        else:
            try:
                self._lease = SessionLease(url, "jobtrace_rq_live_redis_url")
            except RedisLeaseError as error:
                pytest.fail(f"live_rq_worker: {error}", pytrace=False)
            self.redis_url = self._lease.url
        self.connection = redis.Redis.from_url(self.redis_url)

    def command(self) -> tuple[Sequence[str], dict[str, str]]:
        argv = [
            sys.executable,
            "-m",
            "pytest_jobtrace.rq.live_worker",
            f"--url={self.redis_url}",
            "--with-scheduler",
            *self.queues,
        ]
        return argv, {}

    def instrumentation(self) -> dict[str, object]:
        """``use_span_links`` of this process's ``RQInstrumentor`` (none yet: attach() instruments with the
        defaults)."""
        from pytest_jobtrace.rq.instrumentation import RQInstrumentor

        instrumentor = RQInstrumentor()
        links = instrumentor.is_instrumented_by_opentelemetry and getattr(instrumentor, "use_span_links", False)
        return {"use_span_links": bool(links)}

    def attach(self, request: pytest.FixtureRequest) -> LiveRQWorker:
        from pytest_jobtrace.rq.instrumentation import RQInstrumentor, third_party_active

        if self._lease is not None:
            self._lease.renew()
        if not RQInstrumentor().is_instrumented_by_opentelemetry and not third_party_active():
            self._instrumentor = RQInstrumentor()
            self._instrumentor.instrument()  # the send side, in this process
        from pytest_jobtrace.rq import _verdicts

        # a job the test cancels or deletes before the worker takes it: wait() is told not to wait for it
        self._undo_verdicts = _verdicts.install(report_verdict)
        return LiveRQWorker(self, request)

    def detach(self, handle: Any) -> None:
        if self._undo_verdicts is not None:
            self._undo_verdicts()
            self._undo_verdicts = None
        if self._instrumentor is not None:
            self._instrumentor.uninstrument()
            self._instrumentor = None

    def cleanup(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self._lease is not None:
            self._lease.release()
            self._lease = None
