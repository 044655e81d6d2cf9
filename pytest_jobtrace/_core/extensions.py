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
import threading

_declared: list[str] = []
_registered: set[str] = set()
_registering: set[str] = set()  # a lookup while a module registers (same thread) must not register it again
_lock = threading.RLock()  # another thread waits until registration is complete, never sees it half done


def declare(module: str) -> None:
    """Name a module whose ``register()`` fills the core's registries; it is imported on first lookup."""
    with _lock:
        if module not in _declared:
            _declared.append(module)


def load() -> None:
    """Register every declared extension not registered yet (cheap once all are)."""
    if len(_registered) == len(_declared):
        return
    with _lock:
        for module in list(_declared):
            if module in _registered or module in _registering:
                continue
            _registering.add(module)
            try:  # a failure shows again on the next lookup, never as a silently missing node type
                importlib.import_module(module).register()
                _registered.add(module)
            finally:
                _registering.discard(module)
