"""render(details=True): the snapshot form. Attributes, events and exceptions in a fixed order, volatile
values as ``*``, and text that reads back as the expectation it shows (docs/snapshots.md)."""

from __future__ import annotations

import math
import re
from unittest import mock

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Tracer

from pytest_jobtrace import assert_span_tree, render, span
from pytest_jobtrace._core.texttree import parse_text_tree


def _checkout(tracer: Tracer, *, amount: float = 20.0, reason: str = "card declined") -> None:
    """A small trace with every detail the snapshot form writes."""
    attributes = {
        "order.id": 7,
        "amount": amount,
        "messaging.message.id": "9f1c0ffee",  # generated: volatile
        "thread.id": 140230,  # volatile
        "tags": ("new", "gift"),
        "express": False,
    }
    with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER, attributes=attributes) as root:
        root.add_event("cart loaded", {"items": 2, "code.lineno": 41})
        root.add_event("validated")
    try:
        with tracer.start_as_current_span("charge", links=[Link(root.get_span_context())]):
            raise ValueError(reason)
    except ValueError:
        pass


SNAPSHOT = (
    'POST /checkout [server, event "cart loaded" {code.lineno=*, items=2}, event "validated"] '
    '{amount=20.0, express=False, messaging.message.id=*, order.id=7, tags=("new", "gift"), thread.id=*}\n'
    "\n"
    'charge [ERROR "ValueError: card declined", link "POST /checkout", exception "ValueError" "card declined"]'
)


def test_the_snapshot_form_writes_every_detail_in_a_fixed_order(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    _checkout(tracer)
    assert render(exporter, details=True) == SNAPSHOT
    assert (
        render(exporter)
        == 'POST /checkout [server]\n\ncharge [ERROR "ValueError: card declined", link "POST /checkout"]'
    )


def test_the_snapshot_reads_back_as_the_same_expectation(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    _checkout(tracer)
    text = render(exporter, details=True)
    assert_span_tree(text, exporter, exact=True, ordered=True)
    # Line by line, the expectation writes itself as the snapshot wrote it: "expected:" blocks read the same.
    assert [node.render_line() for node in parse_text_tree(text)] == [line for line in text.split("\n") if line]


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        ({"amount": 21.5}, "at 'POST /checkout': attributes['amount']: expected 20.0, got 21.5"),
        (
            {"reason": "card expired"},
            "at 'charge': status description: expected 'ValueError: card declined', got 'ValueError: card expired'",
        ),
    ],
    ids=["attribute value", "exception message"],
)
def test_a_changed_detail_fails_the_snapshot_and_the_assertion(
    tracer: Tracer, exporter: InMemorySpanExporter, change: dict[str, object], difference: str
) -> None:
    _checkout(tracer, **change)  # type: ignore[arg-type]
    assert render(exporter, details=True) != SNAPSHOT
    with pytest.raises(AssertionError) as failure:
        assert_span_tree(SNAPSHOT, exporter, exact=True)
    assert difference in str(failure.value)


