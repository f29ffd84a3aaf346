"""The README's "Add your own cell" workflow works as written, on a module outside the repository;
and every file the docs name exists."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability_helpers import base_env, main_args

pytestmark = pytest.mark.xdist_group("subprocesses")

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


@pytest.mark.slow  # Checks, trains and predicts in processes of their own.
def test_the_readme_cell_is_checked_trained_and_predicted_from_its_own_module(tmp_path):
    """The "Add your own cell" workflow, command for command, on a module outside the repo."""
    (tmp_path / "my_cells.py").write_text(next(b for b in readme_blocks("python") if "IndRNN" in b))
    (commands,) = [b for b in readme_blocks("bash") if "rnn_jax.testing my_cells" in b]
    check, train, predict = [shlex.split(line) for line in commands.splitlines()[1:]]
    env = base_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    workdir = tmp_path / "run"

    def run(argv):
        argv = [f"--workdir={workdir}" if a.startswith("--workdir=") else a for a in argv]
        assert argv[:2] == ["python", "-m"], argv
        result = subprocess.run(
            [sys.executable, *argv[1:]],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result

    assert "IndRNNCell: all 11 properties hold" in run(check).stdout
    tiny = main_args(workdir, tmp_path / "cache", num_epochs=1)[3:]  # The fields, not -m/config.
    run([*train, *(a for a in tiny if a.startswith("--config."))])
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["cell"] == "my_cells:IndRNNCell" and 0.0 <= summary["test_accuracy"] <= 1.0
    # IndRNN at the tiny run's sizes: kernel 8x8, u 8, bias 8; embedding 500x8; head 9.
    assert summary["num_params"] == 64 + 8 + 8 + 500 * 8 + 9
    probability, text = run(predict).stdout.strip().splitlines()[-1].split("\t")
    assert 0.0 < float(probability) < 1.0 and text == predict[-1]


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
