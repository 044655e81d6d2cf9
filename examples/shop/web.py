"""An HTTP-ish front end: one SERVER span per request, handlers that enqueue jobs.

``Server`` takes an optional ``tracer_provider``, as OpenTelemetry instrumentations do
(``FlaskInstrumentor().instrument_app(app, tracer_provider=...)``): tests can hand it a provider with
its own sampler without touching the global one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, TracerProvider

from shop.jobs import ImportProductsJob, ProcessOrderJob, RebuildSearchIndexJob, RecordHeartbeatJob

Handler = Callable[..., dict[str, Any]]


def checkout(order_id: int, amount_cents: int) -> dict[str, Any]:
    ProcessOrderJob.perform_later(order_id, amount_cents)
    return {"status": 202}


def import_products(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ImportProductsJob.perform_later(rows, chunk_size=2)
    return {"status": 202}


def publish_catalog() -> dict[str, Any]:
    RebuildSearchIndexJob.perform_later()
    return {"status": 202}


def health() -> dict[str, Any]:
    RecordHeartbeatJob.perform_later()
    return {"status": 200}


ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/checkout"): checkout,
    ("POST", "/products/import"): import_products,
    ("POST", "/catalog/publish"): publish_catalog,
    ("GET", "/health"): health,
}


class Server:
    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("shop.web", tracer_provider=tracer_provider)

    def handle(self, method: str, route: str, **body: Any) -> dict[str, Any]:
        attributes = {"http.request.method": method, "http.route": route}
        with self._tracer.start_as_current_span(
            f"{method} {route}", kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            response = ROUTES[(method, route)](**body)
            span.set_attribute("http.response.status_code", response["status"])
            return response


def handle(method: str, route: str, **body: Any) -> dict[str, Any]:
    """Serve one request with the global tracer provider, as the running application does."""
    return Server().handle(method, route, **body)
