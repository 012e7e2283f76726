"""rnn_engine imports in one direction (nn <- models <- generation): no module imports itself back through
others, counting function-local imports too, and the generation package has no function-local imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "rnn_engine"


def _module(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported rnn_engine module, imported inside a function) for every import in `path`."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
             for n in ast.walk(f)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            for alias in node.names:  # `from . import cells` names a module
                sub = f"{target}.{alias.name}"
                out.append((sub if (ENGINE.parent / (sub.replace(".", "/") + ".py")).exists() else target,
                            id(node) in local))
        elif isinstance(node, ast.Import):
            out += [(a.name, id(node) in local) for a in node.names]
    return [(m, loc) for m, loc in out if m.startswith("rnn_engine")]


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in ENGINE.rglob("*.py")}
    return {m: {t for t, _ in _imports(p) if t in modules and t != m} for m, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def _strip_packages(graph):
    """Drop the edges a module has to its own package's __init__ re-exports (a package importing its
    submodules is not a cycle with them)."""
    return {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}


def test_rnn_engine_has_no_import_cycle_even_through_function_local_imports():
    cycle = _cycle(_strip_packages(_graph()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_models_do_not_import_generation_and_generation_has_no_function_local_imports():
    for path in (ENGINE / "models").rglob("*.py"):
        assert not [m for m, _ in _imports(path) if m.startswith("rnn_engine.generat")], path
    for path in (ENGINE / "generation").rglob("*.py"):
        assert not [m for m, local in _imports(path) if local], path


@pytest.mark.parametrize("first", ["rnn_engine.generation", "rnn_engine.generation.request",
                                   "rnn_engine.generation.plan", "rnn_engine.batched_sampler",
                                   "rnn_engine.batched", "rnn_engine.generate", "rnn_engine.models.predict"])
def test_each_generation_module_imports_first_in_a_fresh_interpreter(first):
    code = f"import {first}; import rnn_engine.generation, rnn_engine.model"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ENGINE.parent)
