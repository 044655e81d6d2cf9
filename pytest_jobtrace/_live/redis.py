"""A Redis database leased for a whole session, for the live workers' broker and results.

The database is one of those the URL names (``redis://127.0.0.1:6379/1-15``), taken with the same lease
key ``rq_jobs`` takes its databases with (``SET NX`` with an expiry), and only if it holds no key at all:
the workers' queues keep the application's own names (``orders``, ``default``) and cannot meet another
run's. At the end every key written since goes (the database was empty), then the lease.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

LEASE_KEY = "pytest-jobtrace:rq:lease"  # the key rq_jobs leases databases with: the two never share one
LEASE_SECONDS = 3600
WAIT_SECONDS = 60.0


class RedisLeaseError(RuntimeError):
    """No database of the Redis could be leased; the message says why and what to change."""


def databases_of(url: str, option: str) -> list[int]:
    """The databases ``url`` names: its path (``/7``, ``/1-15``, ``/1,3,5``) or ``db=`` for ``unix://``; 0 if none.

    ``option`` names where the URL came from, in the error for a spec that does not parse.
    """
    parts = urlsplit(url)
    spec = dict(parse_qsl(parts.query)).get("db", "") if parts.scheme == "unix" else parts.path.strip("/")
    if not spec:
        return [0]
    chosen: list[int] = []
    for item in spec.split(","):
        first, dash, last = item.strip().partition("-")
        if not (first.isdigit() and (last.isdigit() if dash else not last)) or int(last or first) < int(first):
            raise RedisLeaseError(
                f"{option} = {url!r} names database {spec!r}; write one number (/7), a range (/1-15) "
                "or a list (/1,3,5-9)"
            )
        chosen.extend(range(int(first), int(last or first) + 1))
    return list(dict.fromkeys(chosen))


def with_database(url: str, database: int) -> str:
    """``url`` naming ``database`` alone (in a URL, the path's database wins over a ``db=`` keyword)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"]
    if parts.scheme == "unix":
        # urlunsplit would drop the empty host of unix:///path
        return f"unix://{parts.netloc}{parts.path}?{urlencode([*query, ('db', str(database))])}"
    return urlunsplit(parts._replace(path=f"/{database}", query=urlencode(query)))


class SessionLease:
    """One empty database of the Redis at ``url``, held until :meth:`release`."""

    def __init__(self, url: str, option: str) -> None:
        import redis

        self.option = option
        self.token = f"{os.getpid()}:{uuid.uuid4().hex}"
        databases = databases_of(url, option)
        deadline = time.monotonic() + WAIT_SECONDS
        busy: list[str] = []
        while True:
            busy = []
            for database in databases:
                client = self._take(redis, with_database(url, database), busy, database)
                if client is not None:
                    self.client: Any = client
                    self.url = with_database(url, database)
                    self.database = database
                    return
            if time.monotonic() > deadline:
                raise RedisLeaseError(
                    f"{option} = {url!r}: no database could be leased for {WAIT_SECONDS:.0f}s ({'; '.join(busy)}); "
                    "name more databases (e.g. /1-15) or empty ones"
                )
            time.sleep(0.1)

    def _take(self, redis: Any, url: str, busy: list[str], database: int) -> Any:
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=2)
            taken = client.set(LEASE_KEY, self.token, nx=True, ex=LEASE_SECONDS)
        except redis.ResponseError as error:  # "DB index is out of range"
            raise RedisLeaseError(f"{self.option} = {url!r}: the Redis has no database {database} ({error})") from None
        except redis.RedisError as error:
            raise RedisLeaseError(f"{self.option}: no Redis answers at {url!r}: {error}") from None
        if not taken:
            busy.append(f"{database} is leased by another test")
            client.close()
            return None
        if client.dbsize() > 1:
            client.delete(LEASE_KEY)
            client.close()
            busy.append(f"{database} holds keys of its own")
            return None
        return client

    def renew(self) -> None:
        """Keep the lease (a session may outlast its expiry)."""
        if self.client.get(LEASE_KEY) == self.token.encode():
            self.client.expire(LEASE_KEY, LEASE_SECONDS)

    def release(self) -> None:
        """Delete what was written in the database since it was leased empty, then the lease."""
        try:
            if self.client.get(LEASE_KEY) == self.token.encode():
                keys = [key for key in self.client.scan_iter(count=500) if key != LEASE_KEY.encode()]
                for start in range(0, len(keys), 500):
                    self.client.delete(*keys[start : start + 500])
                self.client.delete(LEASE_KEY)
        finally:
            self.client.close()
