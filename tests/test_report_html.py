"""--jobtrace-html: the session's data as the page gets it (the page itself: test_report_browser.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import SECOND, T0, MakeSpan
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from report_project import (
    CELERY_APP,
    CELERY_INI,
    CELERY_TEST,
    FAILURES,
    OUTCOMES,
    by_test_name,
    make_shop,
    read_spans,
    report_data,
)

from pytest_jobtrace import SpanTreeMismatch, assert_span_tree, span
from pytest_jobtrace._core.forest import SpanForest
from pytest_jobtrace._jobs.views import job_index
from pytest_jobtrace._report.data import plain_trace_data, trace_data, waterfall_rows
from pytest_jobtrace._report.failure import captured_marks, expected_lines
from pytest_jobtrace._report.html import script_json
from pytest_jobtrace._report.safe import neutral, neutral_span

XDIST = pytest.mark.parametrize("xdist", [[], ["-n", "2", "-p", "xdist"]], ids=["plain", "xdist"])


@XDIST
def test_every_test_is_in_the_file_with_its_outcome(pytester: pytest.Pytester, xdist: list[str]) -> None:
    make_shop(pytester)
    result = pytester.runpytest_subprocess("--jobtrace-html=out/report.html", *xdist)
    result.stdout.fnmatch_lines(["jobtrace: HTML report written to *out/report.html"])
    tests = by_test_name(report_data(pytester.path / "out" / "report.html"))
    assert {name: test["o"] for name, test in tests.items()} == OUTCOMES
    assert tests["test_without_capture"]["trace"] is None
    assert tests["test_skipped"]["trace"] is None  # skipped before job_spans was set up
    names = [span["n"] for span in tests["test_xfailed"]["trace"]["spans"]]
    assert names == ["known bug"]


def _checkout(pytester: pytest.Pytester) -> dict[str, Any]:
    make_shop(pytester)
    pytester.runpytest("--jobtrace-html=report.html", "-k", "checkout_passes").assert_outcomes(passed=1)
    trace: dict[str, Any] = by_test_name(report_data(pytester.path / "report.html"))["test_checkout_passes"]["trace"]
    return trace


def _row_text(trace: dict[str, Any], row: list[int]) -> str:
    ref, depth = row
    name = trace["spans"][ref]["n"] if ref >= 0 else f"job {trace['jobs'][-1 - ref]['n']}"
    return "  " * depth + name


def test_rows_group_a_jobs_attempts_under_it(pytester: pytest.Pytester) -> None:
    trace = _checkout(pytester)
    assert [_row_text(trace, row) for row in trace["rows"]] == [
        "POST /checkout",
        "  job test_shop.ChargeJob",
        "    send payments",
        "    process payments",
        "      charge_card",
        "    process payments",
        "      charge_card",
        "    process payments",
        "      charge_card",
        "audit",
    ]
    (job,) = trace["jobs"]
    assert [attempt[1] for attempt in job["a"]] == ["retried", "retried", "succeeded"]
    assert job["a"][0][2] == "test_shop.GatewayTimeout: gateway timed out"
    assert (job["o"], job["q"]) == ("succeeded", "payments")


def test_spans_carry_times_errors_links_attributes_and_events(pytester: pytest.Pytester) -> None:
    trace = _checkout(pytester)
    spans = {span["n"]: span for span in trace["spans"]}
    root, audit = spans["POST /checkout"], spans["audit"]
    assert root["s"] == 0
    assert root["k"] == "server"
    assert ["note", "<script>alert(1)</script>"] in root["a"]
    assert [event[0] for event in root["ev"]] == ["cart.loaded"]
    assert root["ev"][0][2] == [["items", "2"]]
    assert audit["l"] == [trace["spans"].index(root)]
    assert audit["t"] != root["t"]
    assert len(trace["T"]) == 2
    failed = [span for span in trace["spans"] if span["n"] == "charge_card" and span.get("st") == "ERROR"]
    assert [span["x"] for span in failed] == ["test_shop.GatewayTimeout: gateway timed out"] * 2
    assert all(0 <= span["s"] <= span["e"] <= trace["d"] for span in trace["spans"])


def test_every_span_has_exactly_one_row(make_span: MakeSpan) -> None:
    root = make_span("root", at=0)
    spans = [root, make_span("a", root, at=1), make_span("b", root, at=2), make_span("lone", at=3)]
    forest = SpanForest(spans)  # type: ignore[arg-type]
    rows = waterfall_rows(forest, job_index(forest))
    assert sorted(ref for ref, _ in rows) == [0, 1, 2, 3]
    assert [(forest.nodes[ref].name, depth) for ref, depth in rows] == [("root", 0), ("a", 1), ("b", 1), ("lone", 0)]


def test_no_spans(make_span: MakeSpan) -> None:
    empty = {"n": [], "s": [], "e": [], "i": [], "T": [], "p": [], "a": [], "d": 0}
    assert trace_data(SpanForest([])) == empty


def test_hostile_text_is_neutralised_and_cannot_close_the_script(make_span: MakeSpan) -> None:
    span = make_span("a\x1b[31m\u202eb", attributes={"x": "</script><script>alert(1)</script>\n"})
    data = trace_data(SpanForest([span]))  # type: ignore[list-item]
    (read,) = read_spans(data)
    assert read["n"] == "a\\x1b[31m\\u202eb"
    assert read["a"] == [["x", "</script><script>alert(1)</script>\\x0a"]]
    text = script_json(data)
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert text.isascii()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, ünïcode", "plain text, ünïcode"),
        ("\x1b[2J", "\\x1b[2J"),
        ("a\nb\tc\r", "a\\x0ab\\x09c\\x0d"),
        ("\x9b31m", "\\x9b31m"),  # the one-byte CSI
        ("\u202egnp.exe", "\\u202egnp.exe"),  # a right-to-left override
        ("\u2028", "\\u2028"),
    ],
)
def test_neutral(raw: str, shown: str) -> None:
    assert neutral(raw) == shown


def _shapes(make_span: MakeSpan) -> list[Any]:
    """Spans of no job in every shape the layout has to get right: ties, traces, links, errors, events."""
    root = make_span("root", at=5, kind=SpanKind.SERVER, attributes={"route": "/x", "n": 3, "ok": True})
    other = make_span("other trace", at=1, attributes={"tags": ("a", "b"), "ratio": 0.5})
    spans = [
        root,
        make_span("b", root, at=6, status=(StatusCode.ERROR, "boom"), exception=ValueError("bad")),
        make_span("a", root, at=6, events=["cache.miss", ("retry", {"n": 2})]),  # same start: by name
        make_span("a", root, at=6),
        other,
        make_span("linked", other, at=2, links=[root]),
        make_span("z root", at=1),  # another root of its own trace, same start as "other trace"
    ]
    return spans


def test_without_a_forest_the_data_is_the_forests(make_span: MakeSpan) -> None:
    spans = _shapes(make_span)
    for order in (spans, spans[::-1], spans[2:] + spans[:2]):
        plain = plain_trace_data(order)  # type: ignore[arg-type]
        assert plain is not None
        assert plain == trace_data(SpanForest(order))  # type: ignore[arg-type]
    spans_of_one = plain_trace_data(spans)  # type: ignore[arg-type]
    assert spans_of_one is not None
    assert [span["n"] for span in read_spans(spans_of_one)] == [span.name for span in spans]


def test_a_job_or_colliding_ids_take_the_forests_way(make_span: MakeSpan) -> None:
    job = make_span(
        "send jobs",
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "jobtrace", "messaging.operation.type": "send", "jobtrace.job.class": "J"},
    )
    assert plain_trace_data([job]) is None  # type: ignore[list-item]
    assert [j["n"] for j in trace_data(SpanForest([job]))["jobs"]] == ["J"]  # type: ignore[list-item]
    twice = make_span("twice")
    assert plain_trace_data([twice, twice]) is None  # type: ignore[list-item]
    assert plain_trace_data([]) == trace_data(SpanForest([]))


@pytest.mark.parametrize("run", ["inline", "subprocess", "xdist"])
def test_a_failed_tests_message_and_trees_are_in_the_file(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(test_failures=FAILURES)
    args = ["--jobtrace-html=report.html", "-p", "no:randomly"]
    if run == "inline":
        result = pytester.runpytest(*args)
    else:
        result = pytester.runpytest_subprocess(*args, *(["-n", "2", "-p", "xdist"] if run == "xdist" else []))
    result.assert_outcomes(failed=3)
    tests = by_test_name(report_data(pytester.path / "report.html"))
    (message,) = tests["test_message"]["f"]
    assert message["w"] == "call"
    hostile = "</script><script>alert('x')</script> & \\x1b[31mred"
    assert message["m"].startswith(f"AssertionError: {hostile}\nassert (1 + 1) == 3")
    assert "e" not in message  # no expected tree: not a span tree mismatch
    (tree,) = tests["test_tree"]["f"]
    difference = "attributes['amount']: expected 6, got 5"
    assert tree["m"].startswith(
        f"pytest_jobtrace.SpanTreeMismatch: span tree does not match: at 'checkout' > 'charge': {difference}\n"
    )
    assert tree["e"] == [["checkout", ""], ["├── charge {amount=6}", difference], ["└── email", ""]]
    charge = next(span for span in tests["test_tree"]["trace"]["spans"] if span["n"] == "charge")
    assert tree["a"] == [[charge["id"], difference]]
    (error,) = tests["test_without_capture"]["f"]
    assert error["m"] == "RuntimeError: no spans & no <b>capture</b>"
    assert tests["test_without_capture"]["trace"] is None
    html = (pytester.path / "report.html").read_text()
    assert "<b>" not in html
    assert "</script><script>" not in html.split('id="jobtrace-data">', 1)[1].split("</script>\n<script>", 1)[0]


def test_a_long_message_is_bounded_as_in_the_terminal(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_long="""
        def test_long():
            raise AssertionError("x" * 5000 + "\\n" + "line\\n" * 1000)
        """
    )
    pytester.runpytest("--jobtrace-html=report.html").assert_outcomes(failed=1)
    (failure,) = by_test_name(report_data(pytester.path / "report.html"))["test_long"]["f"]
    lines = failure["m"].split("\n")
    assert lines[0] == "AssertionError: " + "x" * (1000 - 16) + "... (4016 more characters)"
    assert len(lines) == 401
    assert lines[-1] == "... 601 more lines"


def test_a_passing_test_has_no_failure(pytester: pytest.Pytester) -> None:
    make_shop(pytester)
    pytester.runpytest("--jobtrace-html=report.html", "-k", "checkout_passes").assert_outcomes(passed=1)
    assert "f" not in by_test_name(report_data(pytester.path / "report.html"))["test_checkout_passes"]


@pytest.mark.parametrize("xdist", [[], ["-n", "2", "-p", "xdist"]], ids=["subprocess", "xdist"])
def test_a_celery_retry_with_a_countdown_shows_its_virtual_times(pytester: pytest.Pytester, xdist: list[str]) -> None:
    pytester.makepyfile(shop_app=CELERY_APP, test_shop=CELERY_TEST)
    pytester.makeini(CELERY_INI)
    result = pytester.runpytest_subprocess("--jobtrace-html=report.html", "-p", "no:randomly", *xdist)
    result.assert_outcomes(failed=1)
    test = by_test_name(report_data(pytester.path / "report.html"))["test_charge_is_retried"]
    (failure,) = test["f"]
    difference = (
        "job 'charge': expected 2 attempts, found 4 (attempt 1 retried, attempt 2 retried, attempt 3 retried, "
        "attempt 4 succeeded)"
    )
    assert failure["m"].split("\n")[0].endswith(f" > 'apply_async/shop_app.charge': {difference}")
    assert failure["e"] == [["POST /orders", ""], ['└── job charge [attempts 2, outcome "succeeded"]', difference]]
    send = next(span for span in test["trace"]["spans"] if span["n"] == "apply_async/shop_app.charge")
    assert failure["a"] == [[send["id"], difference]]
    time = test["jt"]
    assert time["end"] == "+1h1m40s"
    events = [(at, kind, attempt, due, wait, outcome) for at, kind, _, _, attempt, due, wait, outcome, *_ in time["ev"]]
    assert events == [
        ("+0s", "enqueued", 1, "+1h", "1h", ""),
        ("+1h", "attempt", 1, "", "", "retried"),
        ("+1h", "retry", 2, "+1h0m10s", "10s", ""),
        ("+1h0m10s", "attempt", 2, "", "", "retried"),
        ("+1h0m10s", "retry", 3, "+1h0m40s", "30s", ""),
        ("+1h0m40s", "attempt", 3, "", "", "retried"),
        ("+1h0m40s", "retry", 4, "+1h1m40s", "1m", ""),
        ("+1h1m40s", "attempt", 4, "", "", "succeeded"),
    ]
    assert {event[2] for event in time["ev"]} == {"charge"}
    details = [event[8] for event in time["ev"] if event[1] == "attempt"]
    assert details == ["ConnectionError: gateway timed out"] * 3 + [""]
    assert [event[10] for event in time["ev"]] == [0, 3600, 3600, 3610, 3610, 3640, 3640, 3700]
    assert time["pe"] == []
    assert "9.70989e+07" not in (pytester.path / "report.html").read_text()


def test_a_value_json_cannot_hold_is_written_as_text(make_span: MakeSpan) -> None:
    span = make_span("odd", attributes={"ratio": float("nan"), "big": float("inf"), "ok": 0.5})
    text = script_json(trace_data(SpanForest([span])))  # type: ignore[list-item]
    assert "NaN" not in text
    assert "Infinity" not in text
    (read,) = read_spans(json.loads(text))
    assert read["a"] == [["ratio", "nan"], ["big", "inf"], ["ok", "0.5"]]


def test_a_missing_child_is_marked_in_the_expected_tree_and_its_parent_in_the_capture(make_span: MakeSpan) -> None:
    root = make_span("checkout", at=0)
    spans = [root, make_span("charge", root, at=1)]
    with pytest.raises(SpanTreeMismatch) as raised:
        assert_span_tree(span("checkout", children=[span("charge"), span("email")]), spans)
    detail = "missing child matching 'email'"
    assert expected_lines(raised.value) == [["checkout", ""], ["├── charge", ""], ["└── email", detail]]
    assert captured_marks(raised.value) == [[f"{root.get_span_context().span_id:016x}", detail]]


def test_an_unexpected_span_is_marked_in_the_capture_only(make_span: MakeSpan) -> None:
    root = make_span("checkout", at=0)
    extra = make_span("audit", root, at=2)
    with pytest.raises(SpanTreeMismatch) as raised:
        assert_span_tree(span("checkout", children=[]), [root, make_span("charge", root, at=1), extra], exact=True)
    assert all(mark == "" for _, mark in expected_lines(raised.value))
    marked = {span_id for span_id, _ in captured_marks(raised.value)}
    assert f"{extra.get_span_context().span_id:016x}" in marked


def test_spans_read_through_the_public_api_give_the_same_data(make_span: MakeSpan) -> None:
    """Spans that are not the SDK's own objects (copies, spans received over OTLP) take the forest's way,
    which reads the public API: their data is the one the SDK's own fields give."""
    spans = _shapes(make_span)
    copies = [neutral_span(span) for span in spans]  # ReadableSpans with plain dicts and tuples
    assert plain_trace_data(copies) is None  # type: ignore[arg-type]
    assert trace_data(SpanForest(copies)) == plain_trace_data(spans)  # type: ignore[arg-type]


def test_a_span_without_ids_or_times_takes_the_forests_way(make_span: MakeSpan) -> None:
    root = make_span("root", at=1)
    bare = ReadableSpan(name="bare", context=None, start_time=None, end_time=None)
    assert plain_trace_data([bare]) is None
    data = trace_data(SpanForest([root, bare]))  # type: ignore[list-item]
    assert (data["i"][1], data["T"][data.get("t", [0, 0])[1]]) == ("", "0" * 32)
    assert (data["s"][1], data["e"][1], data["p"]) == (0, 0, [-1, -1])
    assert data["s"][0] == (T0 + SECOND) // 1000  # the bare span's missing start counts as 0, as in SpanForest
