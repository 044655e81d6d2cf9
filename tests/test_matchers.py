"""span() and dict expectations, matching semantics, failure messages and render()."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import replace

import pytest
from dirty_equals import IsInt, IsPositiveInt, IsStr, IsTuple
from helpers import headline, mismatch
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode

from pytest_jobtrace import SpanTreeMismatch, TextTreeError, assert_span_tree, render, span
from pytest_jobtrace._core.expect import ExceptionSpec
from pytest_jobtrace._core.texttree import parse_text_tree

MakeSpan = Callable[..., Span]


class PaymentError(Exception):
    pass


class Outer:
    class InnerError(Exception):
        pass


def marked(message: str) -> list[str]:
    """The captured-forest lines that carry a ``<--`` mark, without the section indent."""
    return [line[2:] for line in message.splitlines() if "    <-- " in line]


@pytest.fixture(name="order")
def _order(make_span: MakeSpan, exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """run/process_order [consumer] > charge {payment.status=declined}, reserve [ERROR "out of stock"]."""
    run = make_span("run/process_order", kind=SpanKind.CONSUMER, attributes={"order.id": 42})
    make_span("charge", run, at=1, attributes={"payment.status": "declined", "tags": ("card", "visa"), "amount": 3})
    make_span("reserve", run, at=2, status=(StatusCode.ERROR, "out of stock"))
    return exporter


# --- names ---------------------------------------------------------------------------------------


def test_a_string_name_must_equal_the_span_name(order: InMemorySpanExporter) -> None:
    assert_span_tree(span("charge"), order)
    message = mismatch(span("charg"), order)
    assert headline(message) == (
        "span tree does not match: no captured span matches 'charg' (similar names captured: 'charge')"
    )


def test_a_pattern_name_must_match_the_whole_name(order: InMemorySpanExporter) -> None:
    assert_span_tree(span(re.compile(r"run/\w+")), order)
    message = mismatch(span(re.compile("run")), order)
    assert headline(message) == (
        "span tree does not match: no captured span matches /run/; /run/ matches only part of 'run/process_order': "
        "a name pattern must match the whole name (re.fullmatch)"
    )


def test_any_other_name_object_compares_with_equals(order: InMemorySpanExporter) -> None:
    assert_span_tree(span(IsStr(regex=r"run/.*")), order)
    message = mismatch(span(IsStr(regex=r"apply_async/.*")), order)
    assert headline(message) == "span tree does not match: no captured span matches IsStr(regex='apply_async/.*')"


def test_no_name_matches_any_span(order: InMemorySpanExporter) -> None:
    assert_span_tree(span(kind="consumer"), order)
    assert_span_tree(span(children=[span(), span()]), order)
    message = mismatch(span(children=[span(), span(), span()]), order)
    assert headline(message) == (
        "span tree does not match: expected 3 spans matching any span under 'run/process_order', found 2"
    )


# --- kind and status -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [SpanKind.CONSUMER, "consumer", "CONSUMER", "Consumer"])
def test_kind_takes_a_span_kind_or_its_name_in_any_case(order: InMemorySpanExporter, kind: object) -> None:
    assert_span_tree(span("run/process_order", kind=kind), order)


def test_a_wrong_kind_names_both_kinds(order: InMemorySpanExporter) -> None:
    message = mismatch(span("run/process_order", kind=SpanKind.SERVER), order)
    assert headline(message) == "span tree does not match: at 'run/process_order': kind: expected server, got consumer"
    assert marked(message) == ["run/process_order [consumer]    <-- kind: expected server, got consumer"]


def test_a_child_whose_kind_is_not_set_is_internal(order: InMemorySpanExporter) -> None:
    assert_span_tree(span("charge", kind="internal"), order)
    message = mismatch(span("charge", kind="client"), order)
    assert "kind: expected client, got internal" in headline(message)


@pytest.mark.parametrize("status", [StatusCode.ERROR, "ERROR", "error", "Error"])
def test_status_takes_a_status_code_or_its_name_in_any_case(order: InMemorySpanExporter, status: object) -> None:
    assert_span_tree(span("reserve", status=status), order)


def test_a_wrong_status_shows_the_actual_status_and_description(order: InMemorySpanExporter) -> None:
    message = mismatch(span("reserve", status="ok"), order)
    assert headline(message) == (
        "span tree does not match: at 'run/process_order' > 'reserve': status: expected OK, got ERROR ('out of stock')"
    )
    assert marked(message) == [
        """└── reserve [ERROR "out of stock"]    <-- status: expected OK, got ERROR ('out of stock')"""
    ]


def test_unset_status_is_checked_too(order: InMemorySpanExporter) -> None:
    assert_span_tree(span("charge", status="unset"), order)
    message = mismatch(span("run/process_order", children=[span("reserve", status=StatusCode.UNSET)]), order)
    assert "'reserve': status: expected UNSET, got ERROR ('out of stock')" in headline(message)


def test_description_is_a_string_or_a_pattern(order: InMemorySpanExporter) -> None:
    assert_span_tree(span("reserve", status="error", description="out of stock"), order)
    assert_span_tree(span("reserve", description=re.compile("out of .*")), order)
    message = mismatch(span("reserve", status="error", description="out of paper"), order)
    assert headline(message).endswith("'reserve': status description: expected 'out of paper', got 'out of stock'")
    message = mismatch(span("reserve", description=re.compile("out")), order)
    assert headline(message).endswith(
        "status description: expected /out/ to match the whole value (re.fullmatch), got 'out of stock' "
        "(it matches only part of it)"
    )


def test_a_description_on_a_span_without_one_reports_none(order: InMemorySpanExporter) -> None:
    message = mismatch(span("charge", description="declined"), order)
    assert headline(message).endswith("'charge': status description: expected 'declined', got None")


def test_bad_kind_and_status_values_are_rejected_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"^kind='sideways' is not a span kind; use a SpanKind or one of: internal, "):
        span("x", kind="sideways")
    with pytest.raises(ValueError, match="kind=2 is not a span kind"):
        span("x", kind=2)
    with pytest.raises(ValueError, match=r"^status='failed' is not a span status; .* OK, ERROR, UNSET$"):
        span("x", status="failed")


# --- attributes ----------------------------------------------------------------------------------


def test_attributes_are_a_subset_match(order: InMemorySpanExporter) -> None:
    assert_span_tree(span("charge", attributes={"payment.status": "declined"}), order)
    assert_span_tree(span("charge", attributes={}), order)
    assert_span_tree(span("charge", attributes={"payment.status": "declined", "amount": 3}), order)


def test_a_wrong_attribute_value_is_the_first_difference(order: InMemorySpanExporter) -> None:
    expected = span("run/process_order", children=[span("charge", attributes={"payment.status": "ok"})])
    message = mismatch(expected, order)
    assert headline(message) == (
        "span tree does not match: at 'run/process_order' > 'charge': "
        "attributes['payment.status']: expected 'ok', got 'declined'"
    )
    assert marked(message) == ["├── charge    <-- attributes['payment.status']: expected 'ok', got 'declined'"]


def test_a_literal_must_have_the_same_type_to_be_equal(order: InMemorySpanExporter) -> None:
    message = mismatch(span("run/process_order", attributes={"order.id": "42"}), order)
    assert headline(message).endswith("attributes['order.id']: expected '42', got 42")


def test_a_missing_attribute_is_named(order: InMemorySpanExporter) -> None:
    message = mismatch(span("charge", attributes={"payment.method": "card"}), order)
    assert headline(message).endswith(
        "attributes['payment.method']: expected 'card', but the span has no such attribute"
    )


def test_none_means_the_attribute_is_absent(order: InMemorySpanExporter) -> None:
    assert_span_tree(span("charge", attributes={"payment.method": None}), order)
    message = mismatch(span("charge", attributes={"payment.status": None}), order)
    assert headline(message).endswith("attributes['payment.status']: expected absent, got 'declined'")


def test_a_list_matches_the_tuple_otel_stores(order: InMemorySpanExporter) -> None:
    assert_span_tree(span("charge", attributes={"tags": ["card", "visa"]}), order)
    assert_span_tree(span("charge", attributes={"tags": ("card", "visa")}), order)
    message = mismatch(span("charge", attributes={"tags": ["card", "amex"]}), order)
    assert headline(message).endswith("attributes['tags']: expected ['card', 'amex'], got ('card', 'visa')")
    mismatch(span("charge", attributes={"tags": ["card"]}), order)


def test_a_pattern_value_must_fullmatch_a_string(order: InMemorySpanExporter) -> None:
    assert_span_tree(span("charge", attributes={"payment.status": re.compile("decl.*")}), order)
    message = mismatch(span("charge", attributes={"payment.status": re.compile("decl")}), order)
    assert headline(message).endswith(
        "attributes['payment.status']: expected /decl/ to match the whole value (re.fullmatch), got 'declined' "
        "(it matches only part of it)"
    )
    message = mismatch(span("charge", attributes={"amount": re.compile("3")}), order)
    assert headline(message).endswith(
        "attributes['amount']: expected /3/ to match the whole value (re.fullmatch), got 3"
    )


def test_a_predicate_is_called_with_the_value(order: InMemorySpanExporter) -> None:
    assert_span_tree(span("charge", attributes={"amount": lambda v: v > 2}), order)
    message = mismatch(span("charge", attributes={"amount": lambda v: v > 5}), order)
    assert headline(message).endswith("attributes['amount']: <lambda> returned false for 3")

    def is_even(value: int) -> bool:
        return value % 2 == 0

    message = mismatch(span("charge", attributes={"amount": is_even}), order)
    assert headline(message).endswith("attributes['amount']: <function is_even> returned false for 3")


def test_a_predicate_that_raises_does_not_match_and_says_why(order: InMemorySpanExporter) -> None:
    message = mismatch(span("charge", attributes={"amount": lambda v: v.startswith("3")}), order)
    assert headline(message).endswith(
        "attributes['amount']: <lambda> raised AttributeError: 'int' object has no attribute 'startswith' for 3"
    )


def test_a_predicate_that_raises_on_another_span_does_not_stop_the_search(
    make_span: MakeSpan, exporter: InMemorySpanExporter
) -> None:
    root = make_span("root")
    make_span("item", root, at=1, attributes={"key": 7})
    make_span("item", root, at=2, attributes={"key": "k-7"})
    assert_span_tree(span("root", children=[span("item", attributes={"key": lambda v: v.startswith("k-")})]), exporter)


def test_dirty_equals_values(order: InMemorySpanExporter) -> None:
    assert_span_tree(span("charge", attributes={"amount": IsInt, "payment.status": IsStr}), order)
    assert_span_tree(span("charge", attributes={"amount": IsPositiveInt, "tags": IsTuple("card", "visa")}), order)
    message = mismatch(span("charge", attributes={"amount": IsInt(gt=4)}), order)
    assert headline(message).endswith("attributes['amount']: expected IsInt(gt=4), got 3")


def test_attributes_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match=r"attributes must be a mapping .*got \[\('a', 1\)\]"):
        span("x", attributes=[("a", 1)])  # type: ignore[arg-type]


# --- events and exceptions -----------------------------------------------------------------------


@pytest.fixture(name="charged")
def _charged(make_span: MakeSpan, exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """run/charge with events 'started', 'retry' {attempt=2} and a recorded PaymentError."""
    make_span(
        "run/charge",
        events=["started", ("retry", {"attempt": 2, "reason": "timeout"})],
        exception=PaymentError("card declined"),
        status=(StatusCode.ERROR, "PaymentError: card declined"),
    )
    make_span("cleanup", at=1, exception=ValueError("bad state"))
    make_span("quiet", at=2)
    return exporter


def test_events_by_name_or_with_an_attribute_subset(charged: InMemorySpanExporter) -> None:
    assert_span_tree(span("run/charge", events=["started", "retry"]), charged)
    assert_span_tree(span("run/charge", events=[{"name": "retry", "attributes": {"attempt": 2}}]), charged)
    assert_span_tree(span("run/charge", events=[re.compile("ret.*"), {"name": "started"}]), charged)


def test_a_missing_event_lists_the_events_there_are(charged: InMemorySpanExporter) -> None:
    message = mismatch(span("run/charge", events=["started", "finished"]), charged)
    assert headline(message) == (
        "span tree does not match: at 'run/charge': "
        "events: expected an event 'finished', got ['started', 'retry', 'exception']"
    )


def test_an_event_with_other_attributes_does_not_count(charged: InMemorySpanExporter) -> None:
    message = mismatch(span("run/charge", events=[{"name": "retry", "attributes": {"attempt": 3}}]), charged)
    assert headline(message).endswith("at 'run/charge': event 'retry': attributes['attempt']: expected 3, got 2")


def test_a_span_without_events(charged: InMemorySpanExporter) -> None:
    message = mismatch(span("quiet", events=["started"]), charged)
    assert headline(message).endswith("at 'quiet': events: expected an event 'started', got no events")


def test_expected_events_are_validated() -> None:
    with pytest.raises(
        ValueError, match=r"unknown key\(s\) 'attrs' in an expected event; valid keys: name, attributes"
    ):
        span("x", events=[{"name": "retry", "attrs": {}}])
    with pytest.raises(ValueError, match=r"an expected event needs a 'name': \{'attributes': \{\}\}"):
        span("x", events=[{"attributes": {}}])


@pytest.mark.parametrize(
    "exception",
    [
        PaymentError,
        "PaymentError",
        f"{__name__}.PaymentError",
        {"type": PaymentError},
        {"message": "card declined"},
        {"type": "PaymentError", "message": "card declined"},
        {"type": PaymentError, "message": re.compile("card .*")},
    ],
)
def test_exception_by_class_name_or_dict(charged: InMemorySpanExporter, exception: object) -> None:
    assert_span_tree(span("run/charge", exception=exception), charged)


def test_a_builtin_exception_is_recorded_without_its_module(charged: InMemorySpanExporter) -> None:
    assert_span_tree(span("cleanup", exception=ValueError), charged)
    assert_span_tree(span("cleanup", exception="ValueError"), charged)
    message = mismatch(span("cleanup", exception=KeyError), charged)
    assert headline(message).endswith("at 'cleanup': exception: expected KeyError, got ValueError: 'bad state'")


@pytest.mark.parametrize(
    "exception", [Outer.InnerError, "InnerError", "Outer.InnerError", f"{__name__}.Outer.InnerError"]
)
def test_a_nested_exception_class_matches_by_its_qualified_names(
    make_span: MakeSpan, exporter: InMemorySpanExporter, exception: object
) -> None:
    make_span("job", exception=Outer.InnerError("nested"))
    assert_span_tree(span("job", exception=exception), exporter)
    mismatch(span("job", exception="Other.InnerError"), exporter)


def test_a_type_string_matches_only_at_a_dot(charged: InMemorySpanExporter) -> None:
    message = mismatch(span("run/charge", exception="Error"), charged)
    assert headline(message).endswith(
        f"at 'run/charge': exception: expected 'Error', got {__name__}.PaymentError: 'card declined'"
    )


def test_a_wrong_exception_shows_the_recorded_one(charged: InMemorySpanExporter) -> None:
    message = mismatch(span("run/charge", exception=KeyError), charged)
    assert headline(message).endswith(
        f"at 'run/charge': exception: expected KeyError, got {__name__}.PaymentError: 'card declined'"
    )
    message = mismatch(span("run/charge", exception={"type": PaymentError, "message": "expired"}), charged)
    assert headline(message).endswith(
        f"exception: expected PaymentError with message 'expired', got {__name__}.PaymentError: 'card declined'"
    )


def test_an_expected_exception_on_a_span_without_one(charged: InMemorySpanExporter) -> None:
    message = mismatch(span("quiet", exception=PaymentError), charged)
    assert headline(message).endswith("at 'quiet': exception: expected PaymentError, got no exception event")


def test_an_expected_exception_dict_is_validated() -> None:
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'msg' in an expected exception; valid keys: type, message"):
        span("x", exception={"type": KeyError, "msg": "x"})


# --- links ---------------------------------------------------------------------------------------


@pytest.fixture(name="linked")
def _linked(make_span: MakeSpan, exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """Two traces: apply_async/charge [producer], and run/charge [consumer] linking to it, with a child."""
    publish = make_span("apply_async/charge", kind=SpanKind.PRODUCER, attributes={"queue": "payments"})
    run = make_span("run/charge", kind=SpanKind.CONSUMER, at=2, links=[publish])
    make_span("db", run, at=3)
    return exporter


@pytest.mark.parametrize(
    "target",
    [
        "apply_async/charge",
        span("apply_async/charge", kind="producer"),
        {"name": re.compile("apply_async/.*"), "attributes": {"queue": "payments"}},
    ],
)
def test_a_link_across_traces_in_any_form(linked: InMemorySpanExporter, target: object) -> None:
    assert_span_tree(span("run/charge", links=[target]), linked)


def test_the_link_target_is_checked_in_full(linked: InMemorySpanExporter) -> None:
    message = mismatch(span("run/charge", links=[span("apply_async/charge", attributes={"queue": "refunds"})]), linked)
    assert headline(message) == (
        "span tree does not match: at 'run/charge': expected a link to 'apply_async/charge', "
        "it links to 'apply_async/charge'"
    )
    assert marked(message) == [
        """run/charge [consumer, link "apply_async/charge"]    <-- expected a link to 'apply_async/charge', """
        "it links to 'apply_async/charge'"
    ]


def test_a_link_to_another_span(linked: InMemorySpanExporter) -> None:
    message = mismatch(span("run/charge", links=["apply_async/refund"]), linked)
    assert headline(message).endswith(
        "at 'run/charge': expected a link to 'apply_async/refund', it links to 'apply_async/charge'"
    )


def test_a_span_without_links(linked: InMemorySpanExporter) -> None:
    message = mismatch(span("db", links=["apply_async/charge"]), linked)
    assert headline(message).endswith(
        "at 'run/charge' > 'db': expected a link to 'apply_async/charge', it links to nothing captured"
    )


def test_a_link_to_a_span_that_was_not_captured(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    publish = make_span("apply_async/charge")
    make_span("run/charge", at=1, links=[publish])
    spans = [s for s in exporter.get_finished_spans() if s.name == "run/charge"]
    assert render(spans) == "run/charge [link (not captured)]"
    message = mismatch(span("run/charge", links=["apply_async/charge"]), spans)
    assert headline(message).endswith("expected a link to 'apply_async/charge', it links to nothing captured")


# --- children and assignment ---------------------------------------------------------------------


def test_children_match_in_any_order_and_extra_children_are_allowed(order: InMemorySpanExporter) -> None:
    assert_span_tree(span("run/process_order", children=[span("reserve"), span("charge")]), order)
    assert_span_tree(span("run/process_order", children=[span("reserve")]), order)
    assert_span_tree(span("run/process_order", children=["reserve", {"name": "charge"}]), order)


def test_a_missing_child_is_marked_on_its_parent(order: InMemorySpanExporter) -> None:
    message = mismatch(span("run/process_order", children=[span("charge"), span("send_confirmation")]), order)
    assert headline(message) == (
        "span tree does not match: missing child matching 'send_confirmation' under 'run/process_order'; "
        "its children are 'charge', 'reserve'"
    )
    assert marked(message) == ["run/process_order [consumer]    <-- missing child matching 'send_confirmation'"]


def test_a_missing_child_of_a_leaf(order: InMemorySpanExporter) -> None:
    message = mismatch(span("charge", children=["authorize"]), order)
    assert headline(message).endswith(
        "missing child matching 'authorize' under 'run/process_order' > 'charge'; it has no children"
    )
    assert marked(message) == ["├── charge    <-- missing child matching 'authorize'"]


def test_the_difference_is_found_deep_in_the_tree(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("root")
    middle = make_span("middle", root, at=1)
    make_span("leaf", middle, at=2, attributes={"depth": 2})
    make_span("other", root, at=3)
    expected = span("root", children=[span("middle", children=[span("leaf", attributes={"depth": 3})])])
    message = mismatch(expected, exporter)
    assert headline(message).endswith("at 'root' > 'middle' > 'leaf': attributes['depth']: expected 3, got 2")
    assert marked(message) == ["│   └── leaf    <-- attributes['depth']: expected 3, got 2"]


def test_each_expected_child_needs_its_own_span(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("root")
    make_span("item", root, at=1)
    make_span("other", root, at=2)
    assert_span_tree(span("root", children=["item"]), exporter)
    message = mismatch(span("root", children=["item", "item"]), exporter)
    assert headline(message) == "span tree does not match: expected 2 spans matching 'item' under 'root', found 1"
    assert marked(message) == ["root    <-- expected 2 spans matching 'item' under 'root', found 1"]


def test_a_generic_child_listed_first_does_not_steal_the_only_span_a_specific_one_fits(
    make_span: MakeSpan, exporter: InMemorySpanExporter
) -> None:
    root = make_span("root")
    make_span("finalize", root, at=1)
    make_span("item", root, at=2, attributes={"n": 1})
    make_span("item", root, at=3, attributes={"n": 2})
    assert_span_tree(span("root", children=[span(), span("finalize")]), exporter)
    assert_span_tree(span("root", children=[span(), span(), span("finalize")]), exporter)
    assert_span_tree(span("root", children=[span("item"), span("item", attributes={"n": 1})]), exporter)
    assert_span_tree(span("root", children=[span(re.compile("item|finalize")), span("finalize"), span()]), exporter)


def test_an_assignment_that_needs_a_chain_of_reassignments(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("root")
    for at, name in enumerate(["a", "b", "c", "d"], 1):
        make_span(name, root, at=at)
    # First come, first served gives a, b, c to the first three and leaves nothing for 'a'.
    expected = [re.compile("a|b"), re.compile("b|c"), re.compile("c|d"), "a"]
    assert_span_tree(span("root", children=[span(name) for name in expected]), exporter)
    message = mismatch(span("root", children=[span(name) for name in [*expected, "b"]]), exporter)
    assert headline(message) == (
        "span tree does not match: under 'root': 3 expected children (/a|b/, 'a', 'b') need "
        "3 different spans, but only 2 match any of them: 'a', 'b'"
    )


def test_competing_children_name_the_spans_they_compete_for(
    make_span: MakeSpan, exporter: InMemorySpanExporter
) -> None:
    root = make_span("batch")
    for at, name in enumerate(["a1", "a2", "b"], 1):
        make_span(name, root, at=at)
    message = mismatch(span("batch", children=[span("a1"), span(re.compile("a.")), span(re.compile("a."))]), exporter)
    assert headline(message) == (
        "span tree does not match: under 'batch': 3 expected children ('a1', /a./ x2) need 3 different spans, "
        "but only 2 match any of them: 'a1', 'a2'"
    )
    assert marked(message) == [
        "batch    <-- 3 expected children ('a1', /a./ x2) need 3 different spans, but only 2 match any of them: "
        "'a1', 'a2'"
    ]


def test_children_are_matched_with_their_own_subtrees(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("batch")
    first = make_span("job", root, at=1)
    make_span("failed", first, at=2)
    second = make_span("job", root, at=3)
    make_span("succeeded", second, at=4)
    assert_span_tree(
        span("batch", children=[span("job", children=["succeeded"]), span("job", children=["failed"])]), exporter
    )
    message = mismatch(
        span("batch", children=[span("job", children=["succeeded"]), span("job", children=["succeeded"])]), exporter
    )
    assert headline(message).endswith(
        "expected 2 spans matching 'job' under 'batch', found 1; the closest other one "
        "differs: missing child matching 'succeeded' under 'batch' > 'job'; "
        "its children are 'failed'"
    )


# --- count ---------------------------------------------------------------------------------------


@pytest.fixture(name="batch")
def _batch(make_span: MakeSpan, exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """batch > process_chunk_0 {ok=True}, process_chunk_1 {ok=False}, finalize."""
    root = make_span("batch")
    make_span("process_chunk_0", root, at=1, attributes={"ok": True})
    make_span("process_chunk_1", root, at=2, attributes={"ok": False})
    make_span("finalize", root, at=3)
    return exporter


CHUNK = re.compile(r"process_chunk_\d+")


def test_count_is_the_exact_number_of_matching_siblings(batch: InMemorySpanExporter) -> None:
    assert_span_tree(span("batch", children=[span(CHUNK, count=2), span("finalize", count=1)]), batch)
    assert_span_tree(span("batch", children=[span(CHUNK, count=2), "finalize"]), batch, exact=True)


def test_too_few_counted_spans(batch: InMemorySpanExporter) -> None:
    message = mismatch(span("batch", children=[span(CHUNK, count=3)]), batch)
    assert headline(message) == (
        r"span tree does not match: expected 3 spans matching /process_chunk_\d+/ under 'batch', found 2"
    )
    assert marked(message) == [r"batch    <-- expected 3 spans matching /process_chunk_\d+/ under 'batch', found 2"]


def test_too_many_counted_spans(batch: InMemorySpanExporter) -> None:
    message = mismatch(span("batch", children=[span(CHUNK, count=1)]), batch)
    assert headline(message) == (
        r"span tree does not match: expected 1 span matching /process_chunk_\d+/ under 'batch', found 2"
    )


def test_count_zero_asserts_there_is_no_such_child(batch: InMemorySpanExporter) -> None:
    assert_span_tree(span("batch", children=[span("retry", count=0)]), batch)
    assert_span_tree(span("batch", children=[span(CHUNK, attributes={"ok": None}, count=0)]), batch)
    message = mismatch(span("batch", children=[span("finalize", count=0)]), batch)
    assert headline(message) == "span tree does not match: expected 0 spans matching 'finalize' under 'batch', found 1"


def test_a_counted_span_that_fails_a_check_is_shown(batch: InMemorySpanExporter) -> None:
    message = mismatch(span("batch", children=[span(CHUNK, attributes={"ok": True}, count=2)]), batch)
    assert headline(message) == (
        r"span tree does not match: expected 2 spans matching /process_chunk_\d+/ under 'batch', found 1; "
        "the closest other one differs: at 'batch' > 'process_chunk_1': attributes['ok']: expected True, got False"
    )
    assert marked(message) == ["├── process_chunk_1    <-- attributes['ok']: expected True, got False"]


def test_a_count_takes_every_span_it_matches(batch: InMemorySpanExporter) -> None:
    message = mismatch(span("batch", children=[span(CHUNK, count=2), span("process_chunk_0")]), batch)
    assert headline(message) == (
        "span tree does not match: under 'batch': 'process_chunk_0' has no span left: 'process_chunk_0' already "
        r"counted by /process_chunk_\d+/ x2 (a count=N node takes every span it matches)"
    )


def test_count_at_the_root_counts_spans_anywhere(batch: InMemorySpanExporter) -> None:
    assert_span_tree(span(CHUNK, count=2), batch)
    message = mismatch(span(CHUNK, count=3), batch)
    assert headline(message) == (
        r"span tree does not match: expected 3 spans matching /process_chunk_\d+/ in the capture, found 2"
    )


def test_counted_spans_are_matched_with_their_children(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("batch")
    for at in (1, 2):
        make_span("step", make_span("chunk", root, at=at), at=at)
    assert_span_tree(span("batch", children=[span("chunk", count=2, children=["step"])]), exporter)
    message = mismatch(span("batch", children=[span("chunk", count=2, children=["load"])]), exporter)
    assert "expected 2 spans matching 'chunk' under 'batch', found 0" in headline(message)


@pytest.mark.parametrize("count", [-1, True, 1.5, "2"])
def test_count_must_be_a_whole_number(count: object) -> None:
    with pytest.raises(ValueError, match=r"count=.*: expected a whole number of sibling spans, 0 or more"):
        span("x", count=count)  # type: ignore[arg-type]


# --- exact and ordered ---------------------------------------------------------------------------


def test_exact_requires_every_child_at_every_level(order: InMemorySpanExporter) -> None:
    full = span("run/process_order", children=[span("charge"), span("reserve")])
    assert_span_tree(full, order, exact=True)
    message = mismatch(span("run/process_order", children=[span("reserve")]), order, exact=True)
    assert headline(message) == (
        "span tree does not match (exact): unexpected child 'charge' under 'run/process_order' "
        "(exact=True: every span must be expected)"
    )
    assert marked(message) == ["├── charge    <-- unexpected span (exact=True: every span must be expected)"]


def test_exact_leaves_must_be_leaves(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("root")
    make_span("grandchild", make_span("child", root, at=1), at=2)
    assert_span_tree(span("root", children=["child"]), exporter)
    message = mismatch(span("root", children=["child"]), exporter, exact=True)
    assert headline(message) == (
        "span tree does not match (exact): unexpected child 'grandchild' under 'root' > 'child' "
        "(exact=True: every span must be expected)"
    )


def test_exact_expected_roots_are_the_captured_roots(linked: InMemorySpanExporter) -> None:
    assert_span_tree(["apply_async/charge", span("run/charge", children=["db"])], linked, exact=True)
    message = mismatch("apply_async/charge", linked, exact=True)
    assert headline(message) == (
        "span tree does not match (exact): unexpected root span 'run/charge' (exact=True: every span must be expected)"
    )


def test_exact_a_root_that_is_not_a_captured_root(linked: InMemorySpanExporter) -> None:
    assert_span_tree("db", linked)
    message = mismatch("db", linked, exact=True)
    assert headline(message) == (
        "span tree does not match (exact): no captured root span matches 'db'; 'run/charge' > 'db' does, "
        "but it is not a root (exact=True: the expected roots must be the captured roots)"
    )
    assert marked(message) == ["└── db    <-- matches 'db', but is not a root (exact=True)"]


def test_exact_with_identical_siblings(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("root")
    for at in range(3):
        make_span("item", root, at=at)
    assert_span_tree(span("root", children=["item"] * 3), exporter, exact=True)
    assert_span_tree(span("root", children=[span("item", count=3)]), exporter, exact=True)
    message = mismatch(span("root", children=["item"] * 2), exporter, exact=True)
    assert headline(message) == (
        "span tree does not match (exact): unexpected child 'item' under 'root' "
        "(exact=True: every span must be expected)"
    )


@pytest.fixture(name="steps")
def _steps(make_span: MakeSpan, exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """pipeline > extract, transform > (parse, validate), load; started in that order."""
    root = make_span("pipeline")
    make_span("extract", root, at=1)
    transform = make_span("transform", root, at=2)
    make_span("parse", transform, at=3)
    make_span("validate", transform, at=4)
    make_span("load", root, at=5)
    return exporter


def test_ordered_follows_start_order_and_allows_gaps(steps: InMemorySpanExporter) -> None:
    assert_span_tree(span("pipeline", children=["extract", "load"]), steps, ordered=True)
    assert_span_tree(span("pipeline", children=["load", "extract"]), steps)
    message = mismatch(span("pipeline", children=["load", "extract"]), steps, ordered=True)
    assert headline(message) == (
        "span tree does not match (ordered): under 'pipeline': expected 'load', 'extract' in this order, but no "
        "child after child 3 ('load') matches 'extract' (children in start order: 'extract', 'transform', 'load')"
    )
    assert marked(message) == ["pipeline    <-- no child after child 3 ('load') matches 'extract'"]


def test_ordered_applies_at_every_level(steps: InMemorySpanExporter) -> None:
    assert_span_tree(
        span("pipeline", children=[span("transform", children=["parse", "validate"])]), steps, ordered=True
    )
    message = mismatch(
        span("pipeline", children=[span("transform", children=["validate", "parse"])]), steps, ordered=True
    )
    assert headline(message) == (
        "span tree does not match (ordered): under 'pipeline' > 'transform': expected 'validate', 'parse' in this "
        "order, but no child after child 2 ('validate') matches 'parse' (children in start order: 'parse', 'validate')"
    )


def test_exact_and_ordered_need_every_child_in_order(steps: InMemorySpanExporter) -> None:
    tree = span("pipeline", children=["extract", span("transform", children=["parse", "validate"]), "load"])
    assert_span_tree(tree, steps, exact=True, ordered=True)
    message = mismatch(span("pipeline", children=["extract", "load"]), steps, exact=True, ordered=True)
    assert headline(message) == (
        "span tree does not match (exact, ordered): unexpected child 'transform' under 'pipeline' "
        "(exact=True: every span must be expected)"
    )
    swapped = span("pipeline", children=["extract", "load", span("transform", children=["parse", "validate"])])
    message = mismatch(swapped, steps, exact=True, ordered=True)
    assert headline(message).startswith(
        "span tree does not match (exact, ordered): under 'pipeline': expected 'extract', 'load', 'transform' in this "
        "order, but no child after child 3 ('load') matches 'transform'"
    )


def test_ordered_with_a_count(batch: InMemorySpanExporter) -> None:
    assert_span_tree(span("batch", children=[span(CHUNK, count=2), "finalize"]), batch, ordered=True)
    message = mismatch(span("batch", children=["finalize", span(CHUNK, count=2)]), batch, ordered=True)
    assert r"no child after child 3 ('finalize') matches /process_chunk_\d+/" in headline(message)


def test_siblings_that_start_together_are_ordered_by_name(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("root")
    make_span("beta", root, at=1)
    make_span("alpha", root, at=1)
    assert_span_tree(span("root", children=["alpha", "beta"]), exporter, ordered=True)
    mismatch(span("root", children=["beta", "alpha"]), exporter, ordered=True)


# --- roots ---------------------------------------------------------------------------------------


def test_an_expected_root_may_match_any_captured_span(steps: InMemorySpanExporter) -> None:
    assert_span_tree(span("transform", children=["validate"]), steps)
    assert_span_tree(["parse", "load", "pipeline"], steps)


def test_expected_roots_need_distinct_spans(steps: InMemorySpanExporter) -> None:
    message = mismatch(["load", "load"], steps)
    assert headline(message) == "span tree does not match: expected 2 spans matching 'load' in the capture, found 1"


def test_expected_roots_in_several_traces(linked: InMemorySpanExporter) -> None:
    assert_span_tree([span("run/charge", links=["apply_async/charge"]), "apply_async/charge"], linked)
    message = mismatch(["apply_async/charge", "apply_async/refund"], linked)
    assert headline(message) == (
        "span tree does not match: no captured span matches 'apply_async/refund' "
        "(similar names captured: 'apply_async/charge')"
    )
    assert marked(message) == []


def test_nothing_captured(exporter: InMemorySpanExporter) -> None:
    message = mismatch("root", exporter)
    assert message == (
        "span tree does not match: no captured span matches 'root'\n"
        "\n"
        "expected:\n"
        "  root\n"
        "\n"
        "captured (0 spans in 0 traces):\n"
        "  (no spans captured)"
    )


# --- forms ---------------------------------------------------------------------------------------


def test_the_dict_form_takes_span_keys(order: InMemorySpanExporter) -> None:
    expected = {
        "name": "run/process_order",
        "kind": "consumer",
        "attributes": {"order.id": 42},
        "children": [
            {"name": "charge", "attributes": {"payment.status": "declined"}},
            {"name": "reserve", "status": "error", "description": "out of stock", "count": 1},
        ],
    }
    assert_span_tree(expected, order, exact=True)
    expected["attributes"] = {"order.id": 43}
    message = mismatch(expected, order)
    assert headline(message).endswith("at 'run/process_order': attributes['order.id']: expected 43, got 42")


def test_unknown_dict_keys_are_named() -> None:
    with pytest.raises(ValueError, match=r"^unknown key\(s\) 'kids', 'colour' in an expected span; valid keys: name, "):
        assert_span_tree({"name": "x", "kids": [], "colour": "red"}, [])
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'attribute' in an expected span"):
        assert_span_tree(span("x", children=[{"name": "y", "attribute": {}}]), [])


def test_forms_mix_at_every_level(order: InMemorySpanExporter) -> None:
    tree = span("run/process_order", children=[{"name": "charge"}, "reserve [ERROR]"])
    assert_span_tree(tree, order, exact=True)
    assert_span_tree([tree], order)


@pytest.mark.parametrize("expected", [None, 5, [5]])
def test_other_expectations_are_a_type_error(order: InMemorySpanExporter, expected: object) -> None:
    with pytest.raises(TypeError, match=r"expected a span\(\), a dict or a text tree, got .*5|None"):
        assert_span_tree(expected, order)


def test_an_empty_expectation_is_an_error(order: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match=r"^assert_span_tree\(\) got an empty expectation: give at least one"):
        assert_span_tree([], order)
    with pytest.raises(TextTreeError, match="the text tree is empty"):
        assert_span_tree("  \n# nothing\n", order)


def test_spans_may_be_an_exporter_or_a_list(order: InMemorySpanExporter) -> None:
    assert_span_tree("charge", order)
    assert_span_tree("charge", list(order.get_finished_spans()))
    assert_span_tree("charge", tuple(order.get_finished_spans()))


# --- the failure message -------------------------------------------------------------------------


def test_the_whole_failure_message(order: InMemorySpanExporter) -> None:
    expected = span(
        "run/process_order",
        kind="consumer",
        children=[span("charge", attributes={"payment.status": "ok"}), span("reserve", status="error")],
    )
    with pytest.raises(AssertionError) as excinfo:
        assert_span_tree(expected, order)
    assert str(excinfo.value) == (
        "span tree does not match: at 'run/process_order' > 'charge': "
        "attributes['payment.status']: expected 'ok', got 'declined'\n"
        "\n"
        "expected:\n"
        "  run/process_order [consumer]\n"
        '  ├── charge {payment.status="ok"}\n'
        "  └── reserve [ERROR]\n"
        "\n"
        "captured (3 spans in 1 trace):\n"
        "  run/process_order [consumer]\n"
        "  ├── charge    <-- attributes['payment.status']: expected 'ok', got 'declined'\n"
        '  └── reserve [ERROR "out of stock"]'
    )
    assert isinstance(excinfo.value, SpanTreeMismatch)
    assert excinfo.value.difference.node is not None
    assert excinfo.value.difference.node.name == "charge"


def test_the_expected_section_shows_every_check(order: InMemorySpanExporter) -> None:
    expected = span(
        re.compile("run/.*"),
        status="ok",
        description="fine",
        attributes={"a": 1},
        events=["started"],
        exception=PaymentError,
        links=["apply_async/charge"],
        count=1,
    )
    message = mismatch(expected, order)
    section = message.split("\nexpected:\n", 1)[1].split("\n\n", 1)[0]
    assert section == (
        '  /run/.*/ [OK "fine", link "apply_async/charge", event "started", exception "PaymentError", x1] {a=1}'
    )
    assert repr(parse_text_tree(section.strip())[0]) == repr(replace(expected, exception=ExceptionSpec("PaymentError")))


def test_the_mark_is_right_for_names_with_colons(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("db.query: SELECT")
    make_span("fetch: rows", root, at=1, attributes={"n": 1})
    message = mismatch(span("db.query: SELECT", children=[span("fetch: rows", attributes={"n": 2})]), exporter)
    assert headline(message).endswith("at 'db.query: SELECT' > 'fetch: rows': attributes['n']: expected 2, got 1")
    assert marked(message) == ["└── fetch: rows    <-- attributes['n']: expected 2, got 1"]


def test_a_large_capture_is_clipped_around_the_mark(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("root")
    for n in range(400):
        make_span("item", root, at=n + 1, attributes={"n": n})
    message = mismatch(span("root", children=[span("item", attributes={"n": 200, "extra": 1})]), exporter)
    assert headline(message).endswith(
        "at 'root' > 'item': attributes['extra']: expected 1, but the span has no such attribute"
    )
    lines = message.split("\ncaptured (401 spans in 1 trace):\n", 1)[1].splitlines()
    assert len(lines) == 202
    assert lines[0] == "  ... 101 lines above ..."
    assert lines[101] == "  ├── item    <-- attributes['extra']: expected 1, but the span has no such attribute"
    assert lines[-1] == "  ... 100 lines below ..."
    assert marked(message) == ["├── item    <-- attributes['extra']: expected 1, but the span has no such attribute"]


def test_plugin_frames_are_hidden(order: InMemorySpanExporter) -> None:
    with pytest.raises(AssertionError) as excinfo:
        assert_span_tree("missing", order)
    ours = [entry for entry in excinfo.traceback if "pytest_jobtrace" in str(entry.path)]
    assert ours
    assert all(entry.frame.f_locals.get("__tracebackhide__") for entry in ours)


# --- wide trees ----------------------------------------------------------------------------------


@pytest.fixture(name="wide")
def _wide(make_span: MakeSpan, exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    root = make_span("root")
    for n in range(1000):
        make_span("item", root, at=1, attributes={"n": n})
    return exporter


def test_a_thousand_identical_siblings(wide: InMemorySpanExporter) -> None:
    assert_span_tree(span("root", children=[span("item") for _ in range(1000)]), wide, exact=True)
    assert_span_tree(span("root", children=[span("item") for _ in range(1000)]), wide, ordered=True)
    assert_span_tree(span("root", children=[span("item", count=1000)]), wide, exact=True)
    assert_span_tree(span("root", children=[span("item", attributes={"n": IsInt()}) for _ in range(1000)]), wide)
    assert_span_tree(span("root", children=[span(attributes={"n": lambda v: v >= 0}) for _ in range(1000)]), wide)


def test_a_thousand_distinct_siblings(wide: InMemorySpanExporter) -> None:
    children = [span("item", attributes={"n": n}) for n in reversed(range(1000))]
    assert_span_tree(span("root", children=children), wide, exact=True)
    assert_span_tree(span("root", children=[span() for _ in range(500)] + children[:500]), wide, exact=True)


def test_a_thousand_and_one_identical_expected_children(wide: InMemorySpanExporter) -> None:
    message = mismatch(span("root", children=[span("item") for _ in range(1001)]), wide)
    assert headline(message) == "span tree does not match: expected 1001 spans matching 'item' under 'root', found 1000"
    message = mismatch(span("root", children=[span("item", count=999)]), wide)
    assert headline(message) == "span tree does not match: expected 999 spans matching 'item' under 'root', found 1000"
    message = mismatch(span("root", children=[span("item") for _ in range(999)]), wide, exact=True)
    assert headline(message).startswith("span tree does not match (exact): unexpected child 'item' under 'root'")
    message = mismatch(span("root", children=[span("item", attributes={"n": n}) for n in range(1, 1001)]), wide)
    assert headline(message) == (
        "span tree does not match: nothing under 'root' matches 'item' with {n=1000}; at least 50 spans come equally "
        "close, the first: at 'root' > 'item': attributes['n']: expected 1000, got 0"
    )


def test_equally_close_spans_are_counted(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("root")
    make_span("charge", root, at=1, attributes={"attempt": 1})
    make_span("charge", root, at=2, attributes={"attempt": 2})
    message = mismatch(span("root", children=[span("charge", status="ok")]), exporter)
    assert headline(message) == (
        "span tree does not match: nothing under 'root' matches 'charge' with [OK]; 2 spans come equally close, "
        "the first: at 'root' > 'charge': status: expected OK, got UNSET"
    )
    message = mismatch(span("root", children=[span("charge", attributes={"attempt": 2, "ok": True})]), exporter)
    assert headline(message).endswith(
        "at 'root' > 'charge': attributes['ok']: expected True, but the span has no such attribute"
    )
    assert marked(message) == ["└── charge    <-- attributes['ok']: expected True, but the span has no such attribute"]


# --- render --------------------------------------------------------------------------------------


def test_render_writes_kind_status_and_links(linked: InMemorySpanExporter, make_span: MakeSpan) -> None:
    failed = make_span("retry", at=5, kind=SpanKind.SERVER, status=(StatusCode.ERROR, 'said "no"\ntwice'))
    make_span("ok", failed, at=6, status=StatusCode.OK)
    assert render(linked) == (
        "apply_async/charge [producer]\n\n"
        'run/charge [consumer, link "apply_async/charge"]\n'
        "└── db\n\n"
        'retry [server, ERROR "said \\"no\\"\\ntwice"]\n'
        "└── ok [OK]"
    )


def test_render_orders_traces_parents_and_siblings(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    late = make_span("late-trace", at=10)
    make_span("child", late, at=11)
    early = make_span("early-trace", at=0)
    make_span("second", early, at=3)
    first = make_span("first", early, at=1)
    make_span("grandchild", first, at=2)
    make_span("b-tie", early, at=4)
    make_span("a-tie", early, at=4)
    expected = "\n".join(
        [
            "early-trace",
            "├── first",
            "│   └── grandchild",
            "├── second",
            "├── a-tie",
            "└── b-tie",
            "",
            "late-trace",
            "└── child",
        ]
    )
    spans = list(exporter.get_finished_spans())
    assert render(spans) == expected
    for seed in range(5):
        random.Random(seed).shuffle(spans)
        assert render(spans) == expected


def test_render_of_orphans_and_nothing(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    assert render([]) == "(no spans captured)"
    root = make_span("root")
    make_span("orphan", root, at=1)
    orphans = [s for s in exporter.get_finished_spans() if s.name == "orphan"]
    assert render(orphans) == "orphan"


def test_render_mermaid(linked: InMemorySpanExporter, make_span: MakeSpan) -> None:
    make_span('say "hi" [now]', at=5, status=(StatusCode.ERROR, "boom"))
    # Node ids follow the order the spans ended (make_span ends each span at once, parents first).
    assert render(linked, "mermaid") == (
        "graph TD\n"
        '    subgraph t1 ["trace 1"]\n'
        '        s0["apply_async/charge #91;producer#93;"]\n'
        "    end\n"
        '    subgraph t2 ["trace 2"]\n'
        '        s1["run/charge #91;consumer#93;"]\n'
        '        s2["db"]\n'
        "    end\n"
        '    subgraph t3 ["trace 3"]\n'
        '        s3["say #quot;hi#quot; #91;now#93; #91;ERROR #quot;boom#quot;#93;"]\n'
        "        class s3 error\n"
        "    end\n"
        "    s1 --> s2\n"
        "    s1 -.->|link| s0\n"
        "    classDef error fill:#fdd,stroke:#c00"
    )


def test_predicates_work_for_names_descriptions_and_event_attributes(charged: InMemorySpanExporter) -> None:
    assert_span_tree(span(lambda name: name.startswith("run/")), charged)
    assert_span_tree(span(description=lambda text: "declined" in text), charged)
    assert_span_tree(span(events=[{"name": "retry", "attributes": {"attempt": IsInt(ge=2)}}]), charged)
    message = mismatch(span(lambda name: name.startswith("apply_async/")), charged)
    assert headline(message) == "span tree does not match: no captured span matches <lambda>"
    message = mismatch(span("run/charge", description=lambda text: "expired" in text), charged)
    assert headline(message).endswith("status description: <lambda> returned false for 'PaymentError: card declined'")


def test_two_count_nodes_matching_the_same_sibling(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("root", at=0)
    make_span("a", root, at=1)
    make_span("b", root, at=2)
    make_span("b", root, at=3)
    message = mismatch(span("root", children=[span("a", count=1), span(re.compile("a|b"), count=3)]), exporter)
    assert headline(message).endswith(
        "'a' (count=1) and /a|b/ (count=3) under 'root' both match 'a'; a count= node takes every sibling it "
        "matches, so two of them cannot share one"
    )
    assert "a    <-- matched by both 'a' and /a|b/" in message


def test_booleans_and_numbers_are_different_values(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    make_span("flags", at=0, attributes={"retry": True, "count": 1})
    assert_span_tree(span("flags", attributes={"retry": True, "count": 1.0}), exporter)
    assert headline(mismatch(span("flags", attributes={"retry": 1}), exporter)).endswith(
        "attributes['retry']: expected 1, got True"
    )
    assert headline(mismatch(span("flags", attributes={"count": True}), exporter)).endswith(
        "attributes['count']: expected True, got 1"
    )


def test_exact_marks_every_unexpected_sibling(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    root = make_span("root", at=0)
    for at, name in enumerate("abc", 1):
        make_span(name, root, at=at)
    message = mismatch("root\n  a", exporter, exact=True)
    assert headline(message).endswith(
        "unexpected children 'b', 'c' under 'root' (exact=True: every span must be expected)"
    )
    assert marked(message) == [
        "├── b    <-- unexpected span (exact=True: every span must be expected)",
        "└── c    <-- unexpected span (exact=True: every span must be expected)",
    ]
