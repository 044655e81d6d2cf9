"""UserOnboarding: a custom span that enqueues three jobs and says so in an event."""

from __future__ import annotations

from conftest import Post, System
from pytest_jobtrace import JobSpans, assert_span_tree, span


def test_signup_onboards_the_user_with_three_jobs(system: System, post: Post, job_spans: JobSpans) -> None:
    post("/signup", json={"user_id": 42})
    system.drain()

    assert_span_tree(
        span(
            "POST /signup",
            kind="server",
            children=[
                system.job(
                    "user_onboarding",
                    queue="onboarding",
                    outcome="succeeded",
                    children=[
                        span(
                            "onboard_user",
                            attributes={"user.id": 42},
                            events=[{"name": "onboarding_jobs_enqueued", "attributes": {"jobs.count": 3}}],
                            children=[
                                # enqueued inside the custom span: their send spans are its children
                                system.job("send_welcome_email", queue="mailers", children=["deliver_email"]),
                                system.job("create_sample_data", children=["create_sample_project"]),
                                system.job("schedule_follow_up", children=["plan_follow_up"]),
                            ],
                        )
                    ],
                )
            ],
        ),
        ordered=True,  # the three jobs in the order they were enqueued
        exact=True,
    )
    assert [j.outcome for j in job_spans.jobs()] == ["succeeded"] * 4
