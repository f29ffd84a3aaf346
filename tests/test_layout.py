"""The package's shape: imports point one way (docs/design.md), modules and functions stay small."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rnn_jax"

# Left to right: a module may import its own group and the groups to its left (docs/design.md).
GROUPS = [
    {"files", "vocabulary"},
    {"cell_base"},
    {"linear_cells"},
    {"cells"},
    {"cudnn_lstm", "linear_scan"},
    {"recurrence"},
    {"models"},
    {"imdb_reader", "input_pipeline", "data_cache", "batching"},
    {"optimizers", "train_steps", "parallel", "checkpointing", "workdir", "configuration"}
    | {"distributed", "interrupts", "train"},
    {"main", "predict", "evaluate", "inference", "ensemble"},
]
RANK = {name: rank for rank, group in enumerate(GROUPS) for name in group}
MAX_MODULE_LINES = 420
MAX_FUNCTION_LINES = 80


def modules():
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def package_imports(tree: ast.AST) -> set[str]:
    """The rnn_jax modules a module imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "rnn_jax":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnn_jax."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("rnn_jax.")}
    return found


def test_every_module_has_a_place_in_the_layout():
    assert set(modules()) == set(RANK), "add the module to GROUPS here and to docs/design.md"


@pytest.mark.parametrize("module", modules())
def test_imports_point_one_way(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    upward = sorted(m for m in package_imports(tree) if RANK[m] > RANK[module])
    assert not upward, f"rnn_jax/{module}.py imports {upward}, which sit above it"


def test_the_import_check_sees_imports_inside_functions():
    tree = ast.parse("def f():\n    from rnn_jax import train\n    import rnn_jax.models\n")
    assert package_imports(tree) == {"train", "models"}


def body_lines(node: ast.FunctionDef) -> int:
    """Lines of a function, its docstring left out (documentation is not what makes it long)."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    is_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if is_docstring and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


@pytest.mark.parametrize("module", modules())
def test_modules_and_functions_stay_small(module):
    source = (PACKAGE / f"{module}.py").read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"rnn_jax/{module}.py: split it by job"
    long = [
        f"{node.name} ({body_lines(node)} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and body_lines(node) > MAX_FUNCTION_LINES
    ]
    assert not long, f"rnn_jax/{module}.py: {long}"
