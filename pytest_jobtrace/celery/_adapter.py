"""The Celery adapter: recognition (no Celery import) and the ``celery_jobs`` fixture's activation."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace.adapters import (
    EXPECT_FAILURES,
    LIVE_OPTIONS,
    MESSAGING_VOLATILE_ATTRIBUTES,
    AdapterContext,
    AdapterOption,
    AdapterUnavailable,
    JobSpanInfo,
    job_name_matches,
)
from pytest_jobtrace.celery._recognise import recognise

if TYPE_CHECKING:
    import pytest

    from pytest_jobtrace.adapters import LiveWorkers
    from pytest_jobtrace.celery._runtime import CeleryJobs

CELERY_APP = AdapterOption(
    name="celery_app",
    help="the Celery app celery_jobs runs, as 'package.module:app' (default: a celery_app fixture, else current_app)",
    default="",
)

CELERY_LIVE_APP = AdapterOption(
    name="celery_live_app",
    help="the app live_celery_worker's worker runs, as 'package.module:app' (default: celery_app, else the "
    "celery_app fixture's app found by name)",
    default="",
)
CELERY_LIVE_BROKER_URL = AdapterOption(
    name="celery_live_broker_url",
    help="live_celery_worker's broker: a Redis it leases an empty database of for the session (broker and "
    "results), or a RabbitMQ (amqp://...) where its queues get a name of this run's own",
    default="redis://127.0.0.1:6379/1-15",
    flag=True,
)
CELERY_LIVE_RESULT_BACKEND = AdapterOption(
    name="celery_live_result_backend",
    help="with a RabbitMQ broker: the Redis live_celery_worker leases an empty database of for results",
    default="redis://127.0.0.1:6379/1-15",
)
CELERY_LIVE_POOL = AdapterOption(
    name="celery_live_pool",
    help="live_celery_worker's pool: prefork (Celery's default, as in production) or solo",
    default="prefork",
    choices=("prefork", "solo"),
    flag=True,
)
CELERY_LIVE_CONCURRENCY = AdapterOption(
    name="celery_live_concurrency",
    help="live_celery_worker's pool processes (1: jobs run one at a time, in publish order)",
    default=1,
    kind="int",
    flag=True,
)
CELERY_LIVE_LOGLEVEL = AdapterOption(
    name="celery_live_loglevel",
    help="live_celery_worker's log level (WARNING: failures and connection trouble; INFO adds a line for each "
    "task received and done, at about 0.4 ms a task)",
    default="WARNING",
    choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    flag=True,
)
CELERY_LIVE_QUEUES = AdapterOption(
    name="celery_live_queues",
    help="the queues live_celery_worker consumes, comma-separated (default: every queue the app names)",
    default="",
)


# Values the instrumentation writes that change from run to run whatever the code does: generated ids,
# wall-clock times, the worker's host name (it holds the process id too). docs/snapshots.md lists them.
VOLATILE_ATTRIBUTES = (
    *MESSAGING_VOLATILE_ATTRIBUTES,
    "celery.reply_to",
    "celery.task_id",
    "celery.eta",
    "celery.expires",
    "celery.hostname",
)


class CeleryAdapter:
    name = "celery"
    fixture_name = "celery_jobs"
    extra: str | None = "celery"
    options: Sequence[AdapterOption] = (
        CELERY_APP,
        EXPECT_FAILURES,
        CELERY_LIVE_APP,
        CELERY_LIVE_BROKER_URL,
        CELERY_LIVE_RESULT_BACKEND,
        CELERY_LIVE_POOL,
        CELERY_LIVE_CONCURRENCY,
        CELERY_LIVE_LOGLEVEL,
        CELERY_LIVE_QUEUES,
        *LIVE_OPTIONS,
    )
    live_fixture_name = "live_celery_worker"
    volatile_attributes: Sequence[str] = VOLATILE_ATTRIBUTES
    undrained_hint: str | None = None
    # Celery's worker and the libraries under it: left out of a failed task's traceback and of the report's
    # captured log (--jobtrace-tb=short).
    internal_packages: Sequence[str] = ("celery", "kombu", "billiard", "vine", "opentelemetry.instrumentation")

    def recognise(self, span: ReadableSpan) -> JobSpanInfo | None:
        return recognise(span)

    def activate(self, context: AdapterContext) -> CeleryJobs:
        try:  # the packages the extra installs first, so that the message names the missing one
            import celery  # noqa: F401
            import opentelemetry.instrumentation.celery  # noqa: F401

            from pytest_jobtrace.celery._runtime import CeleryJobs
        except ImportError as error:
            raise AdapterUnavailable.missing(self, error) from error
        jobs = CeleryJobs(
            find_app(context),
            clock=context.clock,
            provider=context.tracer_provider,
            expect_failures=bool(context.options["expect_failures"]),
        )
        jobs.label = self.fixture_name
        jobs.open()
        return jobs

    def live_workers(self, config: pytest.Config) -> LiveWorkers:
        """The session's live worker (``live_celery_worker``): a ``celery worker`` process of the user's app."""
        try:
            import celery  # noqa: F401
            import opentelemetry.instrumentation.celery  # noqa: F401
        except ImportError as error:
            raise AdapterUnavailable.missing(self, error) from error
        from pytest_jobtrace.celery._live import CeleryLiveWorkers

        return CeleryLiveWorkers(config)

    def not_a_job(self, active: Any, name: object, jobs: Sequence[Any]) -> str | None:
        """An errback that takes ``(request, exc, traceback)`` is called inline by Celery, not published."""
        app = getattr(active, "app", None)
        failed = [job for job in jobs if job.outcome == "failed" and job.attempt_nodes]
        if app is None or not failed:
            return None
        task = next((t for n, t in app.tasks.items() if job_name_matches(name, n)), None)
        if task is None or not _takes_request_exc_traceback(task):
            return None
        where = ", ".join(repr(job.attempt_nodes[-1].name) for job in failed[:3])
        return (
            f"if {task.name!r} is a link_error errback: Celery calls an errback that takes (request, exc, "
            f"traceback) inline, inside the failed job's process span ({where}), so it is not a job"
        )


def _takes_request_exc_traceback(task: Any) -> bool:
    """Celery's own test (``_errback_arity_greater(errback, 1)``): more than one positional parameter."""
    try:
        parameters = inspect.signature(task.run).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) > 1 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def find_app(context: AdapterContext) -> Any:
    """The option ``celery_app``, else the test's ``celery_app`` fixture, else ``celery.current_app``."""
    spec = context.options["celery_app"]
    if spec:
        return _load_app(str(spec))
    request = context.request
    if request is not None and _has_fixture(request, "celery_app"):
        return request.getfixturevalue("celery_app")
    from celery import current_app

    return current_app._get_current_object()


def _has_fixture(request: Any, name: str) -> bool:
    """Whether a fixture ``name`` is visible to the test, requested by it or not (``fixturenames`` lists only
    the requested ones, and a conftest's ``celery_app`` must count when only ``celery_jobs`` is asked for)."""
    return bool(request._fixturemanager.getfixturedefs(name, request.node))


def _load_app(spec: str) -> Any:
    from celery import Celery
    from celery.utils.imports import symbol_by_name

    try:
        app = symbol_by_name(spec)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(
            f"jobtrace celery_app = {spec!r}: cannot import it ({type(error).__name__}: {error});"
            " give the app as 'package.module:app'"
        ) from error
    if not isinstance(app, Celery):
        raise TypeError(f"jobtrace celery_app = {spec!r} is {app!r}, not a Celery app")
    return app


ADAPTER = CeleryAdapter()
