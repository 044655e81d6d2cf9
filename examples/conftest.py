"""The example project's fixtures: each scenario runs once per job system, through the Flask test client.

``system`` is parametrised over the built-in adapter, Celery and RQ: it activates that system's
pytest-jobtrace fixture (``builtin_jobs``, ``celery_jobs`` or ``rq_jobs``) and knows that system's jobs, so
a test names a job once (``system.job("process_order", ...)``) and the expectation holds on all three.

With ``JOBTRACE_EXAMPLES_LIVE=1`` (CI sets it) the same tests also run against live workers
(``celery-live``: a ``celery worker`` with the prefork pool; ``rq-live``: an ``rq worker``), on the Redis at
127.0.0.1:6379: ``system.drain()`` then waits for the workers' spans instead of running the jobs here. Tests
that read the test's virtual clock or sampler (``@pytest.mark.in_process_only``) run in-process only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from celery import Celery
from flask.testing import FlaskClient
from opentelemetry.sdk.trace import TracerProvider

from pytest_jobtrace import JobSpans, job
from storefront import builtin_jobs, celery_tasks, logic, rq_jobs, web
from storefront.logic import Enqueue

SYSTEMS = ("builtin", "celery", "rq")
LIVE = os.environ.get("JOBTRACE_EXAMPLES_LIVE") == "1"
LIVE_SYSTEMS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            not LIVE, reason="live workers run on the Redis at 127.0.0.1:6379 only with JOBTRACE_EXAMPLES_LIVE=1"
        ),
    )
    for name in ("celery-live", "rq-live")
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "in_process_only(reason): the test reads in-process state (the virtual clock, the sampler)"
    )


@dataclass
class System:
    """One job system, active for the test."""

    name: str
    jobs: Any  # builtin_jobs, celery_jobs or rq_jobs: each has drain(), pending, failed
    enqueue: Enqueue  # what the web app enqueues with
    registry: Mapping[str, object]  # the guide's job name -> this system's job class, task or function
    live: bool = False  # jobs runs on live workers (live_celery_worker, live_rq_worker)

    def job(self, name: str, **expected: Any) -> Any:
        """``job()`` for the guide's job ``name`` under this system's full name for it."""
        return job(self.full_name(name), **expected)

    def full_name(self, name: str) -> str:
        """``storefront.builtin_jobs.ProcessOrderJob``, ``storefront.celery_tasks.process_order``..."""
        definition = self.registry[name]
        task_name = getattr(definition, "name", None)  # a Celery task's registered name
        if isinstance(task_name, str) and not isinstance(definition, type):
            return task_name
        return f"{definition.__module__}.{definition.__qualname__}"  # type: ignore[attr-defined]

    def drain(self, **kwargs: Any) -> Any:
        """In-process: run the jobs here; live: wait for the workers (both raise JobFailedError alike)."""
        if self.live:
            return self.jobs.settle(**kwargs)
        return self.jobs.drain(**kwargs)


def activate(request: pytest.FixtureRequest, name: str) -> System:
    """Activate job system ``name`` for the test: its pytest-jobtrace fixture, and how to enqueue on it."""
    if name.endswith("-live"):
        only = request.node.get_closest_marker("in_process_only")
        if only is not None:
            pytest.skip(f"in-process only: {only.args[0]}")
        base = name.removesuffix("-live")
        worker = request.getfixturevalue(f"live_{base}_worker")
        if base == "celery":
            return System(base, worker, celery_tasks.enqueue, celery_tasks.JOBS, live=True)
        return System(base, worker, rq_jobs.enqueuer(worker.connection), rq_jobs.JOBS, live=True)
    jobs = request.getfixturevalue(f"{name}_jobs")
    if name == "builtin":
        return System(name, jobs, builtin_jobs.enqueue, builtin_jobs.JOBS)
    if name == "celery":
        return System(name, jobs, celery_tasks.enqueue, celery_tasks.JOBS)
    return System(name, jobs, rq_jobs.enqueuer(jobs.connection), rq_jobs.JOBS)


def make_client(system: System, tracer_provider: TracerProvider | None) -> FlaskClient:
    return web.create_app(system.enqueue, tracer_provider).test_client()


@pytest.fixture(name="celery_app")
def _celery_app() -> Celery:
    """celery_jobs runs the app of the test's ``celery_app`` fixture."""
    return celery_tasks.app


@pytest.fixture(name="rq_live_queues")
def _rq_live_queues() -> list[str]:
    """The queues live_rq_worker listens on: every queue the guide's jobs use."""
    return sorted(set(logic.QUEUES.values()))


@pytest.fixture(name="system", params=[*SYSTEMS, *LIVE_SYSTEMS])
def _system(request: pytest.FixtureRequest, celery_app: Celery, job_spans: JobSpans) -> System:
    # job_spans is asked for here, not only through the adapter fixture activate() looks up: --jobtrace-show
    # finds a test's capture among the fixtures it requests statically.
    return activate(request, request.param)


@pytest.fixture(name="client")
def _client(system: System, jobtrace_tracer_provider: TracerProvider | None) -> FlaskClient:
    """A Flask test client; the app's SERVER spans go to the same provider as the job adapters' spans."""
    return make_client(system, jobtrace_tracer_provider)


Post = Callable[..., Any]


@pytest.fixture(name="post")
def _post(client: FlaskClient) -> Post:
    """``post(path, json)``: a request the app must accept (202), as a user would send it."""

    def post(path: str, json: object = None) -> Any:
        response = client.post(path, json=json)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response

    return post
