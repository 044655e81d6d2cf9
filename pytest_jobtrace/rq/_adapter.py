"""RQ as a pytest-jobtrace adapter: recognition of the instrumentation's spans, and the ``rq_jobs`` fixture.

Nothing here imports RQ at module level: recognition works from span attributes alone, and ``activate``
imports RQ only when a test asks for ``rq_jobs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._jobs.info import JobSpanInfo
from pytest_jobtrace.adapters import EXPECT_FAILURES, AdapterContext, AdapterOption, AdapterUnavailable
from pytest_jobtrace.rq._names import recognise_span

if TYPE_CHECKING:
    from pytest_jobtrace.rq._drain import RQRuntime

REDIS_URL = AdapterOption(
    name="redis_url",
    help="the Redis rq_jobs runs on (an empty database of its own per test); empty = an embedded fakeredis",
    default="",
    flag=True,
)


class RQAdapter:
    name = "rq"
    fixture_name = "rq_jobs"
    extra: str | None = "rq"
    options: Sequence[AdapterOption] = (REDIS_URL, EXPECT_FAILURES)

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
        runtime.open()
        return runtime

    def elsewhere(self, active: Any, job_id: str) -> str | None:
        """Why job ``job_id`` is not in rq_jobs' queues: it was enqueued on a Redis rq_jobs does not drain."""
        connection = getattr(active, "connection", None)
        if connection is None:
            return None
        from rq.job import Job

        if connection.exists(Job.key_for(job_id)):
            return None
        return (
            "it was enqueued on a Redis connection other than rq_jobs', so rq_jobs never saw it; enqueue on "
            "rq_jobs.queue() or a Queue built on rq_jobs.connection"
        )


ADAPTER = RQAdapter()
