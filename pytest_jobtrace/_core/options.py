"""Options: command line, ini and the ``jobtrace`` marker, resolved for one test."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from pytest_jobtrace.builtin._model import MODES, PROPAGATIONS, SPAN_NAMINGS

# Errors raised here are about the caller's input: pytest shows the caller's line, not these frames.
__tracebackhide__ = True

UNFINISHED_CHOICES = ("warn", "error", "ignore")
# The built-in adapter's options (mode, propagation, span naming) keep their choices with it.
MODE_CHOICES, PROPAGATION_CHOICES, SPAN_NAMING_CHOICES = MODES, PROPAGATIONS, SPAN_NAMINGS


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
    def build(cls, source: str, **values: Any) -> JobtraceOptions:
        """Options from ``source`` (named in errors): an unknown key is a TypeError naming the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise TypeError(f"{source}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}")
        return cls(**values)


def marker_help() -> str:
    """The marker's line in ``pytest --markers``, its signature taken from JobtraceOptions."""
    signature = ", ".join(f"{field.name}={field.default!r}" for field in dataclasses.fields(JobtraceOptions))
    return (
        f"jobtrace(*, {signature}): capture this test's spans (the test gets the job_spans fixture without "
        "asking) and set pytest-jobtrace options for it."
    )


# Every option has an ini key jobtrace_<name>; these two are also worth a command-line flag per run.
_INI_HELP = {
    "exact": "assert_span_tree defaults to exact=True: every captured span must be expected",
    "ordered": "assert_span_tree defaults to ordered=True: children are matched in start order",
    "unfinished": "spans a test started and never ended: warn (default), error or ignore",
    "mode": "how built-in jobs run: queue (until drained, default) or inline (inside perform_later)",
    "propagation": "how a built-in job's process span relates to its send span: child, link or none",
    "span_naming": "destination in built-in span names: queue (default) or job_class",
    "expect_failures": "builtin_jobs.drain() does not raise for jobs that failed",
}
_FLAGS = {"unfinished": UNFINISHED_CHOICES, "mode": MODE_CHOICES}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("jobtrace", "assertions on OpenTelemetry traces of background jobs")
    for name, choices in _FLAGS.items():
        flag = f"--jobtrace-{name.replace('_', '-')}"
        group.addoption(flag, choices=choices, default=None, help=f"{_INI_HELP[name]} (ini: jobtrace_{name})")
    for field in dataclasses.fields(JobtraceOptions):
        if isinstance(field.default, bool):
            parser.addini(f"jobtrace_{field.name}", _INI_HELP[field.name], type="bool", default=field.default)
        else:
            parser.addini(f"jobtrace_{field.name}", _INI_HELP[field.name], default=field.default)


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
        values = {f.name: config.getini(f"jobtrace_{f.name}") for f in dataclasses.fields(JobtraceOptions)}
        values.update({name: config.getoption(f"jobtrace_{name}") or values[name] for name in _FLAGS})
        defaults = config.stash[_DEFAULTS_KEY] = JobtraceOptions.build("ini file", **values)
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
    return JobtraceOptions.build("@pytest.mark.jobtrace", **{**dataclasses.asdict(defaults), **values})
