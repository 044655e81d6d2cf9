"""Options: command line, ini and the ``jobtrace`` marker, resolved for one test."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import pytest

UNFINISHED_CHOICES = ("warn", "error", "ignore")
MODE_CHOICES = ("queue", "inline")
PROPAGATION_CHOICES = ("child", "link", "none")
SPAN_NAMING_CHOICES = ("queue", "job_class")

MARKER_HELP = (
    "jobtrace(*, exact=False, ordered=False, unfinished='warn', mode='queue', propagation='child', "
    "span_naming='queue', expect_failures=False): capture this test's spans (the test gets the job_spans "
    "fixture without asking) and set pytest-jobtrace options for it."
)


@dataclass(frozen=True, kw_only=True)
class JobtraceOptions:
    """Keyword-only options for one test; the marker's keywords, over ini and command line."""

    exact: bool = False
    ordered: bool = False
    unfinished: Literal["warn", "error", "ignore"] = "warn"
    mode: Literal["queue", "inline"] = "queue"
    propagation: Literal["child", "link", "none"] = "child"
    span_naming: Literal["queue", "job_class"] = "queue"
    expect_failures: bool = False

    def __post_init__(self) -> None:
        for field, choices in (
            ("unfinished", UNFINISHED_CHOICES),
            ("mode", MODE_CHOICES),
            ("propagation", PROPAGATION_CHOICES),
            ("span_naming", SPAN_NAMING_CHOICES),
        ):
            if getattr(self, field) not in choices:
                raise ValueError(f"jobtrace option {field}={getattr(self, field)!r}: use one of {', '.join(choices)}")

    @classmethod
    def build(cls, **values: Any) -> JobtraceOptions:
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise TypeError(f"unknown jobtrace option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}")
        return cls(**values)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("jobtrace", "assertions on OpenTelemetry traces of background jobs")
    group.addoption(
        "--jobtrace-unfinished",
        choices=UNFINISHED_CHOICES,
        default=None,
        help="what to do about spans a test started and never ended: warn (default), error, ignore",
    )
    group.addoption(
        "--jobtrace-mode",
        choices=MODE_CHOICES,
        default=None,
        help="how built-in jobs run by default: queue (until drained, default) or inline (at once)",
    )
    parser.addini("jobtrace_unfinished", "default for --jobtrace-unfinished", default="warn")
    parser.addini("jobtrace_mode", "default for --jobtrace-mode", default="queue")
    parser.addini("jobtrace_propagation", "default job context propagation: child, link or none", default="child")
    parser.addini("jobtrace_exact", "assert_span_tree defaults to exact=True", type="bool", default=False)


_OPTIONS_KEY = pytest.StashKey[JobtraceOptions]()
_DEFAULTS_KEY = pytest.StashKey[JobtraceOptions]()


def options_for(item: pytest.Item) -> JobtraceOptions:
    """The session's options (ini, command line), overridden by the closest jobtrace marker's keywords.

    Tests without the marker share one options object, so the common case costs a lookup.
    """
    options = item.stash.get(_OPTIONS_KEY, None)
    if options is None:
        options = item.stash[_OPTIONS_KEY] = _resolve(item)
    return options


def _session_defaults(config: pytest.Config) -> JobtraceOptions:
    defaults = config.stash.get(_DEFAULTS_KEY, None)
    if defaults is None:
        defaults = config.stash[_DEFAULTS_KEY] = JobtraceOptions.build(
            unfinished=config.getoption("jobtrace_unfinished") or config.getini("jobtrace_unfinished"),
            mode=config.getoption("jobtrace_mode") or config.getini("jobtrace_mode"),
            propagation=config.getini("jobtrace_propagation"),
            exact=config.getini("jobtrace_exact"),
        )
    return defaults


def _resolve(item: pytest.Item) -> JobtraceOptions:
    defaults = _session_defaults(item.config)
    markers = list(item.iter_markers("jobtrace"))
    if not markers:
        return defaults
    values: dict[str, Any] = {}
    for marker in reversed(markers):
        if marker.args:
            raise TypeError(f"@pytest.mark.jobtrace takes keyword arguments only, got {marker.args!r}")
        values.update(marker.kwargs)
    return JobtraceOptions.build(**{**dataclasses.asdict(defaults), **values})
