"""The public API type-checks from a user's point of view (mypy --strict on a user's test module)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

USER_TEST = """
from __future__ import annotations

import re

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace import JobSpans, JobView, assert_span_tree, job, render, span
from pytest_jobtrace.builtin import Job, JobHandle, JobRun, JobRuntime


class PaymentError(Exception):
    pass


class ChargeJob(Job):
    queue = "payments"
    retry_on = (PaymentError,)
    attempts = 3
    wait = "exponential"

    def perform(self, order_id: int) -> None:
        assert self.executions >= 1


@pytest.mark.jobtrace(mode="inline")
def test_user(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    handle: JobHandle = ChargeJob.perform_later(1)
    runs: list[JobRun] = builtin_jobs.drain()
    spans: list[ReadableSpan] = job_spans.find(re.compile("process .*"), attributes={"a.b": None})
    views: list[JobView] = job_spans.jobs()
    one: JobView = job_spans.job("ChargeJob")
    outcome: str = one.outcome
    assert_span_tree(span("POST /x", kind="server", children=[job("ChargeJob", attempts=1)]), exact=True)
    assert_span_tree({"name": "x", "attributes": {"k": lambda v: v > 1}})
    assert_span_tree("x\\n  y")
    job_spans.assert_span_tree("x", ordered=True)
    text: str = job_spans.render("jobs") + render(spans, "mermaid")
    assert handle.job_id and runs is not None and views and outcome and text
"""


def test_public_api_type_checks_in_user_code(tmp_path: Path) -> None:
    module = tmp_path / "test_user.py"
    module.write_text(textwrap.dedent(USER_TEST))
    stdout, stderr, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy_cache"), str(module)]
    )
    assert status == 0, stdout + stderr


def test_a_wrong_call_is_a_type_error(tmp_path: Path) -> None:
    module = tmp_path / "test_wrong.py"
    module.write_text("from pytest_jobtrace import span\n\nspan('x', children=[], count='3')\n")
    stdout, _, status = api.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".c"), str(module)])
    assert status == 1
    assert 'Argument "count" to "span" has incompatible type "str"; expected "int | None"' in stdout
