"""The built-in runtime as an adapter (the reference implementation of ``adapters.JobAdapter``)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._core.options import JobtraceOptions
from pytest_jobtrace._jobs.info import JobSpanInfo
from pytest_jobtrace.builtin._runtime import JobRuntime
from pytest_jobtrace.builtin._tracing import recognise_span


class BuiltinAdapter:
    name = "builtin"

    def recognise(self, span: ReadableSpan) -> JobSpanInfo | None:
        return recognise_span(span)

    def activate(self, options: JobtraceOptions, **kwargs: Any) -> JobRuntime:
        settings: dict[str, Any] = {
            "mode": options.mode,
            "propagation": options.propagation,
            "span_naming": options.span_naming,
            "expect_failures": options.expect_failures,
            **kwargs,
        }
        runtime = JobRuntime(**settings)
        runtime.__enter__()
        return runtime


ADAPTER = BuiltinAdapter()
