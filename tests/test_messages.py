"""The plugin's own failure messages, checked in full (inline-snapshot: `--inline-snapshot=fix` updates them).

Each case is a slip a user made (issue 10) or a hostile input (issue 9, items 6, 13, 15, 17); a change
of wording shows as a diff here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from helpers import headline, mismatch
from inline_snapshot import snapshot
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode

from pytest_jobtrace import TextTreeError, assert_span_tree, render, span

MakeSpan = Callable[..., Span]


def parse_error(tree: str) -> str:
    with pytest.raises(TextTreeError) as excinfo:
        assert_span_tree(tree, [])
    return str(excinfo.value)


@pytest.fixture(name="checkout")
def _checkout(make_span: MakeSpan, exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    root = make_span("POST /orders", kind=SpanKind.SERVER, attributes={"http.route": "/orders"})
    make_span("payment.charge", root, at=1, kind=SpanKind.CLIENT, attributes={"payment.status": "declined"})
    make_span("inventory.reserve", root, at=2, attributes={"items": 3})
    make_span("send_receipt", root, at=3, status=StatusCode.OK)
    return exporter


# --- issue 10: the notation reads back ---------------------------------------------------------------


def test_attributes_in_a_nested_text_tree_line(checkout: InMemorySpanExporter) -> None:
    message = mismatch("POST /orders [server]\n  payment.charge [client] {payment.status='captured'}", checkout)
    assert message == snapshot("""\
span tree does not match: at 'POST /orders' > 'payment.charge': attributes['payment.status']: expected 'captured', got 'declined'

expected:
  POST /orders [server]
  └── payment.charge [client] {payment.status="captured"}

captured (4 spans in 1 trace):
  POST /orders [server]
  ├── payment.charge [client]    <-- attributes['payment.status']: expected 'captured', got 'declined'
  ├── inventory.reserve
  └── send_receipt [OK]\
""")


def test_a_regex_must_match_the_whole_value(checkout: InMemorySpanExporter) -> None:
    message = mismatch(span("POST /orders", attributes={"http.route": re.compile("/order")}), checkout)
    assert message == snapshot("""\
span tree does not match: at 'POST /orders': attributes['http.route']: expected /\\/order/ to match the whole value (re.fullmatch), got '/orders' (it matches only part of it)

expected:
  POST /orders {http.route=/\\/order/}

captured (4 spans in 1 trace):
  POST /orders [server]    <-- attributes['http.route']: expected /\\/order/ to match the whole value (re.fullmatch), got '/orders' (it matches only part of it)
  ├── payment.charge [client]
  ├── inventory.reserve
  └── send_receipt [OK]\
""")


def test_other_differences_are_listed_with_their_spans(checkout: InMemorySpanExporter) -> None:
    tree = """
    POST /orders [server, exact]
      payment.charge [client] {payment.status="captured"}
      inventory.reserve {items=2}
      send_receipt [ERROR]
    """
    assert mismatch(tree, checkout) == snapshot("""\
span tree does not match: at 'POST /orders' > 'payment.charge': attributes['payment.status']: expected 'captured', got 'declined'
other differences:
  - at 'POST /orders' > 'inventory.reserve': attributes['items']: expected 2, got 3
  - at 'POST /orders' > 'send_receipt': status: expected ERROR, got OK

expected:
  POST /orders [server, exact]
  ├── payment.charge [client] {payment.status="captured"}
  ├── inventory.reserve {items=2}
  └── send_receipt [ERROR]

captured (4 spans in 1 trace):
  POST /orders [server]
  ├── payment.charge [client]    <-- attributes['payment.status']: expected 'captured', got 'declined'
  ├── inventory.reserve    <-- attributes['items']: expected 2, got 3
  └── send_receipt [OK]    <-- status: expected ERROR, got OK\
""")


def test_other_differences_are_bounded(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("batch")
    for number in range(12):
        make_span(f"item_{number}", root, at=number + 1, attributes={"n": number})
    expected = span("batch", children=[span(f"item_{n}", attributes={"n": -1}) for n in range(12)])
    message = mismatch(expected, exporter)
    assert message.split("\n\nexpected:\n")[0] == snapshot("""\
