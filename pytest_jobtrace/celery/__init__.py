"""The Celery adapter: ``celery_jobs`` runs Celery tasks through Celery's own publish and worker code paths."""

from __future__ import annotations

from pytest_jobtrace.celery._runtime import CeleryJobs
from pytest_jobtrace.celery._worker import UnregisteredTaskError

__all__ = ["CeleryJobs", "UnregisteredTaskError"]
