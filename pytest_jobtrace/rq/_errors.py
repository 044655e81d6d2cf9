"""The common errors and messages, from where the core keeps them."""

from __future__ import annotations

from pytest_jobtrace._jobs.views import name_matches as job_name_matches
from pytest_jobtrace.builtin._model import JobChainError, JobFailedError, chain_message, failures_message

__all__ = ["JobChainError", "JobFailedError", "chain_message", "failures_message", "job_name_matches"]
