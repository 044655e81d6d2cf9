"""The Redis connection of one ``rq_jobs`` activation: an embedded fakeredis, or a database of a real Redis.

RQ's key names are fixed (``rq:queue:default``, ``rq:job:<id>``...), so two tests on one database would
see each other's jobs. Each activation therefore leases a database: the one the URL names
(``redis://host:6379/7``), or the first free one of a list or range in its place (``redis://host:6379/1-15``,
``/1,3,5``; ``?db=1-15`` for ``unix://``), with a key ``pytest-jobtrace:rq:lease`` (``SET NX`` with an
expiry) in that database, which must hold no RQ keys then. Other clients' keys in it are left alone: the
connection records the keys every write command it sends names, and closing deletes only those, and the
``rq:`` keys.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_jobtrace.adapters import LEASE_KEY, LEASE_SECONDS, RedisLeaseError, with_database
from pytest_jobtrace.adapters import databases_of as _databases_of

_WAIT_SECONDS = 60.0
_SCRIPTS = {"eval", "evalsha", "fcall"}  # their flags say nothing of writing; their keys are written
_WRITTEN = {b"RW", b"OW", b"RM"}


class RedisUnavailable(RuntimeError):
    """The Redis at ``redis_url`` did not answer, or cannot lend one of the databases it names."""


@dataclass
class Lease:
    """A connection and what to undo at the end."""

    connection: Any
    url: str | None = None
    database: int | None = None
    _owner: Any = None
    _token: str = ""
    _sent: list[tuple[Any, ...]] = field(default_factory=list)

    def close(self) -> None:
        if self.database is None:
            return  # fakeredis: the server goes away with the connection
        try:
            # RQ's Lua scripts also write keys they build themselves (rate limits push to rq:queue:<origin>),
            # which no command names: every rq: key goes too, as the database held none when leased.
            keys = written_keys(self._owner, self._sent) | set(self._owner.scan_iter(match="rq:*", count=500))
            keys.discard(LEASE_KEY.encode())
            ordered = sorted(keys)
            for start in range(0, len(ordered), 500):
                self._owner.delete(*ordered[start : start + 500])
        finally:
            if self._owner.get(LEASE_KEY) == self._token.encode():
                self._owner.delete(LEASE_KEY)
            self.connection.close()
            self._owner.close()


def open_connection(redis_url: str | None) -> Lease:
    """A fakeredis connection of its own for ``None``, else a leased database of the Redis at ``redis_url``."""
    if not redis_url:
        import fakeredis

        return Lease(fakeredis.FakeStrictRedis(server=fakeredis.FakeServer()))
    return _lease(redis_url)


def databases_of(url: str) -> list[int]:
    """The databases ``url`` names: its path (``/7``, ``/1-15``, ``/1,3,5``) or ``db=`` for ``unix://``; 0 if none."""
    try:
        return _databases_of(url, "rq_jobs: jobtrace_redis_url")
    except RedisLeaseError as error:
        raise RedisUnavailable(str(error)) from None


def _lease(url: str) -> Lease:
    databases = databases_of(url)
    _check_exists(url, max(databases))
    token = f"{os.getpid()}:{uuid.uuid4().hex}"
    deadline = time.monotonic() + _WAIT_SECONDS
    while True:
        held: list[int] = []
        foreign: list[str] = []
        for database in databases:
            outcome = _try(url, database, token)
            if isinstance(outcome, Lease):
                return outcome
            if outcome:
                foreign.append(f"{database} ({outcome})")
            else:
                held.append(database)
        if not held:
            raise RedisUnavailable(
                f"rq_jobs: no database of the Redis at {url!r} can be lent: database {'; '.join(map(str, foreign))} "
                "already holds RQ keys that no test of this run made (another RQ uses it, or a killed run left "
                "them). Delete them, or name other databases in jobtrace_redis_url"
            )
        if time.monotonic() > deadline:
            raise RedisUnavailable(
                f"rq_jobs: database {', '.join(map(str, held))} of the Redis at {url!r} stayed leased by other "
                f"tests for {_WAIT_SECONDS:.0f} s (key {LEASE_KEY!r}, which a killed run holds for up to "
                f"{LEASE_SECONDS // 60} minutes); name more databases in jobtrace_redis_url, "
                "e.g. redis://host:6379/1-15, so that parallel tests each get one"
            )
        time.sleep(0.05)


