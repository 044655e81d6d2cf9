"""DataImport: one span per row, a bad row recorded as an event, summary attributes, ERROR if any row failed."""

from __future__ import annotations

from conftest import Post, System
from pytest_jobtrace import assert_span_tree, span

ROWS = [{"email": "ada@example.com"}, {"email": "not-an-email"}, {"email": "grace@example.com"}]


def test_a_bad_row_is_an_event_and_marks_the_import(system: System, post: Post) -> None:
    post("/imports", json={"rows": ROWS})
    system.drain()

    row_error = {"name": "row_error", "attributes": {"row.index": 1, "error.message": "invalid email 'not-an-email'"}}
    assert_span_tree(
        span(
            "POST /imports",
            children=[
                # The job itself succeeded: a bad row is the import's business, not a crash.
                system.job(
                    "data_import",
                    queue="imports",
                    attempts=1,
                    outcome="succeeded",
                    children=[
                        span(
                            "import_records",
                            status="error",
                            description="1 of 3 rows failed",
                            attributes={
                                "import.records_processed": 2,
                                "import.errors_count": 1,
                                "import.success_rate": 0.67,
                            },
                            events=[row_error],
                            children=[
                                span("import_row", attributes={"row.index": i}, status="unset") for i in (0, 1, 2)
                            ],
                        )
                    ],
                )
            ],
        ),
        ordered=True,
        exact=True,
    )


def test_a_clean_import_is_not_an_error(system: System, post: Post) -> None:
    post("/imports", json={"rows": [ROWS[0], ROWS[2]]})
    system.drain()

    assert_span_tree(
        system.job(
            "data_import",
            children=[
                span(
                    "import_records",
                    status="unset",
                    attributes={"import.records_processed": 2, "import.errors_count": 0, "import.success_rate": 1.0},
                    events=[],
                    children=[span("import_row", count=2)],
                )
            ],
        )
    )
