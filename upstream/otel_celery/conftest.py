"""Adaptation layer for opentelemetry-instrumentation-celery's own tests (placed in the work tree as tests/conftest.py).

- reference mode: nothing changes; each test starts its own worker (``app.Worker``, solo pool) on a thread, on
  the ``memory://`` broker, as upstream runs them.
- fixture mode: no worker. ``app.Worker`` is a stand-in whose ``start()`` returns at once (what the tests do on
  the worker thread before starting it still happens), ``celery_jobs`` performs the tasks from the test's first
  publish on, and where a test polls ``result.ready()`` for the worker the pending tasks are drained first.
  The ``rpc`` result backend talks to the broker, which ``celery_jobs`` does not support (docs/celery.md,
  "Differences from a real worker"): the adaptation gives the app ``cache+memory://``, which the tests only
  read through ``ready()`` and ``result``.
  A socket guard makes any connection out of the process fail the test.
"""

from __future__ import annotations

import os
import socket

import pytest
from celery.result import AsyncResult

from tests import celery_test_tasks

MODE = os.environ.get("JOBTRACE_UPSTREAM_MODE", "fixture")

if MODE == "fixture":
    _state: dict[str, object] = {"jobs": None, "draining": False}

    def settle() -> None:
        """Run what the worker would have run by now: drain the pending tasks (not from inside a task)."""
        jobs = _state["jobs"]
        if jobs is None or _state["draining"] or not jobs.pending:  # type: ignore[attr-defined]
            return
        _state["draining"] = True
        try:
            jobs.drain(expect_failures=True)  # type: ignore[attr-defined]
        finally:
            _state["draining"] = False

    class NoWorker:
        """Stands in for ``app.Worker``: celery_jobs is the worker."""

        def __init__(self, *args, **kwargs):
            self.options = kwargs

        def start(self, *args, **kwargs):
            return None

        def stop(self, *args, **kwargs):
            return None

    @pytest.fixture(scope="session", autouse=True)
    def _nothing_leaves_the_process():
        original = socket.socket.connect

        def refuse(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise OSError(f"upstream fixture mode: a connection to {address} would leave the process")
            return original(self, address)

        socket.socket.connect = refuse  # type: ignore[method-assign]
        yield
        socket.socket.connect = original  # type: ignore[method-assign]

    @pytest.fixture(scope="session")
    def celery_app():
        app = celery_test_tasks.app
        app.conf.result_backend = "cache+memory://"
        return app

    @pytest.fixture(autouse=True)
    def _jobs(celery_app, monkeypatch, request):
        """celery_jobs takes over where the worker would start working: at the test's first publish.

        The tests instrument Celery in their body, after setUp started the worker; a fixture set up before the
        test would find Celery uninstrumented and instrument it itself (docs/celery.md, "What it does").
        """
        monkeypatch.setattr(celery_app, "Worker", NoWorker, raising=False)
        send_task = celery_app.send_task

        def send_task_under_celery_jobs(*args, **kwargs):
            if _state["jobs"] is None:
                _state["jobs"] = request.getfixturevalue("celery_jobs")
            return send_task(*args, **kwargs)

        monkeypatch.setattr(celery_app, "send_task", send_task_under_celery_jobs)
        for name in ("ready", "get"):
            original = getattr(AsyncResult, name)

            def settled(self, *args, __original=original, **kwargs):
                settle()
                return __original(self, *args, **kwargs)

            monkeypatch.setattr(AsyncResult, name, settled)
        yield
        _state["jobs"] = None