def _try(url: str, database: int, token: str) -> Lease | str:
    """The lease of ``database``; else "" while another test holds it, or the RQ keys already in it.

    A database the server does not have, or a server that does not answer, is an error at once.
    """
    import redis

    owner = redis.Redis.from_url(with_database(url, database))
    if not owner.set(LEASE_KEY, token, nx=True, ex=LEASE_SECONDS):
        owner.close()
        return ""
    leftovers = [k.decode(errors="replace") for k in _first(owner.scan_iter(match="rq:*", count=500), 3)]
    if leftovers:
        owner.delete(LEASE_KEY)
        owner.close()
        return ", ".join(leftovers) + "..."
    lease = Lease(None, url, database, owner, token)
    lease.connection = _recording_client(with_database(url, database), lease._sent)
    return lease


def _check_exists(url: str, database: int) -> None:
    """An error at once, instead of a wait, when the server does not answer or lacks ``database``."""
    import redis

    try:
        with redis.Redis.from_url(with_database(url, database)) as client:
            client.ping()
    except redis.ResponseError as error:  # "DB index is out of range"
        raise RedisUnavailable(
            f"rq_jobs: the Redis at {url!r} has no database {database} ({error}): its `databases` setting "
            "is lower. Name databases it has in jobtrace_redis_url"
        ) from error
    except redis.RedisError as error:
        raise RedisUnavailable(f"rq_jobs: no Redis answers at {url!r} (jobtrace_redis_url): {error}") from error


def _first(keys: Iterable[bytes], count: int) -> Iterable[bytes]:
    for n, key in enumerate(keys):
        if n == count:
            return
        yield key


def _recording_client(url: str, sent: list[tuple[Any, ...]]) -> Any:
    """A client whose connections append every command they send to ``sent`` (pipelines included)."""
    import redis

    client = redis.Redis.from_url(url)
    pool = client.connection_pool
    base = pool.connection_class

    class Recording(base):  # type: ignore[misc, valid-type]
        def send_command(self, *args: Any, **kwargs: Any) -> Any:
            sent.append(args)
            return super().send_command(*args, **kwargs)

        def pack_command(self, *args: Any) -> Any:
            sent.append(args)
            return super().pack_command(*args)

        def pack_commands(self, commands: Sequence[Sequence[Any]]) -> Any:
            sent.extend(tuple(c) for c in commands)
            return super().pack_commands(commands)

    pool.connection_class = Recording
    return client


def written_keys(client: Any, sent: Sequence[tuple[Any, ...]]) -> set[bytes]:
    """The keys the write commands in ``sent`` named, as the server itself finds them (COMMAND GETKEYS)."""
    commands = {_split(args) for args in sent if args}
    writes = _write_commands(client, {_command_name(c) for c in commands})
    chosen = [c for c in commands if _command_name(c) in writes]
    pipe = client.pipeline(transaction=False)
    for command in chosen:
        pipe.execute_command("COMMAND GETKEYSANDFLAGS", *command)
    keys: set[bytes] = set()
    for command, reply in zip(chosen, pipe.execute(raise_on_error=False)):
        if isinstance(reply, list):
            keys.update(_as_bytes(key) for key, flags in reply if _WRITTEN & {_as_bytes(f) for f in flags})
        elif "unknown subcommand" in str(reply).lower():  # Redis before 7: keys without their flags
            keys.update(_as_bytes(k) for k in client.execute_command("COMMAND GETKEYS", *command))
    return keys


def _split(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """As redis-py sends it: a first argument ``"XGROUP CREATE"`` is two words."""
    first = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    return (*first.split(), *args[1:])


def _command_name(command: tuple[Any, ...]) -> str:
    """``hset``, or ``xgroup|create`` for a subcommand (Redis 7 describes those apart)."""
    name = str(command[0]).lower()
    if len(command) > 1 and isinstance(command[1], str) and name in _CONTAINERS:
        return f"{name}|{command[1].lower()}"
    return name


_CONTAINERS = {"xgroup", "object", "script", "function", "client", "config", "memory", "xinfo", "cluster"}


def _write_commands(client: Any, names: set[str]) -> set[str]:
    """Of ``names``, the commands the server flags ``write``, and the script calls."""
    ordered = sorted(names)
    if not ordered:
        return set()
    infos = client.execute_command("COMMAND INFO", *ordered)
    writes = {name for name in ordered if name in _SCRIPTS}
    for name, info in zip(ordered, infos):
        if info and b"write" in {_as_bytes(f) for f in info[2]}:
            writes.add(name)
    return writes


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
