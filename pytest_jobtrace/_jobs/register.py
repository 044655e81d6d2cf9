"""The job layer's entries in the core's registries.

``pytest_jobtrace/__init__.py`` declares this module to the core (``_core/extensions.py``), which calls
:func:`register` on its first lookup, in any script: no import order, pytest plugin or side effect of
importing ``job`` is needed for ``job ...`` lines, ``{"job": ...}`` dicts and ``render("jobs")``.
"""

from __future__ import annotations

from pytest_jobtrace._core import check, diagnose, parse, render, texttree
from pytest_jobtrace._jobs.folded import adapters_volatile_keys, pending_notes, render_jobs
from pytest_jobtrace._jobs.match import JOB_LINE, job_from_dict, job_scope


def register() -> None:
    texttree.LINE_KINDS["job"] = JOB_LINE
    parse.DICT_BUILDERS["job"] = job_from_dict
    render.FORMATS["jobs"] = render_jobs
    diagnose.SCOPES["job"] = job_scope
    if adapters_volatile_keys not in render.VOLATILE_SOURCES:
        render.VOLATILE_SOURCES.append(adapters_volatile_keys)
    if pending_notes not in check.NOTES:
        check.NOTES.append(pending_notes)
