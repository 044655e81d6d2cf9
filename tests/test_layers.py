"""The layers: the core stands on its own, the job layer on the core, adapters on the toolkit alone.

Every import statement of every module is read with ``ast`` (those inside functions and under
``if TYPE_CHECKING:`` too, relative ones resolved), so that a lazy import cannot hide a wrong dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_jobtrace

PACKAGE = Path(pytest_jobtrace.__file__).parent

ADAPTER_PACKAGES = ("builtin", "celery", "rq")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, by absolute name; ``from x import y`` counts as ``x.y`` when ``x.y``
    is a module of the package (a submodule import), else as ``x``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: sorted(set(imports_of(path))) for name, path in MODULES.items()}


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def offences(allowed: dict[str, tuple[str, ...]]) -> list[str]:
    """``module -> imported`` for every import of pytest_jobtrace outside what each layer may import."""
    found = []
    for module, imported in GRAPH.items():
        for layer, may in allowed.items():
            if not inside(module, layer):
                continue
            for target in imported:
                if inside(target, "pytest_jobtrace") and not any(
                    target == ok or (ok != "pytest_jobtrace" and inside(target, ok)) for ok in may
                ):
                    found.append(f"{module} -> {target}")
    return found


def test_the_core_imports_nothing_above_it() -> None:
    wrong = offences({"pytest_jobtrace._core": ("pytest_jobtrace._core",)})
    assert not wrong, "the core imports from layers above it:\n" + "\n".join(wrong)


def test_the_job_layer_imports_only_the_core_and_itself() -> None:
    wrong = offences({"pytest_jobtrace._jobs": ("pytest_jobtrace._core", "pytest_jobtrace._jobs")})
    assert not wrong, "the job layer imports from layers above it:\n" + "\n".join(wrong)


def test_live_mode_imports_only_the_job_layer_the_core_and_itself() -> None:
    # The receiver and its routing are part of the job layer's side: no adapter, no plugin, no reports.
    may = ("pytest_jobtrace._core", "pytest_jobtrace._jobs", "pytest_jobtrace._live")
    wrong = offences({"pytest_jobtrace._live": may})
    assert not wrong, "live mode imports from layers it must not:\n" + "\n".join(wrong)
    assert "pytest_jobtrace._live.routing" in GRAPH["pytest_jobtrace._live.receiver"]  # the walker sees it


def test_adapters_import_only_the_toolkit_the_public_api_and_their_own_package() -> None:
    wrong = [
        line
        for name in ADAPTER_PACKAGES
        for line in offences(
            {
                f"pytest_jobtrace.{name}": (
                    "pytest_jobtrace.adapters",
                    "pytest_jobtrace",
                    f"pytest_jobtrace.{name}",
                )
            }
        )
    ]
    assert not wrong, "adapters import private modules (use pytest_jobtrace.adapters):\n" + "\n".join(wrong)


def test_the_walker_sees_the_imports() -> None:
    # So that the checks above cannot pass for want of anything to check.
    assert len(MODULES) >= 60
    assert "pytest_jobtrace._core.forest" in GRAPH["pytest_jobtrace._core.render"]
    assert "pytest_jobtrace.adapters" in GRAPH["pytest_jobtrace.rq._names"]
    # relative, in a function, under TYPE_CHECKING: all three forms are read
    assert "pytest_jobtrace.celery._runtime" in GRAPH["pytest_jobtrace.celery._adapter"]  # in activate()
    assert "pytest_jobtrace._jobs.protocol" in GRAPH["pytest_jobtrace.adapters"]  # under TYPE_CHECKING


def test_the_checks_name_each_offending_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pytest_jobtrace" / "_core").mkdir(parents=True)
    (tmp_path / "pytest_jobtrace" / "__init__.py").write_text("")
    (tmp_path / "pytest_jobtrace" / "_core" / "__init__.py").write_text("")
    (tmp_path / "pytest_jobtrace" / "_core" / "bad.py").write_text(
        textwrap.dedent(
            """
            from typing import TYPE_CHECKING
            from . import forest
            if TYPE_CHECKING:
                from pytest_jobtrace.adapters import JobAdapter
            def later():
                from .._jobs import views
                import pytest_jobtrace.plugin
            """
        )
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "pytest_jobtrace")
    path = tmp_path / "pytest_jobtrace" / "_core" / "bad.py"
    monkeypatch.setitem(MODULES, "pytest_jobtrace._jobs.views", path)
    monkeypatch.setattr(sys.modules[__name__], "GRAPH", {"pytest_jobtrace._core.bad": sorted(set(imports_of(path)))})
    wrong = offences({"pytest_jobtrace._core": ("pytest_jobtrace._core",)})
    assert wrong == [
        "pytest_jobtrace._core.bad -> pytest_jobtrace._jobs.views",
        "pytest_jobtrace._core.bad -> pytest_jobtrace.adapters",
        "pytest_jobtrace._core.bad -> pytest_jobtrace.plugin",
    ]


SCRIPT = """
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import sys