span tree does not match: at 'batch' > 'item_0': attributes['n']: expected -1, got 0
other differences:
  - at 'batch' > 'item_1': attributes['n']: expected -1, got 1
  - at 'batch' > 'item_2': attributes['n']: expected -1, got 2
  - at 'batch' > 'item_3': attributes['n']: expected -1, got 3
  - at 'batch' > 'item_4': attributes['n']: expected -1, got 4
  - at 'batch' > 'item_5': attributes['n']: expected -1, got 5
  ... and 6 more differences\
""")


def test_exact_on_one_span_whatever_the_call_says(checkout: InMemorySpanExporter) -> None:
    listed = [span("payment.charge"), span("inventory.reserve")]
    assert_span_tree(span("POST /orders", children=listed), checkout)
    assert mismatch(span("POST /orders", children=listed, exact=True), checkout) == snapshot("""\
span tree does not match: unexpected child 'send_receipt' under 'POST /orders' ('POST /orders' has exact=True)

expected:
  POST /orders [exact]
  ├── payment.charge
  └── inventory.reserve

captured (4 spans in 1 trace):
  POST /orders [server]
  ├── payment.charge [client]
  ├── inventory.reserve
  └── send_receipt [OK]    <-- unexpected span ('POST /orders' has exact=True)\
""")
    assert mismatch({"name": "POST /orders", "children": listed, "exact": True}, checkout).splitlines()[0] == (
        snapshot(
            "span tree does not match: unexpected child 'send_receipt' under 'POST /orders' ('POST /orders' has exact=True)"
        )
    )
    assert_span_tree(span("POST /orders", children=[*listed, span("send_receipt")], exact=True), checkout)
    assert_span_tree([span("POST /orders", children=listed, exact=False)], checkout, exact=True)


def test_exact_attributes(checkout: InMemorySpanExporter) -> None:
    assert_span_tree(span("inventory.reserve", attributes={"items": 3}, exact_attributes=True), checkout)
    assert_span_tree("inventory.reserve [exact attributes] {items=3, coupon=None}", checkout)
    message = mismatch(span("POST /orders", attributes={}, exact_attributes=True), checkout)
    assert message == snapshot("""\
span tree does not match: at 'POST /orders': attributes: unexpected http.route='/orders' (exact attributes: the span may have only those listed)

expected:
  POST /orders [exact attributes]

captured (4 spans in 1 trace):
  POST /orders [server]    <-- attributes: unexpected http.route='/orders' (exact attributes: the span may have only those listed)
  ├── payment.charge [client]
  ├── inventory.reserve
  └── send_receipt [OK]\
