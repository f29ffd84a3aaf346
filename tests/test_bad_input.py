"""Bad input a new user meets: a mistyped config path, a config file without ``get_config``, and
a run's ``config.json``, ``vocab.json`` or ``history.json`` that is not valid JSON.

Each is one line on stderr naming the file and what to do, a non-zero exit code, no traceback,
and the damaged file left byte for byte as it was. The command lines are real subprocesses,
started at once by the reliability tests' background runner (tests/reliability_helpers.py),
each on its own copy of one tiny run trained once for the module (one epoch); the readers are
also tested in-process on more kinds of damage.
"""

import json
import shutil
from pathlib import Path

import pytest

from rnn_jax.data.vocabulary import Vocabulary
from rnn_jax.training import workdir as workdirs
from tests.reliability_helpers import (
    DATA_DIR,
    Job,
    JobRunner,
    base_env,
    checkpoint_steps,
    main_args,
)

pytestmark = [
    pytest.mark.slow,  # Starts training, predict and evaluate processes.
    # The subprocesses start with the module; the in-process tests below run meanwhile.
    pytest.mark.usefixtures("runner"),
    # One test worker runs every test that starts processes of its own (see launch.sh test).
    pytest.mark.xdist_group("subprocesses"),
]

EPOCHS = {"num_epochs": 1}  # The tiny run, one epoch: a checkpoint, a history, a vocabulary.


