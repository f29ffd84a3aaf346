"""Every config file loads, validates, builds its model; variants change only what they say."""

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from absl import flags
from ml_collections import config_flags

from configs import best, default
from rnn_jax import models
from rnn_jax.data.text import VOCAB_SIZE
from rnn_jax.models import count_params
from rnn_jax.training import configuration
from rnn_jax.training.language_modelling import create_language_model

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted(p for p in (REPO / "configs").glob("*.py") if p.name != "__init__.py")


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def test_config_files_exist():
    names = {p.stem for p in CONFIG_FILES}
    assert {"default", "rnn", "lstm", "gru", "assignment"} <= names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_config_loads_validates_and_builds_its_model(path):
    config = load(path)
    assert set(config.keys()) == set(default.get_config().keys()), "variants add no fields"
    configuration.validate(config, jax.device_count())
    token_ids = jnp.ones((2, 7), jnp.int32)
    if config.task == "language_model":
        model = create_language_model(config)
        expected = (2, 7, VOCAB_SIZE)  # A next-token distribution at every position.
    else:
        model, expected = models.create_model(config), (2,)  # A logit per review.
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), token_ids))
    assert count_params(variables["params"]) > 0
    outputs = jax.eval_shape(model.apply, variables, token_ids)
    logits = outputs[0] if config.task == "language_model" else outputs
    assert logits.shape == expected


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_shootout_variants_differ_from_default_only_in_the_cell(cell):
    config, base = load(REPO / "configs" / f"{cell}.py"), default.get_config()
    differing = {k for k in base.keys() if config[k] != base[k]}
    assert differing <= {"cell"} and config.cell == cell


def test_defaults_are_the_course_shootout():
    c = default.get_config()
    assert (c.vocab_size, c.max_len, c.embed_dim, c.hidden_size, c.batch_size) == (
        10_000,
        200,
        128,
        128,
        64,
    )
    assert (c.optimizer, c.learning_rate, c.validation_fraction) == ("adam", 1e-3, 0.2)


def test_assignment_config():
    c = load(REPO / "configs" / "assignment.py")
    assert (c.cell, c.vocab_size, c.max_len, c.embed_dim, c.hidden_size) == (
        "rnn",
        2_000,
        30,
        50,
        5,
    )
    assert (c.optimizer, c.learning_rate, c.num_epochs, c.batch_size) == ("rmsprop", 1e-4, 10, 64)
    assert c.kernel_init == "random_normal:0.001"
    model = models.create_model(c)
    params = model.init(jax.random.key(0), jnp.ones((1, c.max_len), jnp.int32))["params"]
    kernel = params["recurrent"]["layer_0"]["cell"]["kernel"]
    assert kernel.shape == (50, 5) and float(jnp.std(kernel)) < 0.003


def test_the_configuration_reference_lists_every_config_field():
    reference = (REPO / "docs" / "configuration.md").read_text()
    missing = [k for k in default.get_config().keys() if f"`{k}`" not in reference]
    assert not missing, f"docs/configuration.md does not list config fields {missing}"


def test_best_members_change_only_what_they_name_and_load_from_the_command_line():
    base = best.get_config()
    for member, changes in best.MEMBERS.items():
        config = best.get_config(member)
        differing = {k for k in base.keys() if config[k] != base[k]}
        assert differing == set(changes) and all(config[k] == v for k, v in changes.items())
        configuration.validate(config, jax.device_count())
    with pytest.raises(ValueError, match=r"unknown member 'rnn' .*allowed: \['gru', 'lstm'"):
        best.get_config("rnn")
    # --config=configs/best.py:lstm, as the README runs a member.
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=flag_values)
    flag_values(["main", f"--config={REPO / 'configs' / 'best.py'}:lstm"])
    assert flag_values.config.cell == "lstm" and flag_values.config.bidirectional
