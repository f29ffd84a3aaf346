"""The package's shape: folders by role, imports point one way, no cycles, modules stay small.

The folders of ``rnn_jax/`` and what each may import are ``LAYERS`` below (and docs/design.md).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rnn_jax"

# Folder (or top-level module) -> the folders it may import besides itself. Cells know nothing
# of layers; layers name no particular cell; data knows nothing of models; the entry points and
# `rnn_jax/__init__.py` (the public API) sit on top.
LAYERS = {
    "cells": set(),
    "layers": {"cells"},
    "models": {"cells", "layers"},
    "testing": {"cells", "layers"},
    "data": set(),
    "training": {"cells", "layers", "models", "data"},
    "inference": {"cells", "layers", "models", "data", "training"},
}
ENTRY_POINTS = {"main", "predict", "evaluate", "generate", "__init__"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def package_modules() -> list[str]:
    """Every module of rnn_jax as a dotted name relative to the package (``cells.base``)."""
    return sorted(
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in PACKAGE.rglob("*.py")
    )


def folder_of(module: str) -> str:
    return module.split(".")[0]


def package_imports(tree: ast.AST) -> set[str]:
    """The rnn_jax modules or packages a module imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "rnn_jax":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnn_jax."):
            found.add(node.module.removeprefix("rnn_jax."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("rnn_jax.") for a in node.names if "rnn_jax." in a.name}
    return found


def test_every_folder_has_a_place_in_the_layout():
    folders = {folder_of(m) for m in package_modules() if "." in m}
    top = {m for m in package_modules() if "." not in m}
    assert folders == set(LAYERS), "add the folder to LAYERS here and to docs/design.md"
    assert top == ENTRY_POINTS, "a module at the top of rnn_jax/ must be an entry point"


def test_every_folder_says_what_it_owns():
    for folder in LAYERS:
        init = ast.parse((PACKAGE / folder / "__init__.py").read_text())
        doc = ast.get_docstring(init) or ""
        assert "import" in doc.lower(), (
            f"rnn_jax/{folder}/__init__.py: say what it owns and may import"
        )


@pytest.mark.parametrize("module", [m for m in package_modules() if "." in m])
def test_imports_point_one_way(module):
    path = PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
    allowed = LAYERS[folder_of(module)] | {folder_of(module)}
    wrong = sorted(
        m for m in package_imports(ast.parse(path.read_text())) if folder_of(m) not in allowed
    )
    assert not wrong, f"rnn_jax/{module}: imports {wrong}; it may import only {sorted(allowed)}"


def test_the_import_check_sees_imports_inside_functions():
    tree = ast.parse("def f():\n    from rnn_jax import training\n    import rnn_jax.models.x\n")
    assert package_imports(tree) == {"training", "models.x"}


def module_graph(root: Path, prefix: str) -> dict[str, set[str]]:
    """``module -> modules of the same tree it imports``, for the cycle check."""
    graph = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        imports = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(prefix):
                imports.add(node.module)
                imports |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                imports |= {a.name for a in node.names if a.name.startswith(prefix)}
        graph[name] = imports
    return {m: {i for i in imports if i in graph and i != m} for m, imports in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (the modules in order), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("tree", ["rnn_jax", "experiments"])
def test_no_import_cycle(tree):
    # A package's __init__ importing its own modules is not a cycle between modules.
    graph = module_graph(ROOT / tree, tree)
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def body_lines(node: ast.FunctionDef) -> int:
    """Lines of a function, its docstring left out (documentation is not what makes it long)."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    is_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if is_docstring and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


SIZED = sorted(
    str(p.relative_to(ROOT))
    for folder in ("rnn_jax", "experiments")
    for p in (ROOT / folder).rglob("*.py")
)


@pytest.mark.parametrize("path", SIZED)
def test_modules_and_functions_stay_small(path):
    source = (ROOT / path).read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path}: split it by job"
    long = [
        f"{node.name} ({body_lines(node)} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and body_lines(node) > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path}: {long}"
