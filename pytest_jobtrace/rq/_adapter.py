"""RQ as a pytest-jobtrace adapter: recognition of the instrumentation's spans, and the ``rq_jobs`` fixture.

Nothing here imports RQ at module level: recognition works from span attributes alone.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._jobs.info import JobSpanInfo
from pytest_jobtrace.rq._names import recognise_span


class RQAdapter:
    name = "rq"
    fixture_name = "rq_jobs"
    extra = "rq"

    def recognise(self, span: ReadableSpan) -> JobSpanInfo | None:
        return recognise_span(span)

    def activate(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("rq_jobs arrives with the adapter protocol")


ADAPTER = RQAdapter()
