"""``live_celery_worker``: the test publishes through the user's app to a real ``celery worker`` process.

One worker per test process (per xdist worker), started on first use with Celery's own command line
(``live_worker.py``), prefork pool by default. The broker and the result backend are one Redis database
leased for the session (``jobtrace_celery_live_broker_url``, default ``redis://127.0.0.1:6379/1-15``), so
the app's own queue names hold and no other run shares them. On RabbitMQ (an ``amqp://`` URL) queues are
shared by every run of the vhost: each queue the worker consumes gets a suffix of this run's own
(``orders-1a2b3c4d``, its exchange and routing key too), the app's names staying aliases of them, and is
deleted at the end; results then go to a leased Redis database (``jobtrace_celery_live_result_backend``).
For each test the app in the test process publishes there and Celery's publish side is instrumented;
everything switches back at teardown.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from pytest_jobtrace.adapters import LiveHandle, LiveWorkers, RedisLeaseError, SessionLease
from pytest_jobtrace.celery.live_worker import CONF_ENV, SUFFIX_ENV, renamed_queues

LIVE_APP_HINT = "set jobtrace_celery_live_app = 'package.module:app' (an app the worker can import)"


class LiveCeleryWorker(LiveHandle):
    """What ``live_celery_worker`` gives a test: the app (publishing to the live worker) and the worker
    (``pid``, ``output()``, ``settle()``). Only exposed for type hints; the constructor is not API.
    """

    def __init__(self, workers: CeleryLiveWorkers, request: pytest.FixtureRequest) -> None:
        super().__init__(workers, request)
        self.app: Any = workers.app
        self.broker_url: str = workers.broker_url
        self.queues: tuple[str, ...] = tuple(workers.queues)

    def __repr__(self) -> str:
        return f"<LiveCeleryWorker pid={self.pid} broker={self.broker_url} queues={','.join(self.queues)}>"


LiveCeleryWorker.__module__ = "pytest_jobtrace.celery"


class CeleryLiveWorkers(LiveWorkers):
    label = "celery worker"
    fixture_name = "live_celery_worker"

    def __init__(self, config: pytest.Config) -> None:
        super().__init__(config)
        self.app: Any = None
        self.spec = ""
        self.broker_url = ""
        self.queues: list[str] = []
        self.conf: dict[str, Any] = {}
        self._lease: SessionLease | None = None
        self._suffix = f"-{uuid.uuid4().hex[:8]}"
        self.suffix = ""  # on RabbitMQ: what this run's queue names end with
        self._saved: dict[str, Any] = {}
        self._instrumented: Any = None

    def prepare(self, request: pytest.FixtureRequest) -> None:
        __tracebackhide__ = True
        self.spec, self.app = _find_app(request, self.options)
        if self.external:
            self.broker_url = str(self.app.conf.broker_url)
            return
        url = str(self.options["celery_live_broker_url"])
        if url.startswith(("redis://", "rediss://")):
            try:
                self._lease = SessionLease(url, "jobtrace_celery_live_broker_url")
            except RedisLeaseError as error:
                pytest.fail(f"live_celery_worker: {error}", pytrace=False)
            self.broker_url = self._lease.url
            self.conf = {"broker_url": self.broker_url, "result_backend": self.broker_url}
        elif url.startswith(("amqp://", "amqps://", "pyamqp://")):
            backend = str(self.options["celery_live_result_backend"])
            try:
                self._lease = SessionLease(backend, "jobtrace_celery_live_result_backend")
            except RedisLeaseError as error:
                pytest.fail(f"live_celery_worker: {error}", pytrace=False)
            self.broker_url = url
            self.conf = {"broker_url": url, "result_backend": self._lease.url}
            self.suffix = self._suffix
        else:
            pytest.fail(
                f"live_celery_worker: jobtrace_celery_live_broker_url = {url!r}: use an amqp:// URL or a redis:// "
                "URL (a database range to lease one from, e.g. redis://127.0.0.1:6379/1-15)",
                pytrace=False,
            )
        self.conf["broker_connection_retry_on_startup"] = True
        self.queues = _queues(self.app, self.options["celery_live_queues"])

    def command(self) -> tuple[Sequence[str], dict[str, str]]:
        pool = str(self.options["celery_live_pool"])
        argv = [
            sys.executable,
            "-m",
            "pytest_jobtrace.celery.live_worker",
            self.spec,
            f"--pool={pool}",
            f"--concurrency={int(self.options['celery_live_concurrency'])}",
            f"--queues={','.join(self.queues)}",
            f"--hostname=jobtrace{self._suffix}@%h",
            f"--loglevel={self.options['celery_live_loglevel']}",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
        return argv, {CONF_ENV: json.dumps(self.conf), SUFFIX_ENV: self.suffix}

    def instrumentation(self) -> dict[str, object]:
        """``use_span_links`` of the instrumentation in this process (none yet: attach() instruments with
        the defaults)."""
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        instrumentor = CeleryInstrumentor()
        links = instrumentor.is_instrumented_by_opentelemetry and getattr(instrumentor, "_use_span_links", False)
        return {"use_span_links": bool(links)}

    def attach(self, request: pytest.FixtureRequest) -> LiveCeleryWorker:
        from pytest_jobtrace.celery import _state

        if self._lease is not None:
            self._lease.renew()
        if self.conf:
            settings = dict(self.conf)
            if self.suffix:
                settings["task_queues"] = renamed_queues(self.app, self.queues, self.suffix)
            self._saved = {key: self.app.conf.get(key) for key in settings}
            self.app.conf.update(settings)
            _reset_connections(self.app)
        self._instrumented = _state.Restorer()
        _state.instrument(self._instrumented, None)  # the publish side, in this process
        return LiveCeleryWorker(self, request)

    def detach(self, handle: Any) -> None:
        if self._instrumented is not None:
            self._instrumented.restore()
            self._instrumented = None
        if self._saved:
            self.app.conf.update(self._saved)
            self._saved = {}
            _reset_connections(self.app)

    def cleanup(self) -> None:
        if self.suffix and self.queues:
            _delete_queues(self.broker_url, [f"{name}{self.suffix}" for name in self.queues])
        if self._lease is not None:
            self._lease.release()
            self._lease = None


def _reset_connections(app: Any) -> None:
    """Forget the app's connection pools and result backend, so the next publish uses the new broker
    (Celery has no public call for switching an app's broker once it was used; ``_after_fork`` does this).
    The pools are kombu's, shared by URL (``kombu.pools``): forgotten here, not closed."""
    app._pool = None
    app.__dict__.pop("amqp", None)  # its producer pool, queues and router, made again from the settings
    app._backend_cache = None
    app._local = threading.local()


def _find_app(request: pytest.FixtureRequest, options: Any) -> tuple[str, Any]:
    """The app the worker runs, as an import path and the object: ``celery_live_app``, ``celery_app``, or the
    test's ``celery_app`` fixture (found by name among the imported modules)."""
    __tracebackhide__ = True
    from pytest_jobtrace.celery._adapter import _has_fixture, _load_app

    spec = str(options["celery_live_app"] or options["celery_app"] or "")
    if spec:
        try:
            return spec, _load_app(spec)
        except (TypeError, ValueError) as error:
            pytest.fail(f"live_celery_worker: {error}", pytrace=False)
    if not _has_fixture(request, "celery_app"):
        pytest.fail(f"live_celery_worker: which Celery app should the worker run? {LIVE_APP_HINT}", pytrace=False)
    app = request.getfixturevalue("celery_app")
    found = _import_path(app)
    if found is None:
        pytest.fail(
            f"live_celery_worker: the celery_app fixture's app {app!r} is not a module-level name of any imported "
            f"module, so a worker process cannot import it; {LIVE_APP_HINT}",
            pytrace=False,
        )
    return found, app


def _import_path(app: Any) -> str | None:
    candidates = []
    for name, module in list(sys.modules.items()):
        if name == "__main__" or module is None:
            continue
        for attribute, value in list(vars(module).items()):
            if value is app and not attribute.startswith("_"):
                candidates.append(f"{name}:{attribute}")
    # a conftest would be imported twice (and run its hooks' imports) in the worker: a real module first
    candidates.sort(key=lambda spec: ("conftest" in spec, spec.count("."), spec))
    return candidates[0] if candidates else None


def _queues(app: Any, option: object) -> list[str]:
    """``celery_live_queues`` (comma-separated), else every queue the app names: its default queue,
    ``task_queues``, the queues of ``task_routes`` given as mappings, and tasks' own ``queue``."""
    if option:
        return [name.strip() for name in str(option).split(",") if name.strip()]
    names = [str(app.conf.task_default_queue)]
    names.extend(queue.name for queue in app.conf.task_queues or ())
    names.extend(_route_queues(app.conf.task_routes))
    names.extend(task.queue for task in app.tasks.values() if isinstance(getattr(task, "queue", None), str))
    return list(dict.fromkeys(names))


def _route_queues(routes: object) -> Iterable[str]:
    tables = routes if isinstance(routes, (list, tuple)) else [routes]
    for table in tables:
        if isinstance(table, dict):
            for route in table.values():
                queue = route.get("queue") if isinstance(route, dict) else None
                if isinstance(queue, str):
                    yield queue


def _delete_queues(url: str, names: list[str]) -> None:
    """Delete the queues (and their exchanges) this run made on RabbitMQ."""
    from kombu.connection import Connection

    with Connection(url, connect_timeout=5) as connection:
        channel = connection.default_channel
        for name in names:
            channel.queue_delete(name)
            channel.exchange_delete(name)
