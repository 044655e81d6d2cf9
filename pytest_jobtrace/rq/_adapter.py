"""RQ as a pytest-jobtrace adapter: recognition of the instrumentation's spans, and the ``rq_jobs`` fixture.

Nothing here imports RQ at module level: recognition works from span attributes alone, and ``activate``
imports RQ only when a test asks for ``rq_jobs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace.adapters import EXPECT_FAILURES, AdapterContext, AdapterOption, AdapterUnavailable, JobSpanInfo
from pytest_jobtrace.rq._names import VOLATILE_ATTRIBUTES, recognise_span

if TYPE_CHECKING:
    from pytest_jobtrace.rq._drain import RQRuntime

REDIS_URL = AdapterOption(
    name="redis_url",
    help="the Redis rq_jobs runs on: the database it names (/7) or the first free of /1-15, leased per test; "
    "empty = an embedded fakeredis",
    default="",
    flag=True,
)


class RQAdapter:
    name = "rq"
    fixture_name = "rq_jobs"
    extra: str | None = "rq"
    options: Sequence[AdapterOption] = (REDIS_URL, EXPECT_FAILURES)
    volatile_attributes: Sequence[str] = VOLATILE_ATTRIBUTES
    undrained_hint: str | None = None

    def recognise(self, span: ReadableSpan) -> JobSpanInfo | None:
        return recognise_span(span)

    def activate(self, context: AdapterContext) -> RQRuntime:
        try:
            import fakeredis  # noqa: F401
            import rq  # noqa: F401
        except ImportError as error:
            raise AdapterUnavailable.missing(self, error) from error
        from pytest_jobtrace.rq._drain import RQRuntime

        runtime = RQRuntime(
            redis_url=context.options["redis_url"] or None,
            clock=context.clock,
            expect_failures=context.options["expect_failures"],
            tracer_provider=context.tracer_provider,
        )
        runtime.label = self.fixture_name
        runtime.open()
        if context.request is not None:
            from pytest_jobtrace.rq import _importable

            context.request.addfinalizer(_importable.install())
        return runtime


ADAPTER = RQAdapter()
