"""RQ as a pytest-jobtrace adapter: recognition of the instrumentation's spans, and the ``rq_jobs`` fixture.

Nothing here imports RQ at module level: recognition works from span attributes alone, and ``activate``
imports RQ only when a test asks for ``rq_jobs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace.adapters import (
    EXPECT_FAILURES,
    LIVE_OPTIONS,
    AdapterContext,
    AdapterOption,
    AdapterUnavailable,
    JobSpanInfo,
    job_name_matches,
)
from pytest_jobtrace.rq._names import VOLATILE_ATTRIBUTES, recognise_span

if TYPE_CHECKING:
    import pytest

    from pytest_jobtrace.adapters import LiveWorkers
    from pytest_jobtrace.rq._drain import RQRuntime

REDIS_URL = AdapterOption(
    name="redis_url",
    help="the Redis rq_jobs runs on: the database it names (/7) or the first free of /1-15, leased per test; "
    "empty = an embedded fakeredis",
    default="",
    flag=True,
)
RQ_LIVE_REDIS_URL = AdapterOption(
    name="rq_live_redis_url",
    help="the Redis live_rq_worker leases an empty database of for the session",
    default="redis://127.0.0.1:6379/1-15",
    flag=True,
)
RQ_LIVE_QUEUES = AdapterOption(
    name="rq_live_queues",
    help="the queues live_rq_worker's worker listens on, comma-separated, in priority order",
    default="default",
)


class RQAdapter:
    name = "rq"
    fixture_name = "rq_jobs"
    extra: str | None = "rq"
    options: Sequence[AdapterOption] = (REDIS_URL, EXPECT_FAILURES, RQ_LIVE_REDIS_URL, RQ_LIVE_QUEUES, *LIVE_OPTIONS)
    live_fixture_name = "live_rq_worker"
    volatile_attributes: Sequence[str] = VOLATILE_ATTRIBUTES
    undrained_hint: str | None = None
    # RQ's worker: left out of a failed job's traceback and of the report's captured log (--jobtrace-tb=short).
    internal_packages: Sequence[str] = ("rq",)

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

    def live_workers(self, config: pytest.Config) -> LiveWorkers:
        """The session's live worker (``live_rq_worker``): an ``rq worker`` process (the forking Worker)."""
        try:
            import redis  # noqa: F401
            import rq  # noqa: F401
        except ImportError as error:
            raise AdapterUnavailable.missing(self, error) from error
        from pytest_jobtrace.rq._live import RQLiveWorkers

        return RQLiveWorkers(config)

    def not_a_job(self, active: Any, name: object, jobs: Sequence[Any]) -> str | None:
        """An ``on_success``/``on_failure``/``on_stopped`` callback runs inside the job's process span."""
        connection = getattr(active, "connection", None)
        ids = [job.id for job in jobs if job.id is not None]
        if connection is None or not ids:
            return None
        from rq.job import Job

        for view, stored in zip([j for j in jobs if j.id is not None], Job.fetch_many(ids, connection=connection)):
            for kind in ("success", "failure", "stopped"):
                callback = getattr(stored, f"_{kind}_callback_name", None) if stored is not None else None
                if isinstance(callback, str) and job_name_matches(name, callback):
                    where = repr(view.attempt_nodes[-1].name) if view.attempt_nodes else "its process span"
                    return (
                        f"{callback!r} is the on_{kind} callback of job {view.short_name!r}: RQ runs it inside the "
                        f"job's process span ({where}), so it is not a job"
                    )
        return None

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
