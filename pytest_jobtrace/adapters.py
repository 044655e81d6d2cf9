"""The adapter protocol: what a job system plugs into pytest-jobtrace.

An adapter does two things. It **recognises** the spans its job system produces (so that ``job()``
and ``job_spans.jobs()`` can fold a publish span and its attempts into one job), and it **runs jobs
in-process for a test**: activate for the test (``activate``), intercept enqueues (from then on, the
system's own enqueue call lands in the adapter's queue), ``drain``, ``perform_one``, report failures
(``drain`` raises; ``failed`` lists them), and restore everything at teardown (``close``).

Third-party adapters (Dramatiq, Huey, arq, taskiq...) register through the ``pytest_jobtrace.adapters``
entry point group, naming an object that satisfies :class:`JobAdapter`::

    [project.entry-points."pytest_jobtrace.adapters"]
    dramatiq = "pytest_jobtrace_dramatiq:adapter"

or at runtime with :func:`register_adapter`. See docs/adapters.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._jobs.info import JobSpanInfo

if TYPE_CHECKING:
    from pytest_jobtrace._core.options import JobtraceOptions

ENTRY_POINT_GROUP = "pytest_jobtrace.adapters"

__all__ = ["ENTRY_POINT_GROUP", "ActiveAdapter", "JobAdapter", "JobSpanInfo", "adapters", "register_adapter"]


@runtime_checkable
class ActiveAdapter(Protocol):
    """An adapter activated for one test (what its fixture yields)."""

    @property
    def pending(self) -> Sequence[Any]:
        """Jobs enqueued and not yet performed, in the order they would run."""

    def drain(self, max_jobs: int | None = None, *, expect_failures: bool | None = None) -> Sequence[Any]:
        """Perform every pending job, the jobs they enqueue and their retries; raise if any failed for good."""

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

    def recognise(self, span: ReadableSpan) -> JobSpanInfo | None:
        """Describe ``span`` as a send (enqueue) or process (attempt) span of a job, or None."""

    def activate(self, options: JobtraceOptions, **kwargs: Any) -> ActiveAdapter:
        """Start running this system's jobs in-process for one test."""


_registry: dict[str, JobAdapter] = {}
_entry_points_loaded = False


def register_adapter(adapter: JobAdapter) -> None:
    """Make an adapter known after the built-in and entry-point ones (replacing one of the same name)."""
    _load()
    _add(adapter)


def adapters() -> Mapping[str, JobAdapter]:
    """Every known adapter by name (read-only): the built-in one, those from entry points, then registered ones."""
    _load()
    return MappingProxyType(_registry)


def _add(adapter: JobAdapter) -> None:
    if not isinstance(adapter, JobAdapter):
        raise TypeError(f"{adapter!r} is not a job adapter: it needs a name, recognise() and activate()")
    _registry[adapter.name] = adapter


def _load() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _load_builtin()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            _add(entry.load())
        except Exception as error:  # a broken third-party adapter must not pass for an absent one
            raise RuntimeError(
                f"pytest-jobtrace: the adapter entry point {entry.name!r} ({entry.value}) failed to load: {error}"
            ) from error
    _entry_points_loaded = True


def _load_builtin() -> None:
    from pytest_jobtrace.builtin._adapter import ADAPTER

    _add(ADAPTER)


def recognise(span: ReadableSpan) -> JobSpanInfo | None:
    """The first adapter's description of ``span``; each system recognises only its own spans."""
    _load()
    for adapter in _registry.values():
        info = adapter.recognise(span)
        if info is not None:
            return info
    return None
