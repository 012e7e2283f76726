"""The package layout of docs/DESIGN.md holds: the engine imports no gRPC, server or CLI code, its
sub-packages depend in one direction (nn <- models <- generation <- server), no module-level import cycle;
DESIGN.md names every file, and no module is over 350 lines without the reason in its docstring."""

import ast
from pathlib import Path

import rnn_engine

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_ENGINE = ("grpc", "google.protobuf", "google.rpc", "server", "client", "click", "rich", "rnn")
# a module in the left package may not import from the right ones
DIRECTION = {
    "rnn_engine.nn": ("rnn_engine.models", "rnn_engine.generation", "rnn_engine.training",
                      "rnn_engine.io",
                      "rnn_engine.model", "rnn_engine.generate", "rnn_engine.optim", "rnn_engine.data"),
    "rnn_engine.optim": ("rnn_engine.models", "rnn_engine.generation", "rnn_engine.training",
                         "rnn_engine.io"),
    "rnn_engine.data": ("rnn_engine.models", "rnn_engine.generation", "rnn_engine.training", "rnn_engine.io"),
    "rnn_engine.models": ("rnn_engine.generation", "rnn_engine.training", "rnn_engine.generate"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _canonical(name: str) -> str:
    """rnn_engine.<old name> -> the module it now is (rnn_engine/__init__.py MOVED)."""
    prefix, _, rest = name.partition("rnn_engine.")
    head, _, tail = rest.partition(".")
    if not prefix and head in rnn_engine.MOVED:
        return "rnn_engine." + rnn_engine.MOVED[head] + (f".{tail}" if tail else "")
    return name


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """Absolute names of the modules `path` imports (`from . import x` counts as importing x)."""
    tree = ast.parse(path.read_text())
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            mod = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            found.add(mod)
            for a in node.names:  # `from pkg import submodule`
                if (ROOT / Path(*f"{mod}.{a.name}".split("."))).with_suffix(".py").exists() or \
                        (ROOT / Path(*f"{mod}.{a.name}".split(".")) / "__init__.py").exists():
                    found.add(f"{mod}.{a.name}")
    return {_canonical(n) for n in found}


ENGINE_FILES = sorted((ROOT / "rnn_engine").rglob("*.py"))


def test_the_engine_imports_no_grpc_server_or_cli_code():
    bad = [(_module_name(p), n) for p in ENGINE_FILES for n in _imports(p, top_level_only=False)
           if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_IN_ENGINE)]
    assert bad == []


def test_only_the_exporter_imports_onnx():
    bad = [_module_name(p) for p in ENGINE_FILES if "onnx_export" not in p.parts
           and any(n == "onnx" or n.startswith("onnx.") for n in _imports(p, top_level_only=False))]
    assert bad == []


KNOWN_EXCEPTIONS: set[str] = set()  # modules allowed to break the direction (none)


def test_sub_packages_depend_in_one_direction():
    bad = []
    for p in ENGINE_FILES:
        me = _module_name(p)
        if me in KNOWN_EXCEPTIONS:
            continue
        for pkg, banned in DIRECTION.items():
            if me == pkg or me.startswith(pkg + "."):
                bad += [(me, n) for n in _imports(p, top_level_only=False)
                        if any(n == b or n.startswith(b + ".") for b in banned)]
    assert bad == []


def test_no_module_level_import_cycle_in_the_engine():
    graph = {_module_name(p): {n for n in _imports(p, top_level_only=True) if n.startswith("rnn_engine")}
             for p in ENGINE_FILES}
    for mod in list(graph):  # importing a.b.c first imports a.b
        parent = mod.rpartition(".")[0]
        if parent.startswith("rnn_engine") and parent != mod:
            graph[mod] |= set()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt == node.rpartition(".")[0]:
                continue  # a package's own __init__ is already executing
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_old_module_paths_are_the_moved_modules():
    import importlib

    for old, new in rnn_engine.MOVED.items():
        assert importlib.import_module(f"rnn_engine.{old}") is importlib.import_module(f"rnn_engine.{new}")


PACKAGES = ("rnn_engine", "server")


def _package_files():
    return [(top, p.relative_to(ROOT / top)) for top in PACKAGES for p in sorted((ROOT / top).rglob("*.py"))]


def test_design_md_names_every_file_of_the_engine_and_the_server():
    """A newcomer finds every file in docs/DESIGN.md: by its path inside its package (`nn/step.py`,
    `jobs/directory.py`, or with the package, `server/limits.py`; a sub-package's `__init__.py` by its
    directory, `nn/kernels/`)."""
    design = (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    missing = []
    for top, rel in _package_files():
        key = f"{rel.parent.as_posix()}/" if rel.name == "__init__.py" else rel.as_posix()
        if key != "./" and f"`{key}" not in design and f"`{top}/{key}" not in design:
            missing.append(f"{top}/{rel.as_posix()}")
    assert missing == [], "files docs/DESIGN.md does not name"


def test_no_module_is_over_350_lines_without_a_reason_in_its_docstring():
    long = []
    for top, rel in _package_files():
        path = ROOT / top / rel
        text = path.read_text(encoding="utf-8")
        reason = "Over 350 lines" in (ast.get_docstring(ast.parse(text)) or "")
        if len(text.splitlines()) > 350 and not reason:
            long.append(f"{top}/{rel.as_posix()}")
    assert long == []
