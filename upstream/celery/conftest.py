"""Adaptation layer for Celery's own ``t/integration`` tests (placed in the work tree as t/integration/conftest.py).

Upstream's conftest is kept beside this one as ``upstream_conftest.py``: everything in it is taken over, and only
what concerns the app, the broker and the worker is replaced here.

- reference mode: a real worker (upstream's ``celery_session_worker``, ``start_worker`` with the prefork pool)
  on the Redis at 127.0.0.1:6379, broker and result backend under a key prefix of this run's own.
- fixture mode: no worker and no broker. ``celery_jobs`` runs every task in the test's process; where the upstream
  test waits for a worker (a result's ``get``/``ready``/``state``, the Manager's ``wait_for``, the Redis keys the
  tasks write), the pending tasks are drained first. The result backend is Celery's Redis backend on an
  in-process fakeredis server, so the tests that need the Redis backend run. A socket guard makes any
  connection out of the process fail the test: nothing leaves the process.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest
from t.integration import tasks as _tasks
from t.integration import upstream_conftest as _upstream

globals().update({name: value for name, value in vars(_upstream).items() if not name.startswith("__")})

MODE = os.environ.get("JOBTRACE_UPSTREAM_MODE", "fixture")
REDIS_URL = "redis://127.0.0.1:6379/0"
PREFIX = f"jobtrace-upstream-{uuid.uuid4().hex[:12]}:"

if MODE == "reference":
    import redis

    class PrefixedRedis(redis.StrictRedis):
        """The tests' own Redis connection, under this process's key prefix (the result backend's too).

        Two pytest-xdist workers (and anyone else on this Redis) would otherwise share the tests' fixed keys
        ("redis-echo", ...). Only the commands these tests send are prefixed; any other is refused, loudly.
        """

        FIRST_KEY = frozenset({"GET", "SET", "INCR", "LRANGE", "LLEN", "RPUSH", "ZRANGE"})
        ALL_KEYS = frozenset({"DEL", "EXISTS"})

        def execute_command(self, *args, **options):
            name = str(args[0]).upper()
            if name in self.FIRST_KEY:
                args = (args[0], _prefixed(args[1]), *args[2:])
            elif name in self.ALL_KEYS:
                args = (args[0], *map(_prefixed, args[1:]))
            elif name in ("BLPOP", "BRPOP"):
                reply = super().execute_command(args[0], *map(_prefixed, args[1:-1]), args[-1], **options)
                return None if reply is None else (_unprefixed(reply[0]), reply[1])
            elif name == "PUBSUB CHANNELS":
                channels = super().execute_command(*args, **options)
                return [_unprefixed(channel) for channel in channels if channel.startswith(PREFIX.encode())]
            else:
                raise NotImplementedError(f"upstream/celery/conftest.py: {name} is not prefixed; add it")
            return super().execute_command(*args, **options)

    def _prefixed(key):
        return PREFIX.encode() + key if isinstance(key, bytes) else PREFIX + str(key)

    def _unprefixed(key):
        return key[len(PREFIX) :] if key.startswith(PREFIX.encode()) else key

    def get_redis_connection():  # type: ignore[no-redef]
        return PrefixedRedis.from_url(REDIS_URL, socket_timeout=None)

    _tasks.get_redis_connection = get_redis_connection
    _upstream.get_redis_connection = get_redis_connection  # get_active_redis_channels() uses it

    @pytest.fixture(scope="session")
    def celery_config(request):  # type: ignore[no-redef]
        config = _upstream.celery_config.__wrapped__(request)
        config.update(
            broker_url=REDIS_URL,
            result_backend=REDIS_URL,
            broker_transport_options={"global_keyprefix": PREFIX},
            result_backend_transport_options={"global_keyprefix": PREFIX},
        )
        return config

    @pytest.fixture(scope="session")
    def celery_worker_parameters():
        """start_worker logs at ERROR unless told; the trace-log tests read the worker's INFO lines."""
        return {"loglevel": "INFO"}

    @pytest.fixture(scope="session", autouse=True)
    def _delete_this_runs_keys():
        yield
        client = redis.StrictRedis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{PREFIX}*", count=1000):
            client.delete(key)

else:
    import fakeredis
    from celery.backends.redis import RedisBackend
    from celery.contrib.testing.manager import Manager
    from celery.utils.nodenames import default_nodename

    SERVER = fakeredis.FakeServer()
    _state: dict[str, object] = {"jobs": None, "draining": False}
    # Upstream's large chords run more than drain()'s default bound of 1000 attempts (a guard against chains
    # that never end); a worker has no such bound.
    MAX_JOBS = 20_000

    def settle(*, wait: bool) -> None:
        """Do what a worker would have done by the time the test looks (``wait=False``: the tasks due now on the
        virtual clock) or once it has waited for it (``wait=True``: every pending task, moving the clock).
        Not from inside a task, whose own reads run on the worker."""
        jobs = _state["jobs"]
        if jobs is None or _state["draining"]:
            return
        _state["draining"] = True
        try:
            if wait:
                if jobs.pending:  # type: ignore[attr-defined]
                    jobs.drain(max_jobs=MAX_JOBS, expect_failures=True)  # type: ignore[attr-defined]
            else:
                while jobs.pending and jobs.pending[0].due <= jobs.clock.now:  # type: ignore[attr-defined]
                    jobs.perform_one(expect_failures=True)  # type: ignore[attr-defined]
        finally:
            _state["draining"] = False

    class SettlingRedis(fakeredis.FakeRedis):
        """The tests' own Redis connection (tasks.get_redis_connection): they read it to wait for the worker."""

        def execute_command(self, *args, **options):
            settle(wait=True)
            return super().execute_command(*args, **options)

    def get_redis_connection():  # type: ignore[no-redef]
        return SettlingRedis(server=SERVER)

    _tasks.get_redis_connection = get_redis_connection
    _upstream.get_redis_connection = get_redis_connection  # get_active_redis_channels() uses it

    def _settling(method, *, wait):
        def settled(self, *args, **kwargs):
            settle(wait=wait)
            return method(self, *args, **kwargs)

        return settled

    @pytest.fixture(scope="session", autouse=True)
    def _nothing_leaves_the_process():
        """Fixture mode runs in-process: any network connection fails the test that makes it."""
        original = socket.socket.connect

        def refuse(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise OSError(f"upstream fixture mode: a connection to {address} would leave the process")
            return original(self, address)

        socket.socket.connect = refuse  # type: ignore[method-assign]
        socket.socket.connect_ex = refuse  # type: ignore[method-assign,assignment]
        yield
        socket.socket.connect = original  # type: ignore[method-assign]
        del socket.socket.connect_ex

    @pytest.fixture(scope="session")
    def celery_config(request):  # type: ignore[no-redef]
        config = _upstream.celery_config.__wrapped__(request)
        # redis:// keeps Celery's Redis result backend (and the tests that need it); its client is fakeredis
        config.update(broker_url="memory://", result_backend="redis://")
        return config

    @pytest.fixture(scope="session", autouse=True)
    def _fake_redis_backend():
        patch = pytest.MonkeyPatch()
        patch.setattr(RedisBackend, "_create_client", lambda self, **params: fakeredis.FakeRedis(server=SERVER))
        # a result's state is a look; get(), join() and collect() wait
        for name in ("get_task_meta", "get_group_meta"):
            patch.setattr(RedisBackend, name, _settling(getattr(RedisBackend, name), wait=False))
        for name in ("wait_for_pending", "iter_native", "get_many"):
            patch.setattr(RedisBackend, name, _settling(getattr(RedisBackend, name), wait=True))
        yield
        patch.undo()

    @pytest.fixture(scope="session")
    def celery_session_worker():  # type: ignore[no-redef]
        """No worker: celery_jobs performs the tasks."""
        return None

    @pytest.fixture
    def celery_app(celery_session_app):  # type: ignore[no-redef]
        """One app for the test and the 'worker' (upstream: a test app per test, the session app in the worker)."""
        celery_session_app.set_current()
        return celery_session_app

    class InProcessInspect:
        """``manager.inspect()``: celery_jobs answers no broadcast (docs/celery.md, "What it does"), but the
        tests ping before they start to check that a worker is up; here the worker is the test's process."""

        def __init__(self, app):
            self.app = app

        def ping(self, *args, **kwargs):
            return {default_nodename(None): {"ok": "pong"}}  # the node name tasks see under celery_jobs

        def __getattr__(self, name):
            return getattr(self.app.control.inspect(), name)  # refused by celery_jobs, naming the command

    class SettlingManager(Manager):
        def wait_for(self, fun, catch, *args, **kwargs):
            settle(wait=True)
            return super().wait_for(fun, catch, *args, **kwargs)

        def wait_until_idle(self):
            settle(wait=True)

        def inspect(self, timeout=3.0):
            return InProcessInspect(self.app)

    @pytest.fixture
    def manager(app, celery_session_worker):  # type: ignore[no-redef]
        return SettlingManager(app)

    @pytest.fixture(autouse=True)
    def _jobs(celery_jobs):
        _state["jobs"] = celery_jobs
        yield celery_jobs
        _state["jobs"] = None