from pytest_jobtrace import assert_span_tree, render, span
from pytest_jobtrace.builtin import Job, JobRuntime

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))


class Foo(Job):
    def perform(self):
        pass


with JobRuntime(tracer_provider=provider) as rt:
    with provider.get_tracer("shop").start_as_current_span("root"):
        Foo.perform_later()
    rt.drain()

name = Foo.__module__ + ".Foo"
assert_span_tree(span("root", children=f"job {name} [attempts 1]"), exporter)
assert_span_tree(span("root", children=[{"job": name, "attempts": 1}]), exporter)
folded = render(exporter, "jobs")
assert_span_tree(folded, exporter)
print(folded)
print(render(exporter, details=True))
print("plugin loaded:", "pytest_jobtrace.plugin" in sys.modules)
"""


@pytest.mark.parametrize(
    "expected",
    [
        'span("root", children="job shop.Foo [attempts 2]")',
        'span("root", children=[{"job": "shop.Foo", "attempts": 2}])',
    ],
    ids=["text", "dict"],
)
def test_span_reads_job_nodes_with_nothing_else_imported(expected: str) -> None:
    # Before, `job` lines and dicts were known only once something had imported the job layer's matcher.
    code = f"from pytest_jobtrace import span\nprint(repr({expected}.children[0]))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ExpectedJob(name='shop.Foo', queue=None, attempts=2,")


def test_text_trees_and_dicts_with_jobs_work_in_a_plain_script(tmp_path: Path) -> None:
    # No pytest, no plugin: the job layer registers with the core because pytest_jobtrace was imported.
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 'job __main__.Foo [queue "default", attempts 1, outcome "succeeded"]' in done.stdout
    assert "messaging.message.id=*" in done.stdout  # the built-in adapter's volatile key, declared there
    assert "plugin loaded: False" in done.stdout


def test_the_toolkit_loads_neither_pytest_nor_the_core_until_asked() -> None:
    code = (
        "import sys\n"
        "from pytest_jobtrace.adapters import JobSpanInfo, MessagingJobSpans\n"
        "print(sorted(m for m in ('pytest', 'pytest_jobtrace._core.check', 'pytest_jobtrace._jobs.views')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_declared_extension_registers_once_and_a_failing_one_fails_again(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from pytest_jobtrace._core import extensions

    calls = []

    def register() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("broken extension")

    module = types.ModuleType("fake_extension")
    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_extension", module)
    monkeypatch.setattr(extensions, "_declared", [*extensions._declared])
    monkeypatch.setattr(extensions, "_registered", set(extensions._registered))
    extensions.declare("fake_extension")
    extensions.declare("fake_extension")
    with pytest.raises(RuntimeError, match="broken extension"):
        extensions.load()
    extensions.load()
    extensions.load()
    assert calls == [0, 1]
