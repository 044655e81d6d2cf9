"""A batch job that works in chunks: counted siblings, patterns, and a chunk that fails."""

from __future__ import annotations

import re

import pytest

from pytest_jobtrace import JobSpans, assert_span_tree, job, span
from pytest_jobtrace.builtin import JobRuntime
from shop import web

ROWS = [{"sku": f"SKU-{n}"} for n in range(5)]


def test_one_span_per_chunk(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    web.handle("POST", "/products/import", rows=ROWS)
    builtin_jobs.drain()

    assert_span_tree(
        """
        process imports [consumer]
          /process_chunk_\\d+/ [x3]
        """,
        exact=False,
    )
    assert_span_tree(
        job("ImportProductsJob", children=[span(re.compile(r"process_chunk_\d+"), count=3)]),
    )
    assert_span_tree(
        span("process imports", children=["process_chunk_0", "process_chunk_1", "process_chunk_2"]),
        ordered=True,
    )
    assert_span_tree(
        span("process imports", children=[span("process_chunk_2", attributes={"chunk.rows": 1})]),
    )


@pytest.mark.jobtrace(expect_failures=True)
def test_a_bad_row_fails_its_chunk(job_spans: JobSpans, builtin_jobs: JobRuntime) -> None:
    rows = [*ROWS[:3], {"name": "no sku"}]
    web.handle("POST", "/products/import", rows=rows)
    builtin_jobs.drain()

    assert_span_tree(
        job(
            "ImportProductsJob",
            outcome="failed",
            children=[
                span("process_chunk_0", status="unset"),
                span("process_chunk_1", exception={"type": ValueError, "message": re.compile("row without a sku.*")}),
            ],
        )
    )
