"""The layers above the core that extend it, loaded on the core's first lookup.

The core knows spans only. The job layer adds ``job`` nodes (text-tree lines and dict keys), the
``"jobs"`` render format, notes on failures and the adapters' volatile attribute keys by filling the
core's registries (``texttree.LINE_KINDS``, ``parse.DICT_BUILDERS``, ``render.FORMATS``,
``render.VOLATILE_SOURCES``, ``check.NOTES``). ``pytest_jobtrace/__init__.py`` declares the module that
does so, by name: declaring imports nothing, so ``pytest_jobtrace.rq.instrumentation`` in production
still loads neither the core nor pytest; and every lookup in those registries calls :func:`load` first,
so text trees with ``job`` lines work in any script, not only under the pytest plugin.
"""

from __future__ import annotations

import importlib

_declared: list[str] = []
_loaded: set[str] = set()


def declare(module: str) -> None:
    """Name a module whose ``register()`` fills the core's registries; it is imported on first lookup."""
    if module not in _declared:
        _declared.append(module)


def load() -> None:
    """Register every declared extension not registered yet (cheap once all are)."""
    if len(_loaded) == len(_declared):
        return
    for module in _declared:
        if module not in _loaded:
            _loaded.add(module)  # first: a lookup while it registers must not register it again
            try:
                importlib.import_module(module).register()
            except BaseException:
                _loaded.discard(module)  # a failure shows again on the next lookup, never as a missing node type
                raise
