"""Expectations that must not pass by accident: look-alike exception types, duplicates, bools among ints."""

from __future__ import annotations

import builtins

from conftest import MakeSpan
from helpers import headline, mismatch
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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
