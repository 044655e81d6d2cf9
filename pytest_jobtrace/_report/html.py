"""``--jobtrace-html``: one self-contained HTML file for the session (no network: data, CSS and script inline).

Span data reaches the page only as JSON inside a ``<script type="application/json">`` element, with
``<``, ``>`` and ``&`` escaped so no value can close that element, and the page's script writes it into the
document with ``textContent`` only: a value is always text, never markup.
"""

from __future__ import annotations

import datetime
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from pytest_jobtrace._report.safe import neutral

_DATA_MARK = "__JOBTRACE_DATA__"
# Made once (json.dumps with options makes an encoder a call); the page's data holds no cycle to check for.
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False, check_circular=False)


class SessionLog:
    """What the controller learns about each test from its reports: outcome, duration and spans.

    A test's spans are kept as their JSON text from the moment they arrive: a session of thousands of
    tests would otherwise keep millions of small objects for the garbage collector to walk, test after test.
    """

    def __init__(self) -> None:
        self.tests: dict[str, dict[str, Any]] = {}
        self.traces: dict[str, str] = {}

    def add(
        self,
        report: pytest.TestReport,
        trace: str | None,
        failure: dict[str, Any] | None = None,
        job_time: dict[str, Any] | None = None,
    ) -> None:
        """Note one of a test's reports; ``trace`` is its spans' data as :func:`script_json` text."""
        entry = self.tests.get(report.nodeid)
        if entry is None:
            entry = self.tests[report.nodeid] = {"id": neutral(report.nodeid), "o": "passed", "d": 0.0}
        entry["d"] += report.duration
        entry["o"] = outcome_after(entry["o"], report)
        if failure is not None:
            entry.setdefault("f", []).append(failure)
        if job_time is not None:
            entry["jt"] = job_time
        if trace is not None:
            self.traces[report.nodeid] = trace

    def write(self, path: Path, config: pytest.Config) -> None:
        head = {
            "title": neutral(f"{config.rootpath.name}: pytest-jobtrace report"),
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }
        tests = ",".join(
            f'{script_json(entry)[:-1]},"trace":{self.traces.get(nodeid, "null")}}}'
            for nodeid, entry in self.tests.items()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page(f'{script_json(head)[:-1]},"tests":[{tests}]}}'), encoding="utf-8")


def outcome_after(current: str, report: pytest.TestReport) -> str:
    """A test's outcome in pytest's words, from its reports so far (setup, call, teardown)."""
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            return "xfailed" if report.skipped else "xpassed"
        return report.outcome if current == "passed" else current
    if report.failed:
        return current if current == "failed" else "error"
    if report.skipped:
        return "xfailed" if hasattr(report, "wasxfail") else "skipped"
    return current


def page(data_json: str) -> str:
    """The page with ``data_json`` (made by :func:`script_json`) as its data."""
    template = resources.files("pytest_jobtrace._report").joinpath("page.html").read_text(encoding="utf-8")
    return template.replace(_DATA_MARK, data_json)


def script_json(data: object) -> str:
    """JSON that is safe inside a ``<script>`` element: ASCII only, and no ``<``, ``>`` or ``&``.

    A value JSON cannot hold (an attribute of NaN or infinity, which ``JSON.parse`` refuses) is written as
    its text, so one odd value cannot break the page.
    """
    try:
        text = _ENCODER.encode(data)
    except (ValueError, TypeError):
        text = _ENCODER.encode(_plain(data))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)
