"""The Redis connection of one ``rq_jobs`` activation: an embedded fakeredis, or a database of a real Redis.

RQ's key names are fixed (``rq:queue:default``, ``rq:job:<id>``...), so a real Redis is shared safely by
giving each activation a database of its own: it takes a lease (``SET NX`` with an expiry, in the URL's
database) on a database that is empty, and at the end deletes that database's keys, which are all its
own, then gives the lease back. Parallel tests, pytest-xdist workers and concurrent runs never meet.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

LEASE_PREFIX = "pytest-jobtrace:rq:lease:"
LEASE_SECONDS = 3600
_WAIT_SECONDS = 60.0
_DATABASES = range(1, 16)


class RedisUnavailable(RuntimeError):
    """The Redis at ``redis_url`` did not answer, or has no free database to lend."""


@dataclass
class Lease:
    """A connection and what to undo at the end."""

    connection: Any
    url: str | None = None
    database: int | None = None
    _owner: Any = None
    _token: str = ""

    def close(self) -> None:
        if self.database is None:
            return  # fakeredis: the server goes away with the connection
        try:
            _delete_all(self.connection)
        finally:
            if self._owner.get(_lease_key(self.database)) == self._token.encode():
                self._owner.delete(_lease_key(self.database))
            self.connection.close()
            self._owner.close()


def open_connection(redis_url: str | None) -> Lease:
    """A fakeredis connection of its own for ``None``, else a leased empty database of the Redis at ``redis_url``."""
    if not redis_url:
        import fakeredis

        return Lease(fakeredis.FakeStrictRedis(server=fakeredis.FakeServer()))
    return _lease(redis_url)


def _lease(url: str) -> Lease:
    import redis

    owner = redis.Redis.from_url(url)
    try:
        owner.ping()
    except redis.RedisError as error:
        raise RedisUnavailable(f"rq_jobs: no Redis answers at {url!r} (jobtrace_redis_url): {error}") from error
    token = f"{os.getpid()}:{uuid.uuid4().hex}"
    deadline = time.monotonic() + _WAIT_SECONDS
    while True:
        own = owner.connection_pool.connection_kwargs.get("db", 0)
        for database in (d for d in _DATABASES if d != own):
            lease = _try(owner, url, database, token)
            if lease is not None:
                return lease
        if time.monotonic() > deadline:
            owner.close()
            raise RedisUnavailable(
                f"rq_jobs: every database 1-15 of the Redis at {url!r} is in use or holds other keys; "
                "each test needs an empty one of its own"
            )
        time.sleep(0.05)


def _try(owner: Any, url: str, database: int, token: str) -> Lease | None:
    import redis

    if not owner.set(_lease_key(database), token, nx=True, ex=LEASE_SECONDS):
        return None
    try:
        connection = redis.Redis.from_url(_with_database(url, database))
        if connection.dbsize() == 0:
            return Lease(connection, url, database, owner, token)
        connection.close()
    except redis.ResponseError:  # fewer databases configured
        pass
    owner.delete(_lease_key(database))
    return None


def _with_database(url: str, database: int) -> str:
    """``url`` naming ``database`` (in a URL, the path's database wins over a ``db=`` keyword)."""
    parts = urlsplit(url)
    query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("db="))
    path = parts.path if parts.scheme == "unix" else f"/{database}"
    if parts.scheme == "unix":
        query = "&".join(filter(None, [query, f"db={database}"]))
    return urlunsplit(parts._replace(path=path, query=query))


def _lease_key(database: int) -> str:
    return f"{LEASE_PREFIX}{database}"


def _delete_all(connection: Any) -> None:
    batch = []
    for key in connection.scan_iter(count=500):
        batch.append(key)
        if len(batch) >= 500:
            connection.delete(*batch)
            batch = []
    if batch:
        connection.delete(*batch)
