"""The job the RQ benchmark enqueues (RQ imports job functions by module name)."""

from opentelemetry import trace

tracer = trace.get_tracer("bench")


def charge(order_id: int) -> int:
    with tracer.start_as_current_span("charge.work"):
        return order_id
