"""Expectations that must not pass by accident: look-alike exception types, duplicates, bools among ints."""

from __future__ import annotations

import builtins
import math
import re

import pytest
from conftest import MakeSpan
from dirty_equals import IsList
from helpers import headline, mismatch
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from pytest_jobtrace import assert_span_tree, span


class ConnectionError(Exception):  # shadows the builtin on purpose
    pass


builtins_connection_error = builtins.ConnectionError


# --- exception types ---------------------------------------------------------------------------------------------


def test_a_local_class_does_not_match_the_builtin_of_the_same_name(
    make_span: MakeSpan, exporter: InMemorySpanExporter
) -> None:
    make_span("fetch", exception=builtins_connection_error("refused"))

    message = mismatch(span("fetch", exception=ConnectionError), exporter)
    assert headline(message).endswith(
        f"at 'fetch': exception: expected {__name__}.ConnectionError, got ConnectionError: 'refused'"
    )
    assert_span_tree(span("fetch", exception=builtins_connection_error), exporter)


def test_the_builtin_does_not_match_a_local_class_of_the_same_name(
    make_span: MakeSpan, exporter: InMemorySpanExporter
) -> None:
    make_span("fetch", exception=ConnectionError("refused"))

    mismatch(span("fetch", exception=builtins_connection_error), exporter)
    assert_span_tree(span("fetch", exception=ConnectionError), exporter)


def test_a_class_matches_a_bare_name_written_by_another_recorder(
    make_span: MakeSpan, exporter: InMemorySpanExporter
) -> None:
    class PaymentError(Exception):
        pass

    make_span("charge", events=[("exception", {"exception.type": "PaymentError", "exception.message": "no"})])
    assert_span_tree(span("charge", exception=PaymentError), exporter)


def test_a_class_does_not_match_another_module_s_class_of_that_name(
    make_span: MakeSpan, exporter: InMemorySpanExporter
) -> None:
    class PaymentError(Exception):
        pass

    make_span("charge", events=[("exception", {"exception.type": "billing.PaymentError"})])
    mismatch(span("charge", exception=PaymentError), exporter)


# --- duplicates need as many matches -------------------------------------------------------------------------------


def one_link(make_span: MakeSpan) -> None:
    send = make_span("send batch", kind=SpanKind.PRODUCER)
    make_span("process batch", kind=SpanKind.CONSUMER, at=1, links=[send])


