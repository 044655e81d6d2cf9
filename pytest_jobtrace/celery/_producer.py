"""The in-memory end of Celery's publish path: a kombu producer whose broker is a list.

Celery's ``send_task`` builds the message, sends ``before_task_publish`` (where the instrumentation starts
the ``apply_async/<task>`` span and injects the trace context into the headers), asks the producer to
publish, then sends ``after_task_publish``. Only the producer is replaced here, so everything around it
stays Celery's own. The body is serialised by kombu exactly as for a broker, and the headers and
properties make the JSON round trip a broker makes them take (tuples arrive as lists).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from kombu.messaging import Producer
from kombu.utils.json import dumps, loads


@dataclass(frozen=True)
class Envelope:
    """One published task message, as a broker would deliver it."""

    body: bytes
    content_type: str
    content_encoding: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    delivery_info: dict[str, Any]

    @property
    def task_name(self) -> str:
        return str(self.headers["task"])

    @property
    def task_id(self) -> str:
        return str(self.headers["id"])


class _StandInConnection:
    """What Celery and kombu ask of a producer's connection on the publish path (no broker behind it)."""

    connection_errors: tuple[type[BaseException], ...] = ()
    channel_errors: tuple[type[BaseException], ...] = ()
    recoverable_connection_errors: tuple[type[BaseException], ...] = ()
    recoverable_channel_errors: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self.transport_options: dict[str, Any] = {}

    def _reraise_as_library_errors(self) -> AbstractContextManager[None]:
        return nullcontext()

    def ensure(self, obj: object, fun: Callable[..., Any], **policy: Any) -> Callable[..., Any]:
        return fun  # nothing to reconnect to: publishing to a list cannot fail


class InMemoryProducer(Producer):
    """A kombu producer that hands each serialised task message to ``deliver`` instead of a broker."""

    def __init__(self, deliver: Callable[[Envelope], None]) -> None:
        super().__init__(None, auto_declare=False)
        self._deliver = deliver
        self._stand_in = _StandInConnection()
        self.received: set[str] = set()
        """The ids of the tasks published through it: one published elsewhere never reaches ``celery_jobs``."""

    @property
    def connection(self) -> _StandInConnection:
        return self._stand_in

    def revive(self, channel: object) -> None:
        pass  # kombu calls this before retrying a refused publish; there is no channel to renew

    def publish(self, body: Any, routing_key: str | None = None, **options: Any) -> None:  # type: ignore[override]
        headers = options.get("headers") or {}
        if "task" not in headers:
            return  # an event ("task-sent" with task_send_sent_event): no worker consumes it
        payload, content_type, content_encoding = self._prepare(
            body,
            options.get("serializer"),
            options.get("content_type"),
            options.get("content_encoding"),
            options.get("compression"),
            headers,
        )
        self.received.add(str(headers.get("id")))
        self._deliver(_envelope(payload, content_type, content_encoding, routing_key, options))


_PUBLISH_ARGUMENTS = frozenset(
    {
        "serializer",
        "content_type",
        "content_encoding",
        "compression",
        "headers",
        "exchange",
        "retry",
        "retry_policy",
        "declare",
        "timeout",
        "confirm_timeout",
        "mandatory",
        "immediate",
    }
)


def _envelope(
    payload: bytes | str, content_type: str, content_encoding: str, routing_key: str | None, options: dict[str, Any]
) -> Envelope:
    exchange = options.get("exchange") or ""
    exchange_name = exchange if isinstance(exchange, str) else exchange.name
    properties = {key: value for key, value in options.items() if key not in _PUBLISH_ARGUMENTS}
    if isinstance(payload, str):
        payload = payload.encode(content_encoding or "utf-8")
    properties["priority"] = properties.get("priority") or 0  # as a broker sets it: 0 unless given
    delivery_info = {"exchange": exchange_name, "routing_key": routing_key, "priority": properties["priority"]}
    return Envelope(
        payload, content_type, content_encoding, wire(options.get("headers") or {}), wire(properties), delivery_info
    )


_PLAIN = (str, int, float, bool, type(None))


def wire(value: Any) -> Any:
    """``value`` as it comes back from a broker's JSON: tuples become lists, mappings are copied.

    Plain values are converted directly (a JSON round trip of every message costs more than the rest of
    the publish); anything else takes the JSON round trip, exactly as on a broker.
    """
    if isinstance(value, _PLAIN):
        return value
    if type(value) is dict and all(type(key) is str for key in value):
        return {key: wire(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return [wire(item) for item in value]
    return _json(value)  # other key types, other classes: whatever JSON makes of them


def _json(value: Any) -> Any:
    return loads(dumps(value))
