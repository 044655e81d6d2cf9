"""Sampling: health checks are not worth a trace, and neither is anything they cause."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes


class SkipRoutes(Sampler):
    """Drops traces that start at a request to one of ``routes``; records every other trace."""

    def __init__(self, routes: Sequence[str]) -> None:
        self.routes = frozenset(routes)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        route = (attributes or {}).get("http.route")
        decision = Decision.DROP if route in self.routes else Decision.RECORD_AND_SAMPLE
        return SamplingResult(decision, attributes if decision is Decision.RECORD_AND_SAMPLE else None)

    def get_description(self) -> str:
        return f"SkipRoutes({sorted(self.routes)})"


def tracer_provider(skip_routes: Sequence[str] = ("/health",)) -> TracerProvider:
    """The provider the application configures: the decision at the root holds for every child span."""
    return TracerProvider(sampler=ParentBased(root=SkipRoutes(skip_routes)))
