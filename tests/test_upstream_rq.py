"""upstream/rq/conftest.py, the layer that runs RQ's own tests under rq_jobs, on a small RQTestCase suite shaped
like RQ's (``tests/__init__.py`` with ``RQTestCase`` flushing ``self.connection``): which tests it runs, that a
worker's ``work()`` runs the jobs through rq_jobs, and that a test which never gets there cannot pass."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("rq")
pytest.importorskip("fakeredis")

from rq_fidelity import require_redis

CONFTEST = Path(__file__).resolve().parent.parent / "upstream" / "rq" / "conftest.py"

RQ_TESTS_INIT = """
import unittest
from redis import Redis


def find_empty_redis_database(ssl=False):
    return Redis(db=4)


def min_redis_version(ver):
    with Redis() as conn:
        conn.info()
    return lambda f: f


class RQTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.connection = find_empty_redis_database()

    def setUp(self):
        self.connection.flushdb()

    def tearDown(self):
        self.connection.flushdb()
"""

JOBS = """
from rq import get_current_job


def say_hello(name="Stranger"):
    return f"Hi there, {name}!"


def where():
    connection = get_current_job().connection
    return type(connection).__module__.split(".")[0], connection.connection_pool.connection_kwargs.get("db")
"""

TESTS = """
import os

import pytest
from rq import Queue, SimpleWorker, Worker
from rq.job import JobStatus

from tests import RQTestCase, min_redis_version
from tests.jobs import say_hello, where


class TestWorkers(RQTestCase):
    def test_burst(self):
        q = Queue(connection=self.connection)
        job = q.enqueue(say_hello, "Ada")
        self.assertTrue(Worker([q], connection=self.connection).work(burst=True))
        self.assertEqual(job.get_status(), JobStatus.FINISHED)
        self.assertEqual(job.return_value(), "Hi there, Ada!")

    def test_max_jobs(self):
        q = Queue(connection=self.connection)
        first, second = q.enqueue(say_hello), q.enqueue(say_hello)
        SimpleWorker([q], connection=self.connection).work(burst=True, max_jobs=1)
        self.assertEqual([first.get_status(), second.get_status()], [JobStatus.FINISHED, JobStatus.QUEUED])

    def test_database(self):
        job = Queue(connection=self.connection).enqueue(where)
        SimpleWorker([job.origin], connection=self.connection).work(burst=True)
        system, database = job.return_value()
        if os.environ.get("JOBTRACE_UPSTREAM_MODE") == "reference":  # leased: never 0, nor 4 (left out of the range)
            self.assertEqual(system, "redis")
            self.assertNotIn(database, (0, 4))
        else:
            self.assertEqual(system, "fakeredis")

    @min_redis_version((5, 0, 0))
    def test_only_mentions_a_worker(self):
        # Says .work( here but runs no worker: it must not pass as if rq_jobs had run its jobs.
        self.assertTrue(True)

    @pytest.mark.slow
    def test_slow(self):
        SimpleWorker([], connection=self.connection).work(burst=True)

    def test_no_worker(self):
        Queue(connection=self.connection).enqueue(say_hello)
"""


def _suite(pytester: pytest.Pytester) -> None:
    package = pytester.mkpydir("tests")
    (package / "__init__.py").write_text(RQ_TESTS_INIT)
    (package / "jobs.py").write_text(JOBS)
    (package / "test_workers.py").write_text(TESTS)
    (package / "conftest.py").write_text(CONFTEST.read_text())
    pytester.makeini("[pytest]\n")


def test_fixture_mode_runs_the_worker_tests_through_rq_jobs(pytester: pytest.Pytester) -> None:
    _suite(pytester)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-v", "tests")

    # test_only_mentions_a_worker passes its call and fails at teardown: the run fails
    result.assert_outcomes(passed=4, errors=1, deselected=2)
    result.stdout.fnmatch_lines(
        [
            "*::test_burst PASSED*",  # unittest's order: by name
            "*::test_database PASSED*",
            "*::test_max_jobs PASSED*",
            "*::test_only_mentions_a_worker ERROR*",
            "*ERROR at teardown of TestWorkers.test_only_mentions_a_worker*",
            "E * Failed: upstream/rq: the test never ran a worker's work(), so rq_jobs ran none of its jobs",
        ]
    )
    assert result.ret == 1


def test_reference_mode_runs_rq_s_workers_in_a_leased_database(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # database 4 is left out of the range: the inner test checks its database is not 4 (nor 0), so a
    # connection of RQ's own making, not the leased one, would fail it
    url = urlsplit(require_redis())._replace(path="/1-3,5-15").geturl()
    monkeypatch.setenv("JOBTRACE_UPSTREAM_REDIS_URL", url)
    monkeypatch.setenv("JOBTRACE_UPSTREAM_MODE", "reference")
    _suite(pytester)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "tests", "-k", "not mentions")

    result.assert_outcomes(passed=3, deselected=3)
