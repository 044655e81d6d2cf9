"""The text-tree grammar: indentation, box drawing, annotations, names; render() round trips; parse errors."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from helpers import headline, mismatch
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode

from pytest_jobtrace import TextTreeError, assert_span_tree, job, render, span
from pytest_jobtrace._core.texttree import parse_text_tree

MakeSpan = Callable[..., Span]


def expected_section(message: str) -> str:
    return message.split("\nexpected:\n", 1)[1].split("\n\n", 1)[0]


def parse_error(tree: str) -> str:
    with pytest.raises(TextTreeError) as excinfo:
        assert_span_tree(tree, [])
    return str(excinfo.value)


@pytest.fixture(name="shop")
def _shop(make_span: MakeSpan, exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """Two traces: a request that enqueues a job, and the job run that links to the enqueue."""
    request = make_span("GET /orders/[id]", kind=SpanKind.SERVER)
    publish = make_span("apply_async/process_order", request, at=1, kind=SpanKind.PRODUCER)
    make_span("db.query: SELECT orders", request, at=2, kind=SpanKind.CLIENT)
    run = make_span("run/process_order", at=3, kind=SpanKind.CONSUMER, links=[publish])
    make_span("charge card", run, at=4, status=(StatusCode.ERROR, 'PaymentError: card "4242" declined'))
    for at in (5, 6, 7):
        make_span(f"process_chunk_{at}", run, at=at)
    make_span("send_confirmation", run, at=8, status=StatusCode.OK)
    return exporter


SHOP = """
GET /orders/[id] [server]
  apply_async/process_order [producer]
  db.query: SELECT orders [client]
run/process_order [consumer, link "apply_async/process_order"]
  charge card [ERROR "PaymentError: card \\"4242\\" declined"]
  /process_chunk_\\d/ [x3]
  send_confirmation [OK]
