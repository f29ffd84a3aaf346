"""The README's "adding a cell" examples work as written: one class, one registry line; a cell
with a parameter of its own. And every file the docs name exists."""

import inspect
import re
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import cells
from rnn_jax.cells import registry as cell_registry
from rnn_jax.layers import Recurrence
from rnn_jax.models import SentimentClassifier, count_params

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def test_readme_cell_example_registers_a_working_cell(monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "CELLS[" in b)
    package = dict(cells.CELLS)
    registry = dict(package)
    # The example's registration stays local.
    monkeypatch.setattr(cell_registry, "CELLS", registry)
    exec(example, {"RecurrentCell": cells.RecurrentCell, "jnp": jnp, "CELLS": registry})
    (name,) = {name for name, cell in registry.items() if cell is not package[name]}
    # The README shows the package's own fourth cell, letter for letter.
    class_code = example.split("\n\n\nCELLS[")[0] + "\n"
    assert class_code == inspect.getsource(package[name])

    model = SentimentClassifier(vocab_size=20, embed_dim=4, cell=name, hidden_size=5)
    post = jnp.array([[5, 6, 7, 0, 0]])
    pre = jnp.array([[0, 0, 5, 6, 7]])
    variables = model.init(jax.random.key(0), post)
    # Two gates: kernel [4, 10], recurrent kernel [5, 10], bias [10]; embedding 80, head 6.
    assert count_params(variables["params"]) == 40 + 50 + 10 + 80 + 6
    np.testing.assert_allclose(model.apply(variables, post), model.apply(variables, pre), rtol=1e-6)
    grads = jax.grad(lambda p: model.apply({"params": p}, post).sum())(variables["params"])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_readme_peephole_example_adds_a_parameter_of_its_own_to_the_lstm():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "class PeepholeLSTMCell" in b)
    namespace = {"LSTMCell": cells.LSTMCell, "nn": nn, "jnp": jnp}
    exec(example, namespace)
    peephole = Recurrence(namespace["PeepholeLSTMCell"](features=5), return_sequences=True)
    lstm = Recurrence(cells.LSTMCell(features=5), return_sequences=True)
    x = jax.random.normal(jax.random.key(1), (2, 6, 3))
    params = peephole.init(jax.random.key(0), x)["params"]
    assert params["cell"]["peephole"].shape == (3, 5)
    # Peepholes at zero (their init): exactly the LSTM with the same other parameters.
    without = {"cell": {k: v for k, v in params["cell"].items() if k != "peephole"}}
    _, outputs = peephole.apply({"params": params}, x)
    _, expected = lstm.apply({"params": without}, x)
    np.testing.assert_array_equal(outputs, expected)
    # ... and every peephole weight is trained.
    grads = jax.grad(lambda p: peephole.apply({"params": p}, x)[1].sum())(params)
    assert bool(jnp.all(grads["cell"]["peephole"] != 0))


# ------------------------------------------------------------------------------- references

DOCS = [README, REPO / "experiments" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A token in code (inline or fenced) names a repo path if it starts with one of these folders or
# is one of the top-level files.
REPO_FOLDERS = ("rnn_jax/", "configs/", "experiments/", "tests/", "docs/", ".ci/")
TOP_LEVEL_FILES = ("launch.sh", "pyproject.toml", "README.md", ".gitignore")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.M)
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
TOKEN = re.compile(r"[^\s'\"()\[\],;=|]+")


def ignored_prefixes():
    """Folders .gitignore names (runs/, experiments/results_quick/, ...): never committed."""
    lines = (REPO / ".gitignore").read_text().splitlines()
    return tuple(line.strip().lstrip("/") for line in lines if line.strip().endswith("/"))


def anchors(text):
    """GitHub's heading anchors in a markdown text."""
    text = FENCED.sub("", text)
    seen, result = {}, set()
    for heading in HEADING.findall(text):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else f"{slug}-{n}")
    return result


def repo_paths(code):
    """The repo paths named in a piece of code: `rnn_jax/cells/base.py`, `--config=configs/x.py`."""
    for token in TOKEN.findall(code):
        token = token.rstrip(".:")
        if token.startswith("./"):
            token = token[2:]
        if any(c in token for c in "<>*{}$") or token.startswith(ignored_prefixes()):
            continue
        path = token.split(":")[0]  # configs/best.py:gru names configs/best.py.
        if path.startswith(REPO_FOLDERS) or path in TOP_LEVEL_FILES:
            yield token, REPO / path


def broken_references(path, text=None):
    """Every link target and repo path in a markdown file that does not exist, as strings."""
    text = path.read_text() if text is None else text
    broken = []
    for target in LINK.findall(FENCED.sub("", text)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        ignored = any(resolved.is_relative_to(REPO / folder) for folder in ignored_prefixes())
        if ignored or any(c in file for c in "<>*"):
            continue
        if not resolved.exists():
            broken.append(f"link {target}")
        elif anchor and resolved.suffix == ".md":
            target_text = text if resolved == path else resolved.read_text()
            if anchor not in anchors(target_text):
                broken.append(f"link {target} (no such heading)")
    code = FENCED.findall(text) + INLINE.findall(FENCED.sub("", text))
    for piece in code:
        for token, resolved in repo_paths(piece):
            if not resolved.exists():
                broken.append(f"path {token}")
    return broken


def test_every_file_and_heading_the_docs_name_exists():
    assert len(DOCS) > 3, DOCS  # README, experiments/README.md and docs/*.md.
    broken = {str(p.relative_to(REPO)): b for p in DOCS if (b := broken_references(p))}
    assert not broken, f"the docs name files or headings that do not exist: {broken}"


def test_the_reference_check_finds_broken_references_and_skips_placeholders():
    text = "\n".join(
        [
            "# A heading",
            "[ok](README.md) [ok](#a-heading) [ok](docs/design.md#layout) [web](https://x.org/y)",
            "[gone](docs/missing.md) [gone](#no-heading) `rnn_jax/cells/base.py`",
            "`configs/best.py:gru`",
            "`rnn_jax/gone.py`, run `--config=configs/gone.py`; `runs/lstm/config.json`",
            "`experiments/results/<study>/` `experiments/results_quick/x.md` `rnn_jax.cells.CELLS`",
            "```bash",
            "./launch.sh --config=configs/lstm.py && python -m tests/gone.py",
            "```",
        ]
    )
    assert broken_references(README, text) == [
        "link docs/missing.md",
        "link #no-heading (no such heading)",
        "path tests/gone.py",
        "path rnn_jax/gone.py",
        "path configs/gone.py",
    ]
