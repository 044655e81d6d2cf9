"""The common errors and messages every adapter shares, as the RQ modules use them."""

from __future__ import annotations

from pytest_jobtrace.adapters import JobChainError, JobFailedError, chain_message, failures_message, job_name_matches

__all__ = ["JobChainError", "JobFailedError", "chain_message", "failures_message", "job_name_matches"]
