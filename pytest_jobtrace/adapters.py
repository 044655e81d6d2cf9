"""The adapter protocol: what a job system plugs into pytest-jobtrace.

An adapter does two things. It **recognises** the spans its job system produces (so that ``job()``
and ``job_spans.jobs()`` can fold a publish span and its attempts into one job), and it **runs jobs
in-process for a test**: ``activate`` for the test (from then on, the system's own enqueue call lands in
the adapter's queue), ``drain``, ``perform_one``, report failures (``drain`` raises the common
:class:`~pytest_jobtrace.JobFailedError`; ``failed`` lists them), and restore everything at teardown
(``close``). It declares its own options (marker keywords, ini keys, flags) and names its fixture, which
pytest-jobtrace creates: failure hints and teardown warnings then name that fixture.

Every adapter, the project's own included, registers through the ``pytest_jobtrace.adapters`` entry
point group, naming an object that satisfies :class:`JobAdapter`::

    [project.entry-points."pytest_jobtrace.adapters"]
    dramatiq = "pytest_jobtrace_dramatiq:ADAPTER"

or at runtime with :func:`register_adapter` (before pytest collects, e.g. from a ``-p`` plugin, for its
fixture to exist). See docs/adapters.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._core.clock import VirtualClock
from pytest_jobtrace._core.errors import FailedJob, JobChainError, JobFailedError, chain_message, failures_message
from pytest_jobtrace._core.options import JobtraceOptions, Option
from pytest_jobtrace._jobs.info import JobSpanInfo
from pytest_jobtrace._jobs.names import job_name_matches

if TYPE_CHECKING:
    import pytest
    from opentelemetry.trace import TracerProvider

ENTRY_POINT_GROUP = "pytest_jobtrace.adapters"

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXPECT_FAILURES",
    "ActiveAdapter",
    "AdapterContext",
    "AdapterOption",
    "AdapterUnavailable",
    "FailedJob",
    "JobAdapter",
    "JobChainError",
    "JobFailedError",
    "JobSpanInfo",
    "PendingItem",
    "VirtualClock",
    "adapters",
    "chain_message",
    "failures_message",
    "job_name_matches",
    "register_adapter",
]

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


_registry: dict[str, JobAdapter] = {}
_active: dict[str, ActiveAdapter] = {}


def active_adapter(name: str) -> ActiveAdapter | None:
    """The activation of adapter ``name`` for the running test (its fixture's value), or None."""
    return _active.get(name)


_entry_points_loaded = False


def register_adapter(adapter: JobAdapter) -> None:
    """Make an adapter known after the entry-point ones (replacing one of the same name)."""
    _load()
    _add(adapter)


def adapters() -> Mapping[str, JobAdapter]:
    """Every known adapter by name (read-only): those from entry points, then registered ones."""
    _load()
    return MappingProxyType(_registry)


def _add(adapter: JobAdapter) -> None:
    missing = [member for member in _MEMBERS if not hasattr(adapter, member)]
    if missing:
        raise TypeError(
            f"{adapter!r} is not a job adapter: it lacks {', '.join(missing)}"
            " (an adapter has name, fixture_name, extra, options, recognise() and activate())"
        )
    _registry[adapter.name] = adapter


_MEMBERS = ("name", "fixture_name", "extra", "options", "recognise", "activate")


def _load() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name != "builtin", e.name)):
        try:
            _add(entry.load())
        except Exception as error:  # a broken adapter must not pass for an absent one
            raise RuntimeError(
                f"pytest-jobtrace: the adapter entry point {entry.name!r} ({entry.value}) failed to load: {error}"
            ) from error


def recognise(span: ReadableSpan) -> tuple[JobAdapter, JobSpanInfo] | None:
    """The adapter that recognises ``span`` and its description; each system recognises only its own spans."""
    _load()
    for adapter in _registry.values():
        info = adapter.recognise(span)
        if info is not None:
            return adapter, info
    return None
