"""The built-in runtime as an adapter (the reference implementation of ``adapters.JobAdapter``)."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace.adapters import (
    EXPECT_FAILURES,
    MESSAGING_VOLATILE_ATTRIBUTES,
    AdapterContext,
    AdapterOption,
    JobSpanInfo,
)
from pytest_jobtrace.builtin._model import MODES, PROPAGATIONS, SPAN_NAMINGS
from pytest_jobtrace.builtin._runtime import JobRuntime
from pytest_jobtrace.builtin._tracing import recognise_span

OPTIONS = (
    AdapterOption(
        name="mode",
        help="how built-in jobs run: queue (until drained, default) or inline (inside perform_later)",
        default="queue",
        choices=MODES,
        flag=True,
    ),
    AdapterOption(
        name="propagation",
        help="how a built-in job's process span relates to its send span: child, link or none",
        default="child",
        choices=PROPAGATIONS,
    ),
    AdapterOption(
        name="span_naming",
        help="destination in built-in span names: queue (default) or job_class",
        default="queue",
        choices=SPAN_NAMINGS,
    ),
    EXPECT_FAILURES,
)


class BuiltinAdapter:
    name = "builtin"
    fixture_name = "builtin_jobs"
    extra = None
    options = OPTIONS
    volatile_attributes = MESSAGING_VOLATILE_ATTRIBUTES
    undrained_hint = "or use @pytest.mark.jobtrace(mode='inline')"

    def recognise(self, span: ReadableSpan) -> JobSpanInfo | None:
        return recognise_span(span)

    def activate(self, context: AdapterContext) -> JobRuntime:
        options = context.options
        runtime = JobRuntime(
            mode=options["mode"],
            propagation=options["propagation"],
            span_naming=options["span_naming"],
            expect_failures=options["expect_failures"],
            tracer_provider=context.tracer_provider,
            clock=context.clock,
        )
        runtime.label = self.fixture_name
        runtime.open()
        return runtime


ADAPTER = BuiltinAdapter()