"""


# --- indentation ---------------------------------------------------------------------------------


def test_an_indented_tree(shop: InMemorySpanExporter) -> None:
    assert_span_tree(SHOP, shop, exact=True)


@pytest.mark.parametrize("unit", [2, 3, 4, 8])
def test_any_indent_of_two_or_more_spaces_per_level(shop: InMemorySpanExporter, unit: int) -> None:
    tree = "run/process_order\n" + " " * unit + "charge card\n" + " " * unit + "send_confirmation"
    assert_span_tree(tree, shop)
    deeper = "GET /orders/[id]\n" + " " * unit + "apply_async/process_order\n" + " " * 2 * unit + "run/process_order"
    message = mismatch(deeper, shop)
    assert headline(message) == (
        "span tree does not match: missing child matching 'run/process_order' under "
        "'GET /orders/[id]' > 'apply_async/process_order'; it has no children"
    )


def test_a_tree_indented_as_a_whole_is_dedented(shop: InMemorySpanExporter) -> None:
    assert_span_tree("        run/process_order\n          send_confirmation\n", shop)


def test_tabs_alone_indent_one_level_each(shop: InMemorySpanExporter) -> None:
    assert_span_tree("run/process_order\n\tcharge card\n\tsend_confirmation", shop)
    mismatch("GET /orders/[id]\n\tcharge card", shop)


def test_blank_lines_and_comments_are_ignored(shop: InMemorySpanExporter) -> None:
    tree = """
    # the job run
    run/process_order

      # its steps, in any order
      send_confirmation
          # a comment may sit at any depth
      charge card
    """
    assert_span_tree(tree, shop)
    assert expected_section(mismatch(tree + "  refund\n", shop)) == (
        "  run/process_order\n  ├── send_confirmation\n  ├── charge card\n  └── refund"
    )


def test_a_hash_inside_a_name_is_part_of_it(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    make_span("channel #general")
    assert_span_tree("channel #general", exporter)


def test_siblings_and_several_roots(shop: InMemorySpanExporter) -> None:
    assert_span_tree("send_confirmation\napply_async/process_order\ncharge card", shop)
    message = mismatch("send_confirmation\nrefund", shop)
    assert headline(message) == "span tree does not match: no captured span matches 'refund'"


# --- box drawing ---------------------------------------------------------------------------------


def test_a_box_drawn_tree(shop: InMemorySpanExporter) -> None:
    tree = """
    GET /orders/[id] [server]
    ├── apply_async/process_order [producer]
    └── db.query: SELECT orders [client]
    run/process_order [consumer]
    ├── charge card [ERROR]
    │   └── refund
    └── send_confirmation [OK]
    """
    message = mismatch(tree, shop)
    assert headline(message) == (
        "span tree does not match: missing child matching 'refund' under 'run/process_order' > 'charge card'; "
        "it has no children"
    )
    assert_span_tree(tree.replace("    │   └── refund\n", ""), shop)
    message = mismatch(tree.replace("    │   └── refund\n", ""), shop, exact=True)
    assert headline(message) == (
        "span tree does not match (exact): unexpected children 'process_chunk_5', 'process_chunk_6', "
        "'process_chunk_7' under 'run/process_order' (exact=True: every span must be expected)"
    )


def test_box_drawn_continuation_lines_nest_deeper(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    a = make_span("a")
    b = make_span("b", a, at=1)
    make_span("c", make_span("c-parent", b, at=2), at=3)
    make_span("d", a, at=4)
    tree = "a\n├── b\n│   └── c-parent\n│       └── c\n└── d"
    assert render(exporter) == tree
    assert_span_tree(tree, exporter, exact=True, ordered=True)


# --- annotations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "run/process_order [consumer]",
        "run/process_order [CONSUMER]",
        'run/process_order [Consumer, link "apply_async/process_order"]',
        'run/process_order [link "/apply_async/.*/"]',
        'run/process_order [link "*"]',
        "charge card [error]",
        'charge card [internal, ERROR "PaymentError: card \\"4242\\" declined"]',
        "send_confirmation [ok]",
        "send_confirmation [OK]",
        "/process_chunk_\\d/ [x3]",
        "/process_chunk_\\d/ [×3]",
        "refund [x0]",
        "db.query: SELECT orders [client, UNSET, x1]",
    ],
)
def test_annotations_that_match(shop: InMemorySpanExporter, line: str) -> None:
    assert_span_tree(line, shop)


@pytest.mark.parametrize(
    ("line", "difference"),
    [
        ("run/process_order [server]", "at 'run/process_order': kind: expected server, got consumer"),
        ("charge card [OK]", "status: expected OK, got ERROR ('PaymentError: card \"4242\" declined')"),
        (
            'charge card [ERROR "PaymentError"]',
            "status description: expected 'PaymentError', got 'PaymentError: card \"4242\" declined'",
        ),
        (
            'run/process_order [link "apply_async/refund"]',
            "expected a link to 'apply_async/refund', it links to 'apply_async/process_order'",
        ),
        ("/process_chunk_\\d/ [x2]", "expected 2 spans matching /process_chunk_\\d/ in the capture, found 3"),
        ("send_confirmation [x0]", "expected 0 spans matching 'send_confirmation' in the capture, found 1"),
    ],
)
def test_annotations_that_do_not_match(shop: InMemorySpanExporter, line: str, difference: str) -> None:
    assert headline(mismatch(line, shop)).endswith(difference)


def test_annotations_show_in_the_expected_section(shop: InMemorySpanExporter) -> None:
    message = mismatch('run/process_order [consumer, ERROR "x", link "apply_async/refund", x1]', shop)
    assert expected_section(message) == '  run/process_order [consumer, ERROR "x", link "apply_async/refund", x1]'


@pytest.mark.parametrize(
    "name",
    [
        "GET /items/[id]",
        "SELECT [1]",
        "list []",
        "a [ok",
        "GET /users/ {id}",
        "db.query: SELECT * FROM t",
        "a.b/c:d e",
    ],
)
def test_brackets_that_are_not_annotations_stay_in_the_name(
    make_span: MakeSpan, exporter: InMemorySpanExporter, name: str
) -> None:
    make_span(name)
    assert_span_tree(name, exporter)
    assert_span_tree(f"{name} [internal, UNSET]", exporter)
    assert render(exporter) == name


# --- names ---------------------------------------------------------------------------------------


def test_a_slashed_name_is_a_regex_that_must_fullmatch(shop: InMemorySpanExporter) -> None:
    assert_span_tree("/run/.*/\n  /charge \\w+/", shop)
    message = mismatch("/run/", shop)
    assert headline(message) == (
        "span tree does not match: no captured span matches /run/; /run/ matches only part of 'run/process_order': "
        "a name pattern must match the whole name (re.fullmatch)"
    )


def test_a_star_is_any_name(shop: InMemorySpanExporter) -> None:
    assert_span_tree("run/process_order\n  *\n  *\n  *\n  *\n  *", shop)
    message = mismatch("run/process_order\n  *\n  *\n  *\n  *\n  *\n  *", shop)
    assert headline(message) == (
        "span tree does not match: expected 6 spans matching any span under 'run/process_order', found 5"
    )


def test_short_slashes_are_literal_names(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    make_span("/")
    make_span("//", at=1)
    assert_span_tree("/\n//", exporter, exact=True)


# --- render round trips --------------------------------------------------------------------------


def test_render_of_a_capture_is_its_expected_tree(shop: InMemorySpanExporter) -> None:
    rendered = render(shop)
    assert rendered == "\n".join(
        [
            "GET /orders/[id] [server]",
            "├── apply_async/process_order [producer]",
            "└── db.query: SELECT orders [client]",
            "",
            'run/process_order [consumer, link "apply_async/process_order"]',
            '├── charge card [ERROR "PaymentError: card \\"4242\\" declined"]',
            "├── process_chunk_5",
            "├── process_chunk_6",
            "├── process_chunk_7",
            "└── send_confirmation [OK]",
        ]
    )
    assert_span_tree(rendered, shop, exact=True, ordered=True)


def test_render_is_not_matched_by_a_different_capture(shop: InMemorySpanExporter) -> None:
    rendered = render(shop)
    changed = rendered.replace("└── send_confirmation [OK]", "└── send_confirmation [ERROR]")
    message = mismatch(changed, shop)
    assert headline(message).endswith("at 'run/process_order' > 'send_confirmation': status: expected ERROR, got OK")
    message = mismatch(rendered.replace("├── process_chunk_6\n", ""), shop, exact=True)
    assert "unexpected child 'process_chunk_6'" in headline(message)


def test_the_failure_output_can_be_pasted_back(shop: InMemorySpanExporter) -> None:
    message = mismatch("run/process_order\n  refund", shop)
    captured = message.split("):\n", 1)[1]
    unmarked = "\n".join(line.split("    <-- ")[0] for line in captured.splitlines())
    assert_span_tree(unmarked, shop, exact=True)


def test_round_trip_of_errors_with_awkward_descriptions(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("root", status=(StatusCode.ERROR, "line one\nline two"))
    make_span("quoted", root, at=1, status=(StatusCode.ERROR, 'said "no", then ] and [x2]'))
    make_span("bare", root, at=2, status=StatusCode.ERROR)
    make_span("unicode", root, at=3, status=(StatusCode.ERROR, "naïve ✓ \\ backslash"))
    rendered = render(exporter)
    assert rendered.splitlines()[0] == 'root [ERROR "line one\\nline two"]'
    assert_span_tree(rendered, exporter, exact=True, ordered=True)


def test_round_trip_of_links_and_several_traces(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    publishes = [make_span("apply_async/job", at=at, kind=SpanKind.PRODUCER) for at in (0, 1)]
    for at, publish in enumerate(publishes, 10):
        run = make_span("run/job", at=at, kind=SpanKind.CONSUMER, links=[publish])
        make_span("apply_async/job", run, at=at, kind=SpanKind.PRODUCER)
    make_span("fan-in", at=20, links=publishes)
    rendered = render(exporter)
    assert rendered.count("\n") == 6 + 4  # one line per span, a blank line between the 5 traces
    assert 'fan-in [link "apply_async/job", link "apply_async/job"]' in rendered
    assert_span_tree(rendered, exporter, exact=True, ordered=True)


def test_round_trip_of_a_link_that_was_not_captured(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    publish = make_span("apply_async/job")
    make_span("run/job", at=1, links=[publish])
    spans = [s for s in exporter.get_finished_spans() if s.name == "run/job"]
    assert render(spans) == "run/job [link (not captured)]"
    assert_span_tree(render(spans), spans, exact=True)


def test_round_trip_of_a_deep_and_wide_tree(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    parent = make_span("level 0")
    for depth in range(1, 30):
        for at in range(3):
            make_span(f"leaf {depth}.{at}", parent, at=depth * 10 + at)
        parent = make_span(f"level {depth}", parent, at=depth * 10 + 5)
    root = make_span("wide", at=1000)
    for at in range(300):
        make_span("item", root, at=1000 + at, kind=SpanKind.CLIENT)
    assert_span_tree(render(exporter), exporter, exact=True, ordered=True)


@pytest.mark.parametrize(
    "name",
    ["*", "/users/", "cache [ok]", "retry [x2]", "#general", "├── box", " padded", "two\nlines", "tab\there", ""],
)
def test_round_trip_of_names_the_grammar_would_misread(
    make_span: MakeSpan, exporter: InMemorySpanExporter, name: str
) -> None:
    root = make_span("root")
    make_span(name, root, at=1)
    make_span("other", root, at=2)
    rendered = render(exporter)
    assert re.fullmatch(r"root\n├── /.+/\n└── other", rendered)
    assert_span_tree(rendered, exporter, exact=True, ordered=True)


# --- errors --------------------------------------------------------------------------------------


def test_an_empty_tree() -> None:
    assert parse_error("") == "the text tree is empty: write one span name per line"
    assert parse_error("\n   \n# just a comment\n") == "the text tree is empty: write one span name per line"


def test_a_level_indented_by_one_space() -> None:
    assert parse_error("root\n child") == "line 2: indent each level by two or more spaces, not one"


def test_an_indent_that_is_not_a_whole_number_of_levels() -> None:
    assert parse_error("root\n  child\n   grandchild") == (
        "line 3: 'grandchild' is indented 3 spaces, but the tree uses 2 spaces per level"
    )
    assert parse_error("root\n    child\n      grandchild") == (
        "line 3: 'grandchild' is indented 6 spaces, but the tree uses 4 spaces per level"
    )


def test_a_jump_of_two_levels() -> None:
    assert parse_error("root\n  child\n      great-grandchild") == (
        "line 3: 'great-grandchild' is indented 2 levels deeper than the line above it ('child'); "
        "a child goes exactly one level deeper than its parent"
    )
    assert parse_error("root\n└── child\n        └── great-grandchild") == (
        "line 3: 'great-grandchild' is indented 2 levels deeper than the line above it ('child'); "
        "a child goes exactly one level deeper than its parent"
    )


def test_the_first_line_indented() -> None:
    assert parse_error("    root\n  sibling") == (
        "line 1: 'root' is indented more than 'sibling' on line 2; the tree's first span must be its least "
        "indented line"
    )
    assert parse_error("├── root") == "line 1: 'root' is nested, but no line above it is its parent"


def test_line_numbers_count_blank_lines_and_comments() -> None:
    assert parse_error("\n# header\nroot\n\n child") == "line 5: indent each level by two or more spaces, not one"


def test_tabs_mixed_with_spaces() -> None:
    assert parse_error("root\n\tchild\n  other") == (
        "line 3: indented with spaces, but line 2 with tabs; indent the tree with spaces only"
    )
    assert parse_error("root\n  child\n \tother") == (
        "line 3: indented with tabs, but line 2 with spaces; indent the tree with spaces only"
    )


def test_box_drawing_of_the_wrong_width() -> None:
    assert parse_error("root\n├── child\n│  └── grandchild") == (
        "line 3: '│  └── grandchild': a box-drawn line must start with '├── ' or '└── ' after 4 columns per level "
        "('│   ' or '    '), as render() writes it"
    )
    assert parse_error("root\n├─ child").startswith("line 2: '├─ child': a box-drawn line must start with")


def test_box_drawing_mixed_with_indentation() -> None:
    assert parse_error("root\n  ├── child").startswith("line 2: '├── child': a box-drawn line must start with")


def test_a_text_tree_error_is_a_value_error() -> None:
    assert issubclass(TextTreeError, ValueError)
    with pytest.raises(ValueError, match="line 2"):
        span("root", children="a\n b")


def test_a_regex_that_does_not_compile_names_its_line() -> None:
    assert (
        parse_error("root\n  /[/")
        == "line 2: '/[/': its /regex/ does not compile: unterminated character set at position 0"
    )


def test_a_span_literally_named_like_a_broken_regex_renders_and_reads_back(
    make_span: MakeSpan, exporter: InMemorySpanExporter
) -> None:
    make_span("/[/", at=0)
    assert render(exporter) == "//\\[//"  # an escaped /regex/ that matches exactly that name
    assert_span_tree(render(exporter), exporter, exact=True)


def test_render_round_trips_with_exact_and_links(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    parent = make_span("parent", at=0, kind=SpanKind.PRODUCER)
    make_span("child", parent, at=1)
    make_span("consumer", at=2, kind=SpanKind.CONSUMER, links=[parent])
    assert_span_tree(render(exporter), exporter, exact=True)


@pytest.mark.parametrize(
    ("tree", "error"),
    [
        (
            "POST /orders [sever]",
            "line 1: 'POST /orders [sever]': unknown annotation 'sever'; annotations here are: a kind (server, "
            'client...), OK/ERROR/UNSET with an optional "description", description "...", link "name", event '
            '"name", exception "Type" "message", xN, exact, exact attributes; for a name that ends in brackets, '
            "write a /regex/: /POST /orders \\[sever\\]/",
        ),
        (
            "POST /checkout [server]\n  send orders [prodcer]",
            "line 2: 'send orders [prodcer]': unknown annotation 'prodcer'; annotations here are: a kind (server, "
            'client...), OK/ERROR/UNSET with an optional "description", description "...", link "name", event '
            '"name", exception "Type" "message", xN, exact, exact attributes; for a name that ends in brackets, '
            "write a /regex/: /send orders \\[prodcer\\]/",
        ),
        (
            "a\n  b\n    process inventory [consumer, ERROR] [x2]",
            "line 3: 'process inventory [consumer, ERROR] [x2]': two [...] groups: write every one of the "
            "annotations in one",
        ),
        (
            "import\n  process_chunk_\\d+ [x4]",
            "line 2: 'process_chunk_\\\\d+ [x4]': 'process_chunk_\\\\d+' looks like a regular expression, but a "
            "name is taken literally: write /process_chunk_\\d+/ to match a pattern (or escape it, /name\\.\\*/, "
            "to match those characters literally)",
        ),
        (
            "a\n  payment.charge [client] {payment.status=captured}",
            "line 2: 'payment.charge [client] {payment.status=captured}': captured is not a value (a string is "
            'quoted: "captured"); for a name that ends in brackets, write a /regex/: '
            "/payment\\.charge \\[client\\] \\{payment\\.status=captured\\}/",
        ),
        (
            "a\n  b {x=1} {y=2}",
            "line 2: 'b {x=1} {y=2}': two {...} groups: write every one of the attributes in one",
        ),
        ("a [retry]", None),
        ('tag [link "x]', None),
        ("note [server crashed]", None),
        ("cache [warm]", None),
    ],
)
def test_a_mistyped_group_is_an_error_at_any_depth(tree: str, error: str | None) -> None:
    """Words that would have been read as part of a name are an error naming the line."""
    message = parse_error(tree)
    if error is not None:
        assert message == error
    assert message.startswith(f"line {tree.count(chr(10)) + 1}: ")


def test_a_job_line_reads_as_job() -> None:
    """`job NAME [...]` is a job(), so that a failure's "expected:" block reads back."""
    (node,) = parse_text_tree('job ProcessOrderJob [queue "q", attempts 2, outcome failed, not linked, x2, exact]')
    assert node.render_line() == 'job ProcessOrderJob [queue "q", attempts 2, outcome "failed", not linked, x2, exact]'
    made = job("ProcessOrderJob", queue="q", attempts=2, outcome="failed", linked=False, count=2, exact=True)
    assert repr(node) == repr(made)
    assert parse_error("job X [3 attempts]") == (
        "line 1: 'job X [3 attempts]': unknown annotation '3 attempts'; annotations here are: queue \"name\", "
        'attempts N, outcome "succeeded"/"failed"/"discarded"/"pending", exception "Type" "message", '
        "linked, not linked, xN, exact"
    )
