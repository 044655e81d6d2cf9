"""A small project whose tests trace jobs, retries, links, errors and hostile text, for the report tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_jobtrace._report.safe import neutral

SHOP = r"""
import pytest
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from pytest_jobtrace.builtin import Job

tracer = trace.get_tracer("shop")


class GatewayTimeout(Exception):
    pass


class ChargeJob(Job):
    queue = "payments"
    retry_on = (GatewayTimeout,)
    attempts = 3
    calls = 0

    def perform(self, order_id):
        ChargeJob.calls += 1
        with tracer.start_as_current_span("charge_card", attributes={"order.id": order_id}):
            if ChargeJob.calls < 3:
                raise GatewayTimeout("gateway timed out")


def checkout(builtin_jobs):
    ChargeJob.calls = 0
    with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("note", "<script>alert(1)</script>")
        root.add_event("cart.loaded", {"items": 2})
        ChargeJob.perform_later(7)
    builtin_jobs.drain()
    with tracer.start_as_current_span("audit", links=[Link(root.get_span_context())]):
        pass


def test_checkout_fails(job_spans, builtin_jobs):
    checkout(builtin_jobs)
    assert len(builtin_jobs.performed) == 2, "expected two jobs"


def test_checkout_passes(job_spans, builtin_jobs):
    checkout(builtin_jobs)


def test_hostile_names(job_spans):
    with tracer.start_as_current_span("evil \x1b[2J\x1b[31mname\nsecond line") as span:
        span.set_attribute("payload", "\x1b]0;pwned\x07<img src=x onerror=alert(2)>")


def test_without_capture():
    pass


@pytest.mark.skip(reason="not today")
def test_skipped(job_spans):
    pass


@pytest.mark.xfail(reason="known bug", strict=True)
def test_xfailed(job_spans):
    with tracer.start_as_current_span("known bug"):
        raise ValueError("still broken")


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")


def test_setup_error(job_spans, broken):
    pass
"""

OUTCOMES = {
    "test_checkout_fails": "failed",
    "test_checkout_passes": "passed",
    "test_hostile_names": "passed",
    "test_without_capture": "passed",
    "test_skipped": "skipped",
    "test_xfailed": "xfailed",
    "test_setup_error": "error",
}


def make_shop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_shop=SHOP)


def report_data(path: Path) -> dict[str, Any]:
    """The data a report page carries, read back from its JSON script element, spans read as the page does."""
    html = path.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="jobtrace-data">(.*?)</script>', html, re.S)
    assert found is not None, "no data element in the report"
    data: dict[str, Any] = json.loads(found.group(1))
    for test in data["tests"]:
        if test["trace"] is not None:
            test["trace"]["spans"] = read_spans(test["trace"])
    return data


def read_spans(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """A test's spans (columns in the page's data) as objects, as the page's ``read`` makes them; ``t`` is
    the span's own trace (an index into ``T``: the page numbers traces in its layout, test_report_browser.py)."""
    more = dict(trace.get("m", []))
    spans = []
    for i, name in enumerate(trace["n"]):
        read = {"n": neutral(name), "s": trace["s"][i], "e": trace["e"][i], "id": trace["i"][i], **more.get(i, {})}
        read["t"] = trace["t"][i] if "t" in trace else 0
        if trace["p"][i] >= 0:
            read["p"] = trace["p"][i]
        if trace["a"][i]:  # the page escapes control characters in attributes, as neutral() does
            read["a"] = [[neutral(key), _value_text(value)] for key, value in trace["a"][i].items()]
        spans.append(read)
    return spans


def _value_text(value: object) -> str:
    return neutral(value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def by_test_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {test["id"].split("::")[-1]: test for test in data["tests"]}


FAILURES = r"""
from opentelemetry import trace

from pytest_jobtrace import assert_span_tree, span

tracer = trace.get_tracer("shop")


def test_message(job_spans):
    with tracer.start_as_current_span("lookup"):
        pass
    assert 1 + 1 == 3, "</script><script>alert('x')</script> & \x1b[31mred"


def test_tree(job_spans):
    with tracer.start_as_current_span("checkout"):
        with tracer.start_as_current_span("charge", attributes={"amount": 5}):
            pass
        with tracer.start_as_current_span("email"):
            pass
    assert_span_tree(span("checkout", children=[span("charge", attributes={"amount": 6}), span("email")]))


def test_without_capture():
    raise RuntimeError("no spans & no <b>capture</b>")
"""


CELERY_APP = r"""
from celery import Celery
from opentelemetry import trace

tracer = trace.get_tracer("shop")
app = Celery("shop", broker="memory://", backend="cache+memory://", set_as_current=False)
WAITS = [10, 30, 60]  # seconds before each retry


@app.task(bind=True, shared=False, max_retries=3)
def charge(self, order_id):
    with tracer.start_as_current_span("call_gateway"):
        if self.request.retries < 3:
            raise self.retry(countdown=WAITS[self.request.retries], exc=ConnectionError("gateway timed out"))
"""

CELERY_TEST = r"""
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from pytest_jobtrace import assert_span_tree, job, span
from shop_app import charge

tracer = trace.get_tracer("shop")


def test_charge_is_retried(celery_jobs, job_spans):
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        charge.apply_async((7,), countdown=3600)  # charged in an hour
    celery_jobs.drain()
    assert_span_tree(span("POST /orders", children=[job("charge", attempts=2, outcome="succeeded")]))
"""

CELERY_INI = "[pytest]\njobtrace_celery_app = shop_app:app\n"
