"""How a job is named in expectations: its full name, its last component, a pattern, or the job itself."""

from __future__ import annotations

import re

from pytest_jobtrace._core.values import value_matches


def short_name(name: str) -> str:
    """``shop.jobs.ProcessOrderJob`` -> ``ProcessOrderJob``; ``tasks:process`` -> ``process``."""
    return re.split(r"[.:]", name)[-1]


def job_name_matches(expected: object, job_name: str) -> bool:
    """Whether ``expected`` names the job called ``job_name``.

    A string matches the full name or its last dotted component; a class or function matches through its
    module and qualified name (a Celery task object through its ``name``); anything else (a regex, a
    dirty-equals matcher) is matched against both the full and the short name.
    """
    if isinstance(expected, str):
        return expected in (job_name, short_name(job_name))
    task_name = getattr(expected, "name", None)
    if isinstance(task_name, str) and not isinstance(expected, type):
        return job_name_matches(task_name, job_name)
    qualname = getattr(expected, "__qualname__", None)
    if isinstance(qualname, str) and hasattr(expected, "__module__"):
        return job_name == f"{expected.__module__}.{qualname}"
    return value_matches(expected, job_name) or value_matches(expected, short_name(job_name))