def truncated(data: bytes) -> bytes:
    """The first half of a file, as a full disk or an interrupted copy leaves it."""
    return data[: len(data) // 2]


def emptied(data: bytes) -> bytes:
    del data
    return b""


# name: (damaged file, damage, command after ``python``, what the last line must say).
DAMAGED_RUNS = {
    "predict_config": (
        "config.json",
        truncated,
        lambda w, cache: ["-m", "rnn_jax.predict", f"--workdir={w}", "a fine film"],
        "neither resumed nor used",
    ),
    # --split=validation reads config.json before any run is restored (rnn_jax.inference).
    "evaluate_config": (
        "config.json",
        emptied,
        lambda w, cache: ["-m", "rnn_jax.evaluate", f"--workdir={w}", "--split=validation"],
        "neither resumed nor used",
    ),
    "resume_config": (
        "config.json",
        truncated,
        lambda w, cache: main_args(w, cache, **EPOCHS),
        "neither resumed nor used",
    ),
    "predict_vocab": (
        "vocab.json",
        emptied,
        lambda w, cache: ["-m", "rnn_jax.predict", f"--workdir={w}", "a fine film"],
        "rerun the training command",
    ),
    "evaluate_vocab": (
        "vocab.json",
        truncated,
        lambda w, cache: ["-m", "rnn_jax.evaluate", f"--workdir={w}"],
        "rerun the training command",
    ),
    "resume_history": (
        "history.json",
        truncated,
        lambda w, cache: main_args(w, cache, **EPOCHS),
        "move it aside to resume",
    ),
}


def workdir_files(workdir: Path) -> dict[str, bytes]:
    """The run's JSON files, byte for byte, and its checkpoint steps (what must not change)."""
    files = {p.name: p.read_bytes() for p in sorted(workdir.glob("*.json"))}
    return files | {"steps": repr(checkpoint_steps(workdir / "checkpoints")).encode()}


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """Starts every subprocess of the module; tests wait with ``runner.result(name)``."""
    assert (DATA_DIR / "imdb_reviews").is_dir(), f"IMDB data missing: expected it in {DATA_DIR}"
    base = tmp_path_factory.mktemp("bad_input")
    cache, logs = base / "cache", base / "logs"
    cache.mkdir()
    logs.mkdir()
    runner = JobRunner(logs, parallel=2)
    runner.base, runner.cache, runner.before = base, cache, {}
    env = base_env(jax_cache_dir=base / "jax_cache")

    def add(name, argv, **kwargs):
        runner.add(Job(name, argv, **({"env": env} | kwargs)))

    add("run", main_args(base / "run", cache, **EPOCHS), workdir=base / "run")
    # Config files that do not load: refused while the flags are parsed.
    (base / "no_get_config.py").write_text("CONFIG = {'cell': 'lstm'}  # not get_config()\n")
    for name, config in [
        ("config_typo", "configs/lstn.py"),
        ("no_get_config", base / "no_get_config.py"),
    ]:
        add(name, ["-m", "rnn_jax.main", f"--config={config}", f"--workdir={base / name}"])

    def copy_and_damage(name):
        def before():
            workdir = base / name
            shutil.copytree(base / "run", workdir)
            file, damage, _, _ = DAMAGED_RUNS[name]
            path = workdir / file
            path.write_bytes(damage(path.read_bytes()))
            runner.before[name] = workdir_files(workdir)

        return before

    for name, (_, _, command, _) in DAMAGED_RUNS.items():
        workdir = base / name
        add(
            name,
            command(workdir, cache),
            workdir=workdir,
            ready=runner.after("run"),
            before=copy_and_damage(name),
        )
    # What the vocab.json message tells the user to do, then predict again.
    repaired = base / "predict_vocab"
    add("repair_vocab", main_args(repaired, cache, **EPOCHS), ready=runner.after("predict_vocab"))
    add(
        "predict_repaired",
        ["-m", "rnn_jax.predict", f"--workdir={repaired}", "a fine film"],
        ready=runner.after("repair_vocab"),
    )
    runner.start()
    yield runner
    runner.close()


# ----------------------------------------------------------------------------------------------
# The readers, in-process, on more kinds of damage.

DAMAGE = {
    "empty": (b"", "(empty)"),
    "truncated": (b'{"seed": 0, "cell": "ls', "(not valid JSON: Unterminated string"),
    "binary": (b"\xff\xfe\x00garbage", "(not valid JSON: 'utf-8' codec can't decode"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_read_config_names_the_damaged_file(tmp_path, kind):
    data, problem = DAMAGE[kind]
    (tmp_path / "config.json").write_bytes(data)
    with pytest.raises(workdirs.WorkdirError) as raised:
        workdirs.read_config(str(tmp_path))
    assert str(raised.value).startswith(f"{tmp_path / 'config.json'} is damaged {problem}")
    assert "\n" not in str(raised.value)
    assert (tmp_path / "config.json").read_bytes() == data


def test_read_config_refuses_json_that_is_not_an_object(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(workdirs.WorkdirError, match=r"damaged \(holds an array, not an object\)"):
        workdirs.read_config(str(tmp_path))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[{"epoch": 1, "step": 25}, {"epo', "not valid JSON"),
        ('{"epoch": 1}', "holds an object, not an array"),
        ('[{"epoch": 1}, 7]', "an entry is not an epoch's record"),
    ],
)
def test_load_history_refuses_a_damaged_history_while_epochs_are_kept(tmp_path, text, problem):
    (tmp_path / "history.json").write_text(text)
    with pytest.raises(workdirs.WorkdirError, match="move it aside to resume") as raised:
        workdirs.load_history(str(tmp_path), before_epoch=1)
    assert problem in str(raised.value)
    # A run within its first epoch keeps no entry of it, so it does not read it.
    assert workdirs.load_history(str(tmp_path), before_epoch=0) == []
    assert (tmp_path / "history.json").read_text() == text


def test_load_history_keeps_the_epochs_before_the_resumed_one(tmp_path):
    history = [{"epoch": 1, "step": 25}, {"epoch": 2, "step": 50}]
    (tmp_path / "history.json").write_text(json.dumps(history))
    assert workdirs.load_history(str(tmp_path), before_epoch=1) == history[:1]
    assert workdirs.load_history(str(tmp_path / "none"), before_epoch=1) == []


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (DAMAGE["empty"][0], "is damaged (empty)"),
        (DAMAGE["binary"][0], "is damaged (not valid JSON"),
        (b'"words"', "is damaged (holds a JSON str, not an object)"),
        (b'{"format": "other"}', "is not a usable vocabulary (not an "),
    ],
)
def test_vocabulary_from_json_names_the_damaged_file(tmp_path, data, problem):
    path = tmp_path / "vocab.json"
    path.write_bytes(data)
    with pytest.raises(ValueError) as raised:
        Vocabulary.from_json(path)
    assert str(raised.value).startswith(f"{path} {problem}")
    assert path.read_bytes() == data


def tiny_vocabulary() -> Vocabulary:
    return Vocabulary.build([["a", "fine", "film"], ["a", "film"]], vocab_size=8)


def test_a_vocabulary_without_words_is_not_usable(tmp_path):
    path = tmp_path / "vocab.json"
    vocab = tiny_vocabulary().to_dict()
    del vocab["words"]
    path.write_text(json.dumps(vocab))
    with pytest.raises(ValueError, match=r"is not a usable vocabulary \('words'\)"):
        Vocabulary.from_json(path)


# ----------------------------------------------------------------------------------------------
# The command lines.


def assert_one_line_error(result, code: int, *parts: str):
    """Exit ``code``, no traceback, the last line of stderr an error naming every one of parts."""
    assert result.returncode == code, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert result.last_line.startswith("error: "), result.describe()
    for part in parts:
        assert part in result.last_line, result.describe()


def test_a_mistyped_config_path_is_one_line_with_a_suggestion(runner):
    result = runner.result("config_typo")
    assert_one_line_error(
        result, 2, "--config=configs/lstn.py: no such file", "did you mean configs/lstm.py?"
    )
    assert "configs/ holds assignment.py, best.py, default.py" in result.last_line
    assert not (runner.base / "config_typo").exists()  # Refused before the workdir is made.


def test_a_config_file_without_get_config_is_one_line(runner):
    result = runner.result("no_get_config")
    path = runner.base / "no_get_config.py"
    assert_one_line_error(result, 2, f"--config={path}: the file defines no get_config()")
    assert not (runner.base / "no_get_config").exists()


@pytest.mark.parametrize("name", DAMAGED_RUNS)
def test_a_damaged_file_is_one_line_and_left_as_it_was(runner, name):
    file, _, _, advice = DAMAGED_RUNS[name]
    result = runner.result(name)
    workdir = runner.base / name
    assert_one_line_error(result, 1, f"{workdir / file} is damaged (", advice)
    assert workdir_files(workdir) == runner.before[name]  # Nothing rewritten, moved or deleted.


def test_rerunning_the_training_command_writes_a_damaged_vocabulary_again(runner):
    """What the vocab.json message says to do works: then the run predicts again."""
    assert runner.result("repair_vocab").returncode == 0, runner.result("repair_vocab").describe()
    assert (runner.base / "predict_vocab" / "vocab.json").read_bytes() == (
        runner.base / "run" / "vocab.json"
    ).read_bytes()
    result = runner.result("predict_repaired")
    assert result.returncode == 0, result.describe()
    assert 0.0 <= float(result.stdout.split("\t")[0]) <= 1.0