""")
    with pytest.raises(TypeError, match=r"exact_attributes='yes': expected True or False"):
        span("x", exact_attributes="yes")  # type: ignore[arg-type]


# --- issue 9, item 6: indentation ------------------------------------------------------------------


@pytest.mark.parametrize("indent", ["\u00a0\u00a0", "\u3000\u3000", "\x0c\x0c", " \u2003"])
def test_indentation_other_than_spaces_names_the_line(indent: str) -> None:
    assert (
        parse_error(f"checkout\n{indent}charge_card")
        == snapshot(
            {
                "\xa0\xa0": "line 2: 'charge_card' is indented with NO-BREAK SPACE (U+00A0); indent a text tree with spaces only",
                "\u3000\u3000": "line 2: 'charge_card' is indented with IDEOGRAPHIC SPACE (U+3000); indent a text tree with spaces only",
                "\x0c\x0c": "line 2: 'charge_card' is indented with a control character (U+000C); indent a text tree with spaces only",
                " \u2003": "line 2: 'charge_card' is indented with EM SPACE (U+2003); indent a text tree with spaces only",
            }
        )[indent]
    )


def test_whitespace_after_the_box_drawing_names_the_line() -> None:
    assert parse_error("checkout\n└──\u00a0charge_card") == snapshot(
        "line 2: '└──\\xa0charge_card': a box-drawn line must start with '├── ' or '└── ' after 4 columns per level ('│   ' or '    '), as render() writes it"
    )


# --- issue 9, item 13: deep trees --------------------------------------------------------------------


def _chain(make_span: MakeSpan, depth: int) -> None:
    parent = None
    for level in range(depth):
        parent = make_span(f"level_{level}", parent, at=level, attributes={"n": level})


def test_deep_trees_render_match_and_fail_without_recursion(
    make_span: MakeSpan, exporter: InMemorySpanExporter
) -> None:
    _chain(make_span, 1200)
    text = render(exporter)
    assert len(text.splitlines()) == 1200
    assert_span_tree(text, exporter, exact=True)  # parsing and matching 1200 levels
    expected = None
    for level in reversed(range(1200)):
        expected = span(f"level_{level}", attributes={"n": -1 if level == 1199 else level}, children=expected or ())
    message = mismatch(expected, exporter)
    assert message.splitlines()[0] == snapshot(
        "span tree does not match: at 'level_0' > 'level_1' > 'level_2' > ... 1194 levels ... > 'level_1197' > 'level_1198' > 'level_1199': attributes['n']: expected -1, got 1199"
    )
    assert len(message) < 100_000
    assert message.splitlines()[-1] == snapshot(
        "          [1195 levels]    └── level_1199    <-- attributes['n']: expected -1, got 1199"
    )


def test_a_deep_text_tree_parses(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    _chain(make_span, 600)
    tree = "\n".join("  " * level + f"level_{level}" for level in range(600))
    assert_span_tree(tree, exporter, exact=True)
    assert mismatch(tree + "\n" + "  " * 600 + "level_600", exporter).splitlines()[0] == snapshot(
        "span tree does not match: missing child matching 'level_600' under 'level_0' > 'level_1' > 'level_2' > ... 594 levels ... > 'level_597' > 'level_598' > 'level_599'; it has no children"
    )


# --- issue 9, item 15: bounded messages ------------------------------------------------------------


def test_a_huge_expectation_is_clipped(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    make_span("batch")
    message = mismatch(span("batch", children=[span(f"item_{n}") for n in range(10_000)]), exporter)
    assert len(message.splitlines()) < 230
    expected = message.split("\nexpected:\n")[1].split("\n\n")[0].splitlines()
    assert expected[-1] == snapshot("  ... 9801 lines below ...")


def test_a_huge_value_is_clipped(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    make_span("upload", attributes={"body": "x" * 1_000_000})
    message = mismatch(span("upload", attributes={"body": "y" * 1_000_000}), exporter)
    assert len(message) < 5_000
    assert message.splitlines()[0] == snapshot(
        "span tree does not match: at 'upload': attributes['body']: expected 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy... (999802 more characters), got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (999802 more characters)"
    )


# --- issue 9, item 17: control characters -------------------------------------------------------------


def test_control_characters_are_escaped_in_messages(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    make_span("charge\x1b[31m", status=(StatusCode.ERROR, "evil \u202e reversed"), exception=ValueError("a\rb"))
    message = mismatch(span("charge\x1b[31m", exception=KeyError, description="x\u2028y"), exporter)
    assert all(line.isprintable() for line in message.splitlines())
    assert message == snapshot("""\
span tree does not match: at 'charge\\x1b[31m': status description: expected 'x\\u2028y', got 'evil \\u202e reversed'

