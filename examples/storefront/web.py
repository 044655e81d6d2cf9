"""The store's HTTP front end: Flask views that enqueue the guide's jobs, instrumented by OpenTelemetry.

``create_app(enqueue)`` takes the job system's ``enqueue(name, *args)``, so one app serves all three
systems; ``tracer_provider`` goes to ``FlaskInstrumentor`` as in production, so a test can run the app
under its sampler.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.trace import TracerProvider

from storefront.logic import Enqueue

ACCEPTED = {"status": "accepted"}, 202


def create_app(enqueue: Enqueue, tracer_provider: TracerProvider | None = None) -> Flask:
    app = Flask("storefront")
    _routes(app, enqueue)
    FlaskInstrumentor().instrument_app(app, tracer_provider=tracer_provider)
    return app


def _routes(app: Flask, enqueue: Enqueue) -> None:
    @app.post("/orders")
    def create_order() -> Any:
        order = request.get_json()
        enqueue("process_order", order["id"], order["total"], order["card"])
        return ACCEPTED

    @app.post("/signup")
    def signup() -> Any:
        enqueue("user_onboarding", request.get_json()["user_id"])
        return ACCEPTED

    @app.post("/imports")
    def create_import() -> Any:
        enqueue("data_import", request.get_json()["rows"])
        return ACCEPTED

    @app.post("/batches")
    def create_batch() -> Any:
        enqueue("batch_process", request.get_json()["item_ids"])
        return ACCEPTED

    @app.post("/partners/<name>/sync")
    def sync_partner(name: str) -> Any:
        enqueue("retry_aware", name)
        return ACCEPTED
