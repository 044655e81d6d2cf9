"""rq_jobs on a real Redis: which database a test leases, what it deletes at the end, and the errors."""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

import pytest

pytest.importorskip("fakeredis")
pytest.importorskip("rq")

import redis
import rq_fidelity
import rq_tasks
from rq import Queue

from pytest_jobtrace.rq._connection import (
    LEASE_KEY,
    RedisUnavailable,
    databases_of,
    open_connection,
    with_database,
)


def _url(path: str) -> str:
    """The test Redis, naming the databases ``path`` gives."""
    return urlunsplit(urlsplit(rq_fidelity.require_redis())._replace(path=path))


@pytest.mark.parametrize(
    ("url", "databases"),
    [
        ("redis://h:6379", [0]),
        ("redis://h:6379/", [0]),
        ("redis://h:6379/7", [7]),
        ("redis://h:6379/1-3", [1, 2, 3]),
        ("redis://h:6379/5,1-2, 9", [5, 1, 2, 9]),
        ("redis://h:6379/2,2,1-2", [2, 1]),
        ("unix:///run/redis.sock?db=3-4", [3, 4]),
        ("unix:///run/redis.sock", [0]),
    ],
)
def test_the_url_names_the_databases(url: str, databases: list[int]) -> None:
    assert databases_of(url) == databases


@pytest.mark.parametrize("path", ["/seven", "/1-", "/3-1", "/5,3-1", "/1;2", "/-2", "/1,,2"])
def test_a_database_that_is_no_number_or_range_is_an_error(path: str) -> None:
    with pytest.raises(RedisUnavailable, match=r"names database '.*'; write one number \(/7\), a range \(/1-15\)"):
        databases_of(f"redis://h:6379{path}")


def test_with_database_names_one_database() -> None:
    assert with_database("redis://h:6379/1-15?socket_timeout=2", 4) == "redis://h:6379/4?socket_timeout=2"
    assert with_database("unix:///s.sock?db=1-15&a=b", 4) == "unix:///s.sock?a=b&db=4"


def test_the_database_in_the_url_is_the_one_used() -> None:
    lease = open_connection(_url("/15"))
    try:
        assert lease.database == 15
        assert lease.connection.connection_pool.connection_kwargs["db"] == 15
    finally:
        lease.close()


def test_a_database_the_server_does_not_have_is_an_error_at_once() -> None:
    # This Redis has 16 databases (0-15): 16 is one too many. No waiting for a lease that cannot come.
    started = time.monotonic()
    with pytest.raises(RedisUnavailable, match=r"has no database 16 \(.*\): its `databases` setting is lower"):
        open_connection(_url("/15-16"))
    assert time.monotonic() - started < 5


def test_a_database_holding_other_rq_keys_is_refused_at_once_and_the_next_one_used() -> None:
    outsider = redis.Redis.from_url(_url("/14"))
    if outsider.exists(LEASE_KEY):
        pytest.skip("database 14 is leased by another test run")
    Queue("leftover", connection=outsider).enqueue(rq_tasks.hello, 1)
    try:
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match=r"database 14 \(rq:.*\.\.\.\) already holds RQ keys") as error:
            open_connection(_url("/14"))
        assert "Delete them, or name other databases in jobtrace_redis_url" in str(error.value)
        assert time.monotonic() - started < 5
        lease = open_connection(_url("/14-15"))
        assert lease.database == 15
        lease.close()
        assert len(Queue("leftover", connection=outsider)) == 1  # the other RQ's job is still there
    finally:
        for key in outsider.scan_iter(match="rq:*"):
            outsider.delete(key)


def test_closing_deletes_only_the_keys_its_own_connection_wrote() -> None:
    lease = open_connection(_url("/15"))
    other = redis.Redis.from_url(_url("/15"))
    try:
        other.set("app:cache", "mine")  # written by another client during the test
        connection = lease.connection
        connection.get("app:cache")  # read by the test: still not its key
        queue = Queue(connection=connection)
        queue.enqueue(rq_tasks.hello, 1)
        with connection.pipeline() as pipe:
            pipe.hset("test:hash", "a", 1).rpush("test:list", 1).execute()
        connection.eval("redis.call('SET', KEYS[1], 1)", 1, "test:scripted")
        connection.execute_command("XGROUP CREATE", "test:stream", "group", "$", "MKSTREAM")
        assert any(key.startswith(b"rq:job:") for key in other.scan_iter())
    finally:
        lease.close()
    try:
        assert other.keys() == [b"app:cache"]
    finally:
        other.delete("app:cache")


def test_a_lease_is_waited_for_and_then_an_error_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_jobtrace.rq import _connection

    monkeypatch.setattr(_connection, "_WAIT_SECONDS", 0.2)
    first = open_connection(_url("/15"))
    try:
        with pytest.raises(RedisUnavailable, match=r"database 15 of the Redis .* stayed leased by other tests") as err:
            open_connection(_url("/15"))
        assert "name more databases in jobtrace_redis_url, e.g. redis://host:6379/1-15" in str(err.value)
    finally:
        first.close()