def test_a_volatile_key_that_disappears_fails(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with tracer.start_as_current_span("send", attributes={"messaging.message.id": "1"}):
        pass
    with tracer.start_as_current_span("receive"):
        pass
    assert render(exporter, details=True) == "send {messaging.message.id=*}\n\nreceive"
    with pytest.raises(AssertionError) as failure:
        assert_span_tree("receive {messaging.message.id=*}", exporter)
    assert (
        "attributes['messaging.message.id']: expected the attribute (any value, *), but the span has no such attribute"
        in str(failure.value)
    )


def test_keys_the_user_names_are_volatile_exactly_or_by_glob(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    attributes = {
        "order.ref": "A-93d1",
        "http.request.header.date": "Mon",
        "http.request.header.x_id": "7",
        "http.route": "/x",
    }
    with tracer.start_as_current_span("POST /x", attributes=attributes):
        pass
    assert render(exporter, details=True, volatile=["order.ref", "http.request.header.*"]) == (
        'POST /x {http.request.header.date=*, http.request.header.x_id=*, http.route="/x", order.ref=*}'
    )
    # Only the names given: a look-alike key keeps its value.
    assert render(exporter, details=True, volatile=["order.re", "http.request.*.date"]) == (
        'POST /x {http.request.header.date=*, http.request.header.x_id="7", http.route="/x", order.ref="A-93d1"}'
    )


def test_control_characters_stay_on_one_line_and_read_back(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with tracer.start_as_current_span("print", attributes={"out": "\x1b[31mred\x1b[0m\nnext", "\x1b]key": "x"}) as s:
        s.add_event("line\u2028break", {"text": "a\rb"})
    text = render(exporter, details=True)
    assert text == r'print [event "line\u2028break" {text="a\rb"}] {"\x1b]key"="x", out="\x1b[31mred\x1b[0m\nnext"}'
    assert "\x1b" not in text
    assert text.isprintable()
    assert_span_tree(text, exporter, exact=True)


def test_every_attribute_type_reads_back(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    values = {
        "s": "", "i": -3, "f": 0.1, "nan": math.nan, "inf": -math.inf, "t": True,
        "ss": ("a", "b"), "ii": (1, 2), "ff": (1.5,), "bb": (True, False), "empty": (),
    }  # fmt: skip
    with tracer.start_as_current_span("types", attributes=values):
        pass
    text = render(exporter, details=True)
    assert text == (
        'types {bb=(True, False), empty=(), f=0.1, ff=(1.5,), i=-3, ii=(1, 2), inf=-inf, nan=nan, s="", '
        'ss=("a", "b"), t=True}'
    )
    assert_span_tree(text, exporter, exact=True)
    with pytest.raises(AssertionError, match=r"attributes\['t'\]: expected 1, got True"):
        assert_span_tree("types {t=1}", exporter)  # a bool is not the number 1


def test_several_exceptions_and_an_escaped_one(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with tracer.start_as_current_span("retrying") as s:
        s.record_exception(KeyError("first"))
        s.record_exception(OSError("second"), escaped=True)
        s.record_exception(TimeoutError("third"))
    text = render(exporter, details=True)
    # The first exception in the shorthand; the others as events, the stack trace volatile.
    assert text == (
        'retrying [event "exception" {exception.escaped="True", exception.message="second", exception.stacktrace=*, '
        'exception.type="OSError"}, event "exception" {exception.escaped="False", exception.message="third", '
        'exception.stacktrace=*, exception.type="TimeoutError"}, exception "KeyError" "\'first\'"]'
    )
    assert_span_tree(text, exporter, exact=True)
    with pytest.raises(AssertionError, match=r"exception\.message"):
        assert_span_tree(text.replace('"third"', '"fourth"'), exporter)


def test_a_star_value_in_python_is_written_as_a_star(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with tracer.start_as_current_span("send"):
        pass
    with pytest.raises(AssertionError) as failure:
        assert_span_tree(span("send", attributes={"job.id": mock.ANY}), exporter)
    message = str(failure.value)
    assert "send {job.id=*}" in message  # the expected block, in the notation
    assert "attributes['job.id']: expected the attribute (any value, *)" in message


def test_the_jobs_form_takes_details(builtin_jobs: object, job_spans: object) -> None:
    from opentelemetry import trace

    from pytest_jobtrace.builtin import Job

    class Charge(Job):
        def perform(self, order: int) -> None:
            trace.get_current_span().set_attribute("order.id", order)
            with trace.get_tracer(__name__).start_as_current_span("gateway", attributes={"thread.name": "w-1"}):
                pass

    Charge.perform_later(7)
    builtin_jobs.drain()  # type: ignore[attr-defined]
    folded = job_spans.render("jobs", details=True)  # type: ignore[attr-defined]
    assert folded.splitlines()[-1] == "└── gateway {thread.name=*}"
    text = job_spans.render(details=True)  # type: ignore[attr-defined]
    assert_span_tree(text, exact=True)
    assert "order.id=7" in text
    assert "messaging.message.id=*" in text


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"details": "yes"}, TypeError, "render(details='yes'): details takes True or False"),
        ({"details": True, "volatile": "order.id"}, TypeError, "give a list of attribute keys, such as ['order.id']"),
        ({"details": True, "volatile": [3]}, TypeError, "3 is not an attribute key"),
        ({"volatile": ["order.id"]}, ValueError, "give details=True too"),
        ({"format": "mermaid", "details": True}, ValueError, "details= applies to the 'text' and 'jobs' forms"),
    ],
)
def test_wrong_arguments_are_named(
    exporter: InMemorySpanExporter, arguments: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        render(exporter, **arguments)  # type: ignore[arg-type]
    assert message in str(raised.value)


# --- the snapshot libraries, as users run them ----------------------------------------------------------

CHARGE = """
from opentelemetry import trace
from pytest_jobtrace.builtin import Job
{import_line}


class Charge(Job):
    def perform(self, order):
        with trace.get_tracer("shop").start_as_current_span("gateway", attributes={{"order.id": order}}):
            pass


def test_checkout(builtin_jobs, job_spans{fixture}):
    Charge.perform_later(7)
    builtin_jobs.drain()
    assert job_spans.render(details=True) == {snapshot}
"""

PINNED = [
    'send default [producer] {jobtrace.job.class="test_shop.Charge", messaging.destination.name="default", '
    'messaging.message.id=*, messaging.operation.name="send", messaging.operation.type="send", '
    'messaging.system="jobtrace"}',
    "    └── gateway {order.id=7}",
]


def _change_the_order(pytester: pytest.Pytester) -> None:
    path = pytester.path / "test_shop.py"
    path.write_text(path.read_text().replace("perform_later(7)", "perform_later(8)"))


def test_inline_snapshot_fills_the_snapshot_and_then_holds_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The inner runs are a developer's: inline-snapshot refuses to write inside an xdist worker or on CI.
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID", "CI"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(
        test_shop=CHARGE.format(import_line="from inline_snapshot import snapshot", fixture="", snapshot="snapshot()")
    )
    created = pytester.runpytest_subprocess("--inline-snapshot=create", "-p", "no:randomly")
    created.assert_outcomes(passed=1, errors=1)  # inline-snapshot's "the value is now created" teardown note
    source = (pytester.path / "test_shop.py").read_text()
    assert all(line in source for line in PINNED), source

    for args in ([], ["-n", "2"]):
        pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)

    _change_the_order(pytester)
    failed = pytester.runpytest_subprocess("-n", "2")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*- {order.id=7}", "*+ {order.id=8}"])


def test_syrupy_writes_the_snapshot_and_then_holds_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_shop=CHARGE.format(import_line="", fixture=", snapshot", snapshot="snapshot"))
    pytester.runpytest_subprocess("--snapshot-update").assert_outcomes(passed=1)
    (stored,) = (pytester.path / "__snapshots__").glob("*.ambr")
    assert all(f"  {line}" in stored.read_text(encoding="utf-8").splitlines() for line in PINNED)

    pytester.runpytest_subprocess("-n", "2").assert_outcomes(passed=1)

    _change_the_order(pytester)
    failed = pytester.runpytest_subprocess("-n", "2")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*-     └── gateway {order.id=7}", "*+     └── gateway {order.id=8}"])


