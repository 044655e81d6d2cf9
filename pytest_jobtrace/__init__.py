"""pytest-jobtrace: assert on the OpenTelemetry traces that background jobs produce.

Request the ``job_spans`` fixture and call :func:`assert_span_tree` with the tree you expect.

Names are imported on first use, so that production code importing only
``pytest_jobtrace.rq.instrumentation`` does not load the assertion machinery (nor pytest).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_jobtrace._core import extensions as _extensions

# The job layer's `job` lines, `{"job": ...}` dicts, render("jobs") and adapters' volatile keys, registered
# with the core on its first lookup, in any script: declaring imports nothing yet (see _core/extensions.py).
_extensions.declare("pytest_jobtrace._jobs.register")

if TYPE_CHECKING:
    from pytest_jobtrace._core.check import SpanTreeMismatch
    from pytest_jobtrace._core.clock import TimelineEvent, VirtualClock
    from pytest_jobtrace._core.errors import JobChainError, JobFailedError
    from pytest_jobtrace._core.forest import SpanForest, SpanNode
    from pytest_jobtrace._core.hygiene import JobtraceWarning
    from pytest_jobtrace._core.options import JobtraceOptions
    from pytest_jobtrace._core.parse import span
    from pytest_jobtrace._core.texttree import TextTreeError
    from pytest_jobtrace._jobs.api import assert_span_tree, render
    from pytest_jobtrace._jobs.jobspans import JobSpans
    from pytest_jobtrace._jobs.match import job
    from pytest_jobtrace._jobs.views import JobView
    from pytest_jobtrace._live.receiver import OTLPReceiver

_WHERE = {
    "JobChainError": "_core.errors",
    "JobFailedError": "_core.errors",
    "JobSpans": "_jobs.jobspans",
    "JobView": "_jobs.views",
    "JobtraceOptions": "_core.options",
    "JobtraceWarning": "_core.hygiene",
    "OTLPReceiver": "_live.receiver",
    "SpanForest": "_core.forest",
    "SpanNode": "_core.forest",
    "SpanTreeMismatch": "_core.check",
    "TextTreeError": "_core.texttree",
    "TimelineEvent": "_core.clock",
    "VirtualClock": "_core.clock",
    "assert_span_tree": "_jobs.api",
    "job": "_jobs.match",
    "render": "_jobs.api",
    "span": "_core.parse",
}

__all__ = [
    "JobChainError",
    "JobFailedError",
    "JobSpans",
    "JobView",
    "JobtraceOptions",
    "JobtraceWarning",
    "OTLPReceiver",
    "SpanForest",
    "SpanNode",
    "SpanTreeMismatch",
    "TextTreeError",
    "TimelineEvent",
    "VirtualClock",
    "assert_span_tree",
    "job",
    "render",
    "span",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_jobtrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pytest_jobtrace.{module}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
