"""The adapter protocol, as the job layer reads it; published by ``pytest_jobtrace.adapters``.

It lives in the job layer because the job layer reads it (``recognise``, ``volatile_attributes``, the
fixture and hint names); adapters import it from the toolkit, ``pytest_jobtrace.adapters``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._core.clock import VirtualClock
from pytest_jobtrace._core.errors import JobChainError
from pytest_jobtrace._core.options import JobtraceOptions, Option
from pytest_jobtrace._jobs.info import JobSpanInfo

if TYPE_CHECKING:
    import pytest
    from opentelemetry.trace import TracerProvider

_PUBLIC = "pytest_jobtrace.adapters"

AdapterOption = Option
"""An option an adapter declares (see :class:`pytest_jobtrace._core.options.Option`)."""

EXPECT_FAILURES = AdapterOption(
    name="expect_failures",
    help="drain() does not raise JobFailedError for jobs that failed for good",
    default=False,
    kind="bool",
)


@dataclass(frozen=True)
class AdapterContext:
    """What an adapter's ``activate`` receives for one test."""

    options: JobtraceOptions
    """The options in force for the test; adapter options by name: ``options["celery_app"]``."""
    clock: VirtualClock
    """The test's virtual clock, shared by every adapter active in it: order due jobs on it."""
    request: pytest.FixtureRequest | None = None
    """The fixture request (None outside pytest), to look up fixtures such as ``celery_app``."""
    tracer_provider: TracerProvider | None = None
    """The provider the adapter's own spans go to; None means the global one."""


@runtime_checkable
class PendingItem(Protocol):
    """A job enqueued and not yet performed, as any adapter lists it."""

    @property
    def name(self) -> str:
        """The job's full name, as ``job()`` and ``drain(only=...)`` match it."""

    def describe(self) -> str:
        """One line for messages, e.g. ``process_order(42)``."""


@runtime_checkable
class ActiveAdapter(Protocol):
    """An adapter activated for one test (what its fixture yields)."""

    @property
    def pending(self) -> Sequence[PendingItem]:
        """Jobs enqueued and not yet performed, in the order they would run."""

    def drain(
        self, max_jobs: int | None = None, *, only: object = None, expect_failures: bool | None = None
    ) -> Sequence[Any]:
        """Perform pending jobs (only those ``only`` names, if given), the jobs they enqueue and their
        retries; raise :class:`JobFailedError` if any failed for good, :class:`JobChainError` past ``max_jobs``."""

    def perform_one(self, *, expect_failures: bool | None = None) -> Any:
        """Perform the next due attempt only (to look at the state between attempts)."""

    @property
    def failed(self) -> Sequence[Any]:
        """The jobs that failed for good so far."""

    @property
    def chain_error(self) -> JobChainError | None:
        """The :class:`JobChainError` a drain raised, else None; its message listed what was pending, so
        the teardown warning does not list it again."""

    def close(self) -> None:
        """Restore everything the activation changed; called at the test's teardown."""


@runtime_checkable
class JobAdapter(Protocol):
    """A job system's adapter."""

    name: str
    """Short name, e.g. ``"builtin"``, ``"celery"``, ``"rq"``."""
    fixture_name: str
    """The fixture pytest-jobtrace creates for it, e.g. ``"celery_jobs"``; hints name it."""
    extra: str | None
    """The pytest-jobtrace extra that installs its job system (``"celery"``), or None."""
    options: Sequence[AdapterOption]
    """The options it reads from ``AdapterContext.options``."""

    @property
    def volatile_attributes(self) -> Sequence[str]:
        """Attribute keys (or globs such as ``"celery.*"``) of its spans whose values change from run to run
        (generated ids, wall-clock times, host names): ``render(details=True)`` writes them as ``*``."""

    @property
    def undrained_hint(self) -> str | None:
        """Text the teardown warning about undrained jobs ends with, or None."""

    def recognise(self, span: ReadableSpan) -> JobSpanInfo | None:
        """Describe ``span`` as a send (enqueue) or process (attempt) span of a job, or None.

        Called for every captured span: it must not import the job system."""

    def activate(self, context: AdapterContext) -> ActiveAdapter:
        """Start running this system's jobs in-process for one test (import the job system here)."""


class AdapterUnavailable(ImportError):
    """An adapter's job system is not installed; the message names the extra that installs it."""

    @classmethod
    def missing(cls, adapter: JobAdapter, error: ImportError) -> AdapterUnavailable:
        install = f'pip install "pytest-jobtrace[{adapter.extra}]"' if adapter.extra else "install it"
        return cls(
            f"the {adapter.fixture_name} fixture needs {error.name or adapter.name}, which is not installed: {install}"
        )


for _public in (AdapterContext, PendingItem, ActiveAdapter, JobAdapter, AdapterUnavailable):
    _public.__module__ = _PUBLIC
