"""The adaptation layer that runs Celery's own ``t/integration`` tests under ``celery_jobs``, or on a real worker.

``upstream/run.py celery`` copies this file into the work tree as ``t/integration/conftest.py``; upstream's
conftest is kept beside it as ``upstream_conftest.py``, everything in it is taken over, and only what concerns
the app, the broker and the worker is replaced here. The mode (``JOBTRACE_UPSTREAM_MODE``, set by run.py):

- ``reference``: a real worker as Celery's own CI runs these tests: upstream's ``celery_session_worker``
  (``celery.contrib.testing.worker.start_worker``: the worker's consumer on a thread of the test's process, so
  the tests see its signals, log records and ``celery.worker.state``; the tasks in a prefork pool of child
  processes), on the Redis at ``JOBTRACE_UPSTREAM_REDIS_URL`` (default ``redis://127.0.0.1:6379/1-15``):
  broker and result backend in a database leased as ``rq_jobs`` leases one (never database 0, never one
  another run holds), every key and channel under a prefix of this process's own (``global_keyprefix``), so
  nothing else on that Redis is seen, touched or flushed. Only the keys under the prefix are deleted at the
  end. (``start_worker`` turns Celery's task-join-will-block flag off, so this reference does not show that a
  task's ``result.get()`` raises on a worker; ``celery_jobs`` does, as a ``celery worker`` process does.)
- ``fixture``: no worker and no broker. ``celery_jobs`` runs every task in the test's process; where the
  upstream test waits for a worker (a result's ``get``/``ready``/``state``, the Manager's ``wait_for``, the
  Redis keys the tasks write), the pending tasks are drained first. The result backend is Celery's Redis
  backend on an in-process fakeredis server, so the tests that need the Redis backend run. A blocking pop on
  the tests' own Redis waits no real time once everything is drained: nothing else can arrive (no worker runs
  beside the test), so it answers at once what it would answer at its timeout. A socket guard makes any
  connection out of the process fail the test: nothing leaves the process.

Each test has a time limit (pytest-timeout, signal method: nothing in the test's process uses SIGALRM here;
the reference worker's tasks run in its prefork children): ``FIXTURE_TIMEOUT`` under the fixture,
where a test that waits is a test that hangs; upstream's own 300 s on a real worker.
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
FIXTURE_TIMEOUT = 120
REFERENCE_TIMEOUT = 300  # upstream's own limit for its flaky-marked tests


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError("upstream/celery: pytest-timeout is not installed (the test extra brings it)")


def pytest_collection_modifyitems(config, items):
    """One time limit per test, upstream's marks included (they were written for a real worker)."""
    limit = REFERENCE_TIMEOUT if MODE == "reference" else FIXTURE_TIMEOUT
    for item in items:
        item.add_marker(pytest.mark.timeout(limit), append=False)


if MODE == "reference":
    import redis

    from pytest_jobtrace.rq._connection import LEASE_KEY, Lease, _lease, with_database

    REFERENCE_URL = os.environ.get("JOBTRACE_UPSTREAM_REDIS_URL", "redis://127.0.0.1:6379/1-15")
    PREFIX = f"jobtrace-upstream-{uuid.uuid4().hex[:12]}:"
    _where: dict[str, object] = {"url": None, "lease": None}

    class PrefixedRedis(redis.StrictRedis):
        """The tests' own Redis connection, under this process's key prefix (the result backend's too).

        Only the commands these tests send are prefixed; any other is refused, loudly.
        """

        # what the tests and tasks send (redis-py 8 sends INCRBY for incr())
        FIRST_KEY = frozenset({"GET", "SET", "INCR", "INCRBY", "LRANGE", "LLEN", "RPUSH", "LPUSH", "ZRANGE"})
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
        """A key of the tests, under the prefix; the result backend's own keys carry it already (Celery puts
        global_keyprefix into ``get_key_for_group``'s keys), and a test may read those too."""
        key = key if isinstance(key, bytes) else str(key).encode()
        return key if key.startswith(PREFIX.encode()) else PREFIX.encode() + key

    def _unprefixed(key):
        return key[len(PREFIX) :] if key.startswith(PREFIX.encode()) else key

    # kombu 5.7's Redis transport keeps the deadlines of expiring binding tables (the pidbox reply queues of
    # ping and inspect) in this sorted set; one was found without the prefix in a database a reference run had
    # leased. Deleted at the end only if the database did not hold it when leased.
    UNPREFIXED = "_kombu.binding_deadlines"

    def _url():
        if _where["url"] is None:  # lease a database on first use
            lease = _lease(REFERENCE_URL)
            _where["lease"] = lease
            _where["had_unprefixed"] = bool(lease._owner.exists(UNPREFIXED))
            _where["url"] = with_database(REFERENCE_URL, lease.database)
        return str(_where["url"])

    def get_redis_connection():  # type: ignore[no-redef]
        return PrefixedRedis.from_url(_url(), socket_timeout=None)

    _tasks.get_redis_connection = get_redis_connection
    _upstream.get_redis_connection = get_redis_connection  # get_active_redis_channels() uses it

    def _reference_config():
        url = _url()
        return {
            "broker_url": url,
            "result_backend": url,
            "broker_transport_options": {"global_keyprefix": PREFIX},
            "result_backend_transport_options": {"global_keyprefix": PREFIX},
        }

    @pytest.fixture(scope="session")
    def celery_config(request):  # type: ignore[no-redef]
        config = _upstream.celery_config.__wrapped__(request)
        config.update(_reference_config())
        return config

    @pytest.fixture(scope="session")
    def celery_worker_parameters():
        """start_worker logs at ERROR unless told; the trace-log tests read the worker's INFO lines."""
        return {"loglevel": "INFO"}

    @pytest.fixture(scope="session", autouse=True)
    def _delete_this_runs_keys():
        """Keys under this process's prefix only, then the database's lease."""
        yield
        lease = _where["lease"]
        if not isinstance(lease, Lease):
            return
        try:
            for key in lease._owner.scan_iter(match=f"{PREFIX}*", count=1000):
                lease._owner.delete(key)
            if not _where["had_unprefixed"]:
                lease._owner.delete(UNPREFIXED)
        finally:
            if lease._owner.get(LEASE_KEY) == lease._token.encode():
                lease._owner.delete(LEASE_KEY)
            lease.connection.close()
            lease._owner.close()

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
    # what a blocking pop waits once everything is drained: fakeredis reads 0 as "forever"
    AT_ONCE = 0.001

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
            if str(args[0]).upper() in ("BLPOP", "BRPOP") and not _state["draining"] and _state["jobs"]:
                args = (*args[:-1], AT_ONCE)  # drained: nothing more can arrive while it would wait
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
