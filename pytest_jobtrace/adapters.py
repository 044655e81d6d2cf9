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

This module is the adapter toolkit: an adapter imports from it (and from ``pytest_jobtrace``) only.
Names are imported on first use, so that the production RQ instrumentation, which recognises its
spans with :class:`MessagingJobSpans`, loads neither pytest nor the assertion core.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_jobtrace._core.clock import VirtualClock
    from pytest_jobtrace._core.errors import FailedJob, JobChainError, JobFailedError, chain_message, failures_message
    from pytest_jobtrace._core.exceptions import exception_text, qualified_type_name, record_exception
    from pytest_jobtrace._jobs.info import AttemptOutcome, JobSpanInfo, Role
    from pytest_jobtrace._jobs.instrumenting import instrument_for_test
    from pytest_jobtrace._jobs.lost import report_verdict
    from pytest_jobtrace._jobs.names import job_name_matches
    from pytest_jobtrace._jobs.protocol import (
        EXPECT_FAILURES,
        ActiveAdapter,
        AdapterContext,
        AdapterOption,
        AdapterUnavailable,
        JobAdapter,
        PendingItem,
    )
    from pytest_jobtrace._jobs.registry import ENTRY_POINT_GROUP, adapters, register_adapter
    from pytest_jobtrace._jobs.runner import JobRunner, Selected, StepInfo
    from pytest_jobtrace._jobs.semconv import MESSAGING_VOLATILE_ATTRIBUTES, MessagingJobSpans
    from pytest_jobtrace._live import tracing as live_tracing
    from pytest_jobtrace._live.options import LIVE_OPTIONS
    from pytest_jobtrace._live.redis import (
        LEASE_KEY,
        LEASE_SECONDS,
        RedisLeaseError,
        SessionLease,
        databases_of,
        with_database,
    )
    from pytest_jobtrace._live.workers import LiveHandle, LiveWorkers

_WHERE = {
    "ENTRY_POINT_GROUP": "_jobs.registry",
    "EXPECT_FAILURES": "_jobs.protocol",
    "MESSAGING_VOLATILE_ATTRIBUTES": "_jobs.semconv",
    "ActiveAdapter": "_jobs.protocol",
    "AdapterContext": "_jobs.protocol",
    "AdapterOption": "_jobs.protocol",
    "AdapterUnavailable": "_jobs.protocol",
    "AttemptOutcome": "_jobs.info",
    "FailedJob": "_core.errors",
    "JobAdapter": "_jobs.protocol",
    "JobChainError": "_core.errors",
    "JobFailedError": "_core.errors",
    "JobRunner": "_jobs.runner",
    "LIVE_OPTIONS": "_live.options",
    "LiveHandle": "_live.workers",
    "LiveWorkers": "_live.workers",
    "LEASE_KEY": "_live.redis",
    "LEASE_SECONDS": "_live.redis",
    "RedisLeaseError": "_live.redis",
    "databases_of": "_live.redis",
    "with_database": "_live.redis",
    "SessionLease": "_live.redis",
    "JobSpanInfo": "_jobs.info",
    "MessagingJobSpans": "_jobs.semconv",
    "PendingItem": "_jobs.protocol",
    "Role": "_jobs.info",
    "Selected": "_jobs.runner",
    "StepInfo": "_jobs.runner",
    "VirtualClock": "_core.clock",
    "adapters": "_jobs.registry",
    "chain_message": "_core.errors",
    "exception_text": "_core.exceptions",
    "failures_message": "_core.errors",
    "instrument_for_test": "_jobs.instrumenting",
    "job_name_matches": "_jobs.names",
    "qualified_type_name": "_core.exceptions",
    "record_exception": "_core.exceptions",
    "register_adapter": "_jobs.registry",
    "report_verdict": "_jobs.lost",
}

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXPECT_FAILURES",
    "LEASE_KEY",
    "LEASE_SECONDS",
    "LIVE_OPTIONS",
    "MESSAGING_VOLATILE_ATTRIBUTES",
    "ActiveAdapter",
    "AdapterContext",
    "AdapterOption",
    "AdapterUnavailable",
    "AttemptOutcome",
    "FailedJob",
    "JobAdapter",
    "JobChainError",
    "JobFailedError",
    "JobRunner",
    "JobSpanInfo",
    "LiveHandle",
    "LiveWorkers",
    "MessagingJobSpans",
    "PendingItem",
    "RedisLeaseError",
    "Role",
    "Selected",
    "SessionLease",
    "StepInfo",
    "VirtualClock",
    "adapters",
    "chain_message",
    "databases_of",
    "exception_text",
    "failures_message",
    "instrument_for_test",
    "job_name_matches",
    "live_tracing",
    "qualified_type_name",
    "record_exception",
    "register_adapter",
    "report_verdict",
    "with_database",
]


# Modules of the toolkit, by name: live_tracing runs inside live worker processes (no pytest there).
_MODULES = {"live_tracing": "_live.tracing"}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        globals()[name] = toolkit_module = importlib.import_module(f"pytest_jobtrace.{_MODULES[name]}")
        return toolkit_module
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_jobtrace.adapters' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pytest_jobtrace.{module}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE, *_MODULES])