expected:
  /charge\\U0000001b\\[31m/ [description "x\\u2028y", exception "KeyError"]

captured (1 span in 1 trace):
  /charge\\U0000001b\\[31m/ [ERROR "evil \\u202e reversed"]    <-- status description: expected 'x\\u2028y', got 'evil \\u202e reversed'\
""")


def test_render_escapes_line_separators_and_reads_back(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    make_span("a\u2028b", status=(StatusCode.ERROR, "x\x85y\u2029z"))
    text = render(exporter)
    assert text == snapshot('/a\\U00002028b/ [ERROR "x\\x85y\\u2029z"]')
    assert_span_tree(text, exporter, exact=True)


def test_exception_types_are_escaped(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    make_span("charge", events=[("exception", {"exception.type": "Evil\x1b[2J", "exception.message": "m\x07"})])
    message = mismatch(span("charge", exception=KeyError), exporter)
    assert message.splitlines()[0] == snapshot(
        "span tree does not match: at 'charge': exception: expected KeyError, got Evil\\x1b[2J: 'm\\x07'"
    )


# --- jobs: a self-enqueuing chain of 500 (item 13), 30 failures with control characters (items 15, 17)


def test_a_chain_of_500_jobs_fails_with_the_mismatch(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_jobtrace import SpanTreeMismatch, assert_span_tree, job
        from pytest_jobtrace.builtin import Job

        class CountdownJob(Job):
            def perform(self, n):
                if n:
                    CountdownJob.perform_later(n - 1)

        def test_chain(job_spans, builtin_jobs):
            CountdownJob.perform_later(499)
            builtin_jobs.drain()
            expected = job("CountdownJob")
            for _ in range(499):
                expected = job("CountdownJob", children=[expected])
            assert_span_tree(expected)
            assert_span_tree(job("CountdownJob", attempts=2))
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "RecursionError" not in output
    line = next(line for line in output.splitlines() if line.startswith("E       pytest_jobtrace.SpanTreeMismatch"))
    assert line == snapshot(
        "E       pytest_jobtrace.SpanTreeMismatch: span tree does not match: nothing in the capture matches job CountdownJob [attempts 2]; at least 50 spans come equally close, the first: at 'send default': job 'CountdownJob': expected 2 attempts, found 1 (attempt 1 succeeded)"
    )
    assert len(output) < 200_000


def test_job_failed_error_is_bounded_and_escaped(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_jobtrace import JobFailedError
        from pytest_jobtrace.builtin import Job

        class BrokenJob(Job):
            def perform(self, n):
                raise ValueError("bad\\x1b[2J" + "x" * 5000)

        def test_failures(job_spans, builtin_jobs):
            for n in range(30):
                BrokenJob.perform_later(n)
            with pytest.raises(JobFailedError) as excinfo:
                builtin_jobs.drain()
            message = str(excinfo.value)
            assert len(message.splitlines()) == 24, message
            assert all(line.isprintable() for line in message.splitlines())
            assert "... (4" in message.splitlines()[1]
            print("LAST:" + message.splitlines()[-3])
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=1)
    line = next(line for line in result.stdout.str().splitlines() if "LAST:" in line)
    assert line[line.index("LAST:") :] == snapshot(
        "LAST:  ... and 10 more failed jobs (the fixture's .failed lists them all)"
    )


def test_span_names_that_look_like_text_tree_lines(checkout: InMemorySpanExporter) -> None:
    assert mismatch(span("job ProcessOrderJob"), checkout).splitlines()[0] == snapshot(
        "span tree does not match: no captured span matches 'job ProcessOrderJob'; span() matches a span by name: for a job, use job(), {'job': ...} or a text-tree line 'job NAME'"
    )
    assert mismatch(span("payment.charge [client]"), checkout).splitlines()[0] == snapshot(
        "span tree does not match: no captured span matches 'payment.charge [client]' (similar names captured: 'payment.charge'); span() takes the name literally: annotations and {attributes} are read in a text tree, or given as span()'s keywords"
    )


def test_exact_on_a_job(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from pytest_jobtrace import SpanTreeMismatch, assert_span_tree, job
        from pytest_jobtrace.builtin import Job

        tracer = trace.get_tracer("shop")

        class ReceiptJob(Job):
            def perform(self):
                for name in ("render", "send"):
                    with tracer.start_as_current_span(name):
                        pass

        def test_exact(job_spans, builtin_jobs):
            ReceiptJob.perform_later()
            builtin_jobs.drain()
            assert_span_tree(job("ReceiptJob", children=["render"]))
            assert_span_tree({"job": "ReceiptJob", "children": ["render", "send"], "exact": True})
            assert_span_tree("job ReceiptJob [exact]\\n  render\\n  send", exact=False)
            with pytest.raises(SpanTreeMismatch) as excinfo:
                assert_span_tree("job ReceiptJob [exact]\\n  render")
            print("FIRST:" + str(excinfo.value).splitlines()[0])
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=1)
    line = next(line for line in result.stdout.str().splitlines() if "FIRST:" in line)
    assert line[line.index("FIRST:") :] == snapshot(
        "FIRST:span tree does not match: unexpected child 'send' under job 'ReceiptJob' (job 'ReceiptJob' has exact=True)"
    )


# --- issue 17, item 21: a span-name pattern that matches only part of the name ------------------------


def test_a_name_pattern_that_matches_part_of_a_child_name_says_so(checkout: InMemorySpanExporter) -> None:
    message = mismatch(span("POST /orders", children=[span(re.compile("payment"))]), checkout)
    assert headline(message) == snapshot(
        "span tree does not match: missing child matching /payment/ under 'POST /orders'; its children are 'payment.charge', 'inventory.reserve', 'send_receipt'; /payment/ matches only part of 'payment.charge': a name pattern must match the whole name (re.fullmatch)"
    )


def test_a_name_pattern_that_matches_part_of_a_root_name_says_so(checkout: InMemorySpanExporter) -> None:
    message = mismatch(span(re.compile("POST")), checkout)
    assert headline(message) == snapshot(
        "span tree does not match: no captured span matches /POST/; /POST/ matches only part of 'POST /orders': a name pattern must match the whole name (re.fullmatch)"
    )


def test_a_name_pattern_that_matches_part_of_the_closest_span_says_so(checkout: InMemorySpanExporter) -> None:
    message = mismatch(span(re.compile("charge"), kind=SpanKind.CLIENT), checkout)
    assert headline(message) == snapshot(
        "span tree does not match: no captured span matches /charge/; /charge/ matches only part of 'payment.charge': a name pattern must match the whole name (re.fullmatch)"
    )


def test_a_name_pattern_that_matches_no_part_gets_no_part_hint(checkout: InMemorySpanExporter) -> None:
    message = mismatch(span("POST /orders", children=[span(re.compile("refund"))]), checkout)
    assert "only part" not in message


# --- issue 17, item 20: a place inside a retried job is given from the job ------------------------------


def test_a_difference_inside_a_retried_attempt_is_placed_from_the_job(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from pytest_jobtrace import SpanTreeMismatch, assert_span_tree, job, span
        from pytest_jobtrace.builtin import Job

        tracer = trace.get_tracer("shop")

        class SyncToLedgerJob(Job):
            retry_on = (ConnectionError,)
            attempts = 2

            def perform(self):
                with tracer.start_as_current_span("ledger.sync", attributes={"attempt": self.executions}):
                    if self.executions == 1:
                        raise ConnectionError("ledger unreachable")

        def test_place(job_spans, builtin_jobs):
            with tracer.start_as_current_span("POST /sync"):
                with tracer.start_as_current_span("sync.batch"):
                    SyncToLedgerJob.perform_later()
            builtin_jobs.drain()
            expected = span("POST /sync", children=[span("sync.batch", children=[
                job("SyncToLedgerJob", children=[span("ledger.sync", attributes={"attempt": 3})])])])
            with pytest.raises(SpanTreeMismatch) as excinfo:
                assert_span_tree(expected)
            print("FIRST:" + str(excinfo.value).splitlines()[0])
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=1)
    line = next(line for line in result.stdout.str().splitlines() if "FIRST:" in line)
    assert line[line.index("FIRST:") :] == snapshot(
        "FIRST:span tree does not match: nothing under job 'SyncToLedgerJob' matches 'ledger.sync' with {attempt=3}; 2 spans come equally close, the first: at job 'SyncToLedgerJob', attempt 1 > 'ledger.sync': attributes['attempt']: expected 3, got 1"
    )