def test_two_expected_links_need_two_links(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    one_link(make_span)

    message = mismatch(span("process batch", links=["send batch", "send batch"]), exporter)
    assert headline(message).endswith(
        "at 'process batch': expected 2 links ('send batch', 'send batch'), it links to 'send batch'"
    )
    assert_span_tree(span("process batch", links=["send batch"]), exporter)


@pytest.mark.parametrize("exact", [False, True])
def test_two_links_in_a_text_tree_need_two_links(
    make_span: MakeSpan, exporter: InMemorySpanExporter, exact: bool
) -> None:
    one_link(make_span)
    tree = """
        send batch [producer]
        process batch [consumer, link "send batch", link "send batch"]
    """
    message = mismatch(tree, exporter, exact=exact)
    assert "expected 2 links ('send batch', 'send batch'), it links to 'send batch'" in message


def test_two_links_to_two_matching_spans_pass(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    first = make_span("send batch", kind=SpanKind.PRODUCER)
    second = make_span("send batch", kind=SpanKind.PRODUCER, at=1)
    make_span("process batch", at=2, links=[first, second])
    assert_span_tree(span("process batch", links=["send batch", "send batch"]), exporter)


def test_two_expected_events_need_two_events(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    make_span("job", events=["retry", "done"])

    message = mismatch(span("job", events=["retry", "retry"]), exporter)
    assert headline(message).endswith("at 'job': events: expected 2 events 'retry', 1 match, got ['retry', 'done']")
    assert_span_tree(span("job", events=["retry", "done"]), exporter)


def test_overlapping_event_patterns_need_distinct_events(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    make_span("job", events=["retry"])

    message = mismatch(span("job", events=[re.compile("re.*"), "retry"]), exporter)
    assert headline(message).endswith("at 'job': events: expected 2 distinct events [/re.*/, 'retry'], got ['retry']")


def test_events_of_the_same_name_pass_when_there_are_enough(
    make_span: MakeSpan, exporter: InMemorySpanExporter
) -> None:
    make_span("job", events=["retry", "retry", "done"])
    assert_span_tree(span("job", events=["retry", "retry"]), exporter)
    mismatch(span("job", events=["retry", "retry", "retry"]), exporter)


# --- bool and int stay apart in sequences -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual"), [([1, 0], (True, False)), ((1, 0), (True, False)), ([True], (1,)), ([1.0], (True,))]
)
def test_a_sequence_keeps_bool_and_int_apart(
    make_span: MakeSpan, exporter: InMemorySpanExporter, expected: object, actual: object
) -> None:
    make_span("flags", attributes={"values": actual})

    message = mismatch(span("flags", attributes={"values": expected}), exporter)
    assert headline(message).endswith(f"at 'flags': attributes['values']: expected {expected!r}, got {actual!r}")


@pytest.mark.parametrize("expected", [[1, 2], (1, 2), [1, lambda value: value > 1]])
def test_a_sequence_still_matches_item_by_item(
    make_span: MakeSpan, exporter: InMemorySpanExporter, expected: object
) -> None:
    make_span("ints", attributes={"values": (1, 2)})
    assert_span_tree(span("ints", attributes={"values": expected}), exporter)
    mismatch(span("ints", attributes={"values": [1, 2, 3]}), exporter)


# --- messages that said the wrong thing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("predicate", "value", "shown"),
    [(math.isnan, 1.5, "<function isnan>"), (str.isalpha, "abc1", "<function isalpha>")],
)
def test_builtin_functions_and_methods_are_predicates(
    make_span: MakeSpan, exporter: InMemorySpanExporter, predicate: object, value: object, shown: str
) -> None:
    make_span("calc", attributes={"value": value})

    message = mismatch(span("calc", attributes={"value": predicate}), exporter)
    assert headline(message).endswith(f"at 'calc': attributes['value']: {shown} returned false for {value!r}")


def test_builtin_predicates_pass_when_they_hold(make_span: MakeSpan, exporter: InMemorySpanExporter) -> None:
    make_span("calc", attributes={"value": float("nan"), "word": "abc"})
    assert_span_tree(span("calc", attributes={"value": math.isnan, "word": str.isalpha}), exporter)


def test_a_list_matcher_against_a_tuple_attribute_says_otel_stores_tuples(
    make_span: MakeSpan, exporter: InMemorySpanExporter
) -> None:
    make_span("batch", attributes={"ids": (1, 2)})

    message = mismatch(span("batch", attributes={"ids": IsList(1, 2)}), exporter)
    assert headline(message).endswith(
        "at 'batch': attributes['ids']: expected IsList(1, 2), got (1, 2) (a tuple: OpenTelemetry stores sequence "
        "attributes as tuples; it would match as a list)"
    )
    message = mismatch(span("batch", attributes={"ids": IsList(3)}), exporter)
    assert headline(message).endswith("attributes['ids']: expected IsList(3), got (1, 2)")


@pytest.mark.parametrize("events", ["exception", {"name": "exception"}, b"exception"])
def test_a_lone_event_is_not_split_into_characters_or_keys(events: object) -> None:
    with pytest.raises(TypeError) as info:
        span("job", events=events)  # type: ignore[arg-type]
    assert str(info.value) == f"events={events!r}: expected a list of events, e.g. events=[{events!r}]"


def test_bytes_children_are_refused_as_bytes() -> None:
    with pytest.raises(TypeError) as info:
        span("job", children=b"x")
    assert str(info.value) == "expected a span(), a dict or a text tree, got bytes: b'x'"
