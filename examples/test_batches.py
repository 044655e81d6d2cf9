"""BatchProcessor: one process_chunk_N span per 100 items, with the chunk's index and size."""

from __future__ import annotations

import re

from conftest import Post, System
from pytest_jobtrace import assert_span_tree, span


def test_250_items_make_three_chunks(system: System, post: Post) -> None:
    post("/batches", json={"item_ids": list(range(250))})
    system.drain()

    assert_span_tree(
        span(
            "POST /batches",
            children=[
                system.job(
                    "batch_process",
                    queue="batches",
                    outcome="succeeded",
                    children=[
                        span("process_chunk_0", attributes={"chunk.index": 0, "chunk.size": 100}),
                        span("process_chunk_1", attributes={"chunk.index": 1, "chunk.size": 100}),
                        span("process_chunk_2", attributes={"chunk.index": 2, "chunk.size": 50}),
                    ],
                )
            ],
        ),
        ordered=True,
        exact=True,
    )
    # Or without naming each chunk: exactly three spans matching the pattern.
    assert_span_tree(system.job("batch_process", children=[span(re.compile(r"process_chunk_\d+"), count=3)]))


def test_an_exact_multiple_has_no_partial_chunk(system: System, post: Post) -> None:
    post("/batches", json={"item_ids": list(range(200))})
    system.drain()

    chunk = span(re.compile(r"process_chunk_\d+"), attributes={"chunk.size": 100}, count=2)
    assert_span_tree(span("POST /batches", children=[system.job("batch_process", children=[chunk])]), exact=True)