def test_the_docs_list_exactly_the_volatile_keys() -> None:
    from pathlib import Path

    from pytest_jobtrace._core.render import VOLATILE_KEYS
    from pytest_jobtrace.adapters import adapters

    ours = [adapters()[name] for name in ("builtin", "celery", "rq")]  # the adapters pytest-jobtrace ships
    keys = {*VOLATILE_KEYS, *(key for adapter in ours for key in adapter.volatile_attributes)}
    page = (Path(__file__).parent.parent / "docs" / "snapshots.md").read_text(encoding="utf-8")
    after = page.split("treated as volatile are:", 1)[1].lstrip("\n").splitlines()
    rows = [line for line in after[: after.index("")] if line.startswith("|")][2:]  # less the header rows
    listed = [key for row in rows for key in re.findall(r"`([^`]+)`", row.split("|")[2])]
    assert sorted(listed) == sorted(keys)
    assert len(listed) == len(keys)  # each once


def test_a_star_and_a_value_are_two_expectations(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    # {k=*} must not stand in for {k=0} where the matcher reuses what it found for an equal expectation.
    with tracer.start_as_current_span("root"):
        for _ in range(2):
            with tracer.start_as_current_span("a", attributes={"k": 1}):
                pass
    assert_span_tree("root\n  a {k=*}\n  a {k=*}", exporter, exact=True)
    for other in ("0", "False", "1.5", '""'):
        with pytest.raises(AssertionError) as failure:
            assert_span_tree(f"root\n  a {{k=*}}\n  a {{k={other}}}", exporter)
        assert f"nothing under 'root' matches 'a' with {{k={other}}}" in str(failure.value)
    with pytest.raises(AssertionError, match=r"expected 0, got 1"):
        assert_span_tree(
            span("root", children=[span("a", attributes={"k": mock.ANY}), span("a", attributes={"k": 0})]), exporter
        )


def test_a_link_outside_the_capture_is_checked_too(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    from opentelemetry.trace import SpanContext, TraceFlags

    outside = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=TraceFlags(0))
    with tracer.start_as_current_span("process batches", links=[Link(outside)]):
        pass
    with tracer.start_as_current_span("process reports"):
        pass
    text = render(exporter, details=True)
    assert text == "process batches [link (not captured)]\n\nprocess reports"
    assert_span_tree(text, exporter, exact=True)
    with pytest.raises(AssertionError) as failure:
        assert_span_tree("process reports [link (not captured)]", exporter)
    message = str(failure.value)
    assert "at 'process reports': links: expected 1 link to a span outside the capture, found 0" in message
    assert "  process reports [link (not captured)]" in message  # the expected block writes it back
    with pytest.raises(AssertionError, match="expected 2 links to a span outside the capture, found 1"):
        assert_span_tree("process batches [link (not captured), link (not captured)]", exporter)
