"""The Celery scenarios' tasks on one module-level app, which a live worker process can import by name.

``celery_scenarios.make_app`` builds the same tasks on a fresh app per run; a worker in another process
needs an import path instead (``celery_live_app:app``). Spans of the tasks' own code go to the global
provider, as the live worker's and the test's capture are.
"""

from __future__ import annotations

from celery_scenarios import make_app
from opentelemetry import trace

app = make_app(trace.get_tracer("shop"))
