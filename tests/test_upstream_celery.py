"""upstream/celery/conftest.py, the layer that runs Celery's own integration tests under celery_jobs, on a small
suite shaped like Celery's (``t/integration`` with ``tasks.py``, whose ``get_redis_connection`` the tasks and the
tests share, and upstream's conftest kept as ``upstream_conftest.py``): where a test waits for the worker the
tasks have run, nothing leaves the process, and a list that names a passing test fails the run. The reference
mode runs the tests on Celery's ``start_worker`` on the Redis here, in a leased database under a prefix of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("celery")
pytest.importorskip("fakeredis")
pytest.importorskip("pytest_timeout")

from rq_fidelity import require_redis

ROOT = Path(__file__).resolve().parent.parent
CONFTEST = ROOT / "upstream" / "celery" / "conftest.py"

UPSTREAM_CONFTEST = """
import pytest

from celery.contrib.pytest import celery_app, celery_session_app, celery_session_worker
from celery.contrib.testing.manager import Manager
from t.integration.tasks import get_redis_connection


def get_active_redis_channels():
    return get_redis_connection().execute_command("PUBSUB CHANNELS")


@pytest.fixture(scope="session")
def celery_config(request):
    return {"broker_url": "pyamqp://", "result_backend": "redis://", "result_extended": True}


@pytest.fixture(scope="session")
def celery_includes():
    return {"t.integration.tasks"}


@pytest.fixture(scope="session")
def celery_class_tasks():
    from t.integration.tasks import ClassBasedAutoRetryTask
    return [ClassBasedAutoRetryTask]


@pytest.fixture
def app(celery_app):
    yield celery_app


@pytest.fixture
def manager(app, celery_session_worker):
    yield Manager(app)
"""

TASKS = """
from celery import Task, shared_task


def get_redis_connection():
    from redis import StrictRedis
    return StrictRedis(host="localhost", port=6379, socket_timeout=None)


@shared_task
def add(x, y):
    return x + y


@shared_task
def redis_echo(message, redis_key="redis-echo"):
    get_redis_connection().rpush(redis_key, message)


class ClassBasedAutoRetryTask(Task):
    name = "auto_retry_class_task"
    autoretry_for = (ValueError,)

    def run(self):
        return 1
"""

TESTS = """
import os
import socket

import pytest

from .tasks import add, get_redis_connection, redis_echo

UNDER_THE_FIXTURE = os.environ.get("JOBTRACE_UPSTREAM_MODE") == "fixture"


def test_get_waits_for_the_worker(manager):
    assert add.delay(2, 3).get(timeout=10) == 5


def test_what_a_task_wrote_is_there_when_the_test_reads_it(manager):
    redis_echo.delay("hello")
    connection = get_redis_connection()
    assert connection.blpop("redis-echo", 10) == (b"redis-echo", b"hello")
    assert connection.blpop("redis-echo", 1) is None  # nothing more arrives


def test_the_worker_answers_a_ping(manager):
    assert list(manager.inspect().ping().values()) == [{"ok": "pong"}]


@pytest.mark.skipif(not UNDER_THE_FIXTURE, reason="the reference mode talks to Redis")
def test_nothing_leaves_the_process():
    with pytest.raises(OSError, match="would leave the process"):
        socket.create_connection(("127.0.0.1", 6379), timeout=1)


def test_a_task_due_in_an_hour(manager):
    from celery.exceptions import TimeoutError

    result = add.apply_async((1, 1), countdown=3600)
    with pytest.raises(TimeoutError):  # a worker holds it for an hour
        result.get(timeout=0.5)
"""


def _suite(pytester: pytest.Pytester, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBTRACE_UPSTREAM_MODE", mode)
    monkeypatch.setenv("PYTHONPATH", f"{pytester.path}:{ROOT}")
    pytester.mkpydir("t")
    integration = pytester.mkpydir("t/integration")
    (integration / "upstream_conftest.py").write_text(UPSTREAM_CONFTEST)
    (integration / "tasks.py").write_text(TASKS)
    (integration / "test_suite.py").write_text(TESTS)
    (integration / "conftest.py").write_text(CONFTEST.read_text())
    (pytester.path / "_expect.py").write_text((ROOT / "upstream" / "_expect.py").read_text())
    pytester.makeini("[pytest]\n")


ARGS = (
    "-p",
    "celery.contrib.pytest",
    "-p",
    "no:randomly",
    "-p",
    "no:asyncio",
    "-p",
    "_expect",
    "--timeout-method=signal",
)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_fixture_mode_runs_the_tasks_where_the_tests_wait_for_the_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, xdist: list[str]
) -> None:
    _suite(pytester, "fixture", monkeypatch)
    result = pytester.runpytest_subprocess(*ARGS, *xdist, "t/integration", "-k", "not due_in_an_hour")
    result.assert_outcomes(passed=4, deselected=0 if xdist else 1)  # xdist's workers deselect, unreported


def test_where_a_test_waits_every_pending_task_runs_on_the_virtual_clock(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _suite(pytester, "fixture", monkeypatch)
    result = pytester.runpytest_subprocess(*ARGS, "t/integration", "-k", "due_in_an_hour")
    # get() drains every pending task, the one due in an hour too (docs/celery.md, the virtual clock)
    result.assert_outcomes(failed=1, deselected=4)
    result.stdout.fnmatch_lines(["*DID NOT RAISE*TimeoutError*"])


def test_a_list_naming_a_test_that_passes_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _suite(pytester, "fixture", monkeypatch)
    expected = pytester.path / "expected.toml"
    expected.write_text(
        '[[test]]\nid = "t/integration/test_suite.py::test_get_waits_for_the_worker"\noutcome = "fails"\n'
        'kind = "by design"\nreason = "it differs"\ndocs = "docs/celery.md#celerys-own-tests"\n'
    )
    result = pytester.runpytest_subprocess(
        *ARGS, "--upstream-expected", str(expected), "t/integration", "-k", "get_waits"
    )
    result.assert_outcomes(failed=1, deselected=4)
    result.stdout.fnmatch_lines(["*XPASS(strict)*expected to differ: by design: it differs*"])


def test_reference_mode_runs_a_real_worker_in_a_leased_database(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBTRACE_UPSTREAM_REDIS_URL", require_redis())
    _suite(pytester, "reference", monkeypatch)
    result = pytester.runpytest_subprocess(*ARGS, "--upstream-mode", "reference", "t/integration")
    result.assert_outcomes(passed=4, skipped=1)
