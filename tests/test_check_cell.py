"""``rnn_jax.testing.check_cell``: every registered cell passes it; each planted flaw fails it,
naming its property; the command line prints one line per property."""

import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from rnn_jax.cells import CELLS, LinearRecurrentCell, MinGRUCell, SimpleRNNCell
from rnn_jax.testing import check_cell
from tests.helpers import VARIANTS

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, kwargs", VARIANTS)
def test_every_registered_cell_passes(name, kwargs):
    checked = check_cell(CELLS[name], **kwargs)
    assert {
        "contract",
        "float64 gradients",
        "padding invariance",
        "resets restart the state",
        "flax.linen.RNN",
    } <= set(checked)
    assert ("linear in h" in checked) == issubclass(CELLS[name], LinearRecurrentCell)


# ------------------------------------------------------------------ cells with one flaw each


class StopGradientCell(SimpleRNNCell):
    """The recurrent gradient is cut: trains, but learns nothing across time."""

    def step(self, h, xw):
        h = self.activation(xw + jax.lax.stop_gradient(h) @ self.recurrent_kernel)
        return h, h


class CallDisagreesWithStepCell(SimpleRNNCell):
    """``__call__`` is not ``step(project_inputs(x))``: the hoisted path computes another cell."""

    def __call__(self, carry, x_t):
        h, _ = super().__call__(carry, x_t)
        h = 0.5 * h
        return h, h


class CarryDtypeCell(SimpleRNNCell):
    """The output is cast to bfloat16 while the carry stays float32."""

    def step(self, h, xw):
        h = self.activation(xw + h @ self.recurrent_kernel)
        return h, h.astype(jnp.bfloat16)


class NotLinearCell(MinGRUCell):
    """Claims h' = a h + b (it is a LinearRecurrentCell) but squashes the state."""

    def step(self, h, xw):
        a, b = self.coefficients(xw)
        h = jnp.tanh(a * h + b)
        return h, h


@pytest.mark.parametrize(
    "cell_class, prop",
    [
        (StopGradientCell, "float64 gradients"),
        (CallDisagreesWithStepCell, r"__call__ == step\(project_inputs\)"),
        (CarryDtypeCell, "contract"),
        (NotLinearCell, "linear in h"),
    ],
)
def test_a_flawed_cell_fails_naming_the_property(cell_class, prop):
    with pytest.raises(AssertionError, match=rf"^check_cell\({cell_class.__name__}\): .*{prop}: "):
        check_cell(cell_class)


def test_a_cell_that_crashes_fails_as_a_property_not_a_traceback():
    class CrashingCell(SimpleRNNCell):
        def step(self, h, xw):
            raise RuntimeError("boom")

    with pytest.raises(AssertionError, match=r"contract: RuntimeError: boom"):
        check_cell(CrashingCell)


# ------------------------------------------------------------------ the command line

OWN_MODULE = """
import jax

from rnn_jax import SimpleRNNCell


class LeakyCell(SimpleRNNCell):
    def step(self, h, xw):
        h = 0.5 * h + 0.5 * self.activation(xw + h @ self.recurrent_kernel)
        return h, h


class CutCell(SimpleRNNCell):
    def step(self, h, xw):
        h = self.activation(xw + jax.lax.stop_gradient(h) @ self.recurrent_kernel)
        return h, h
"""


def run_cli(tmp_path, *args):
    (tmp_path / "own_cells.py").write_text(textwrap.dedent(OWN_MODULE))
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-m", "rnn_jax.testing", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow  # Two processes, each importing JAX.
def test_the_command_line_checks_a_cell_from_the_researchers_own_module(tmp_path):
    good = run_cli(tmp_path, "own_cells:LeakyCell")
    assert good.returncode == 0, good.stderr
    lines = good.stdout.strip().splitlines()
    assert all(line.startswith("PASS  ") for line in lines[:-1]) and len(lines) == 12
    assert lines[-1].startswith("LeakyCell: all 11 properties hold")

    bad = run_cli(tmp_path, "own_cells:CutCell")
    assert bad.returncode == 1
    assert "FAIL  float64 gradients" in bad.stdout
    assert bad.stderr.strip().startswith("error: check_cell(CutCell): float64 gradients")
    assert "Traceback" not in bad.stderr


def test_the_command_line_names_a_cell_it_cannot_find_in_one_line(tmp_path, monkeypatch, capsys):
    from rnn_jax.testing.__main__ import main

    (tmp_path / "own_cells.py").write_text(textwrap.dedent(OWN_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec, words in [
        ("own_cells:Nope", "module 'own_cells' has no 'Nope'"),
        ("no_such_module:Cell", "cannot import module 'no_such_module'"),
        ("own_cells:jax", "jax is not a Flax cell class"),
        ("transformer", "unknown cell 'transformer': one of"),
    ]:
        assert main([spec]) == 2, spec
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err


def test_a_config_naming_a_broken_cell_module_is_one_config_error(tmp_path, monkeypatch):
    from configs import default
    from rnn_jax.training.configuration import ConfigError, validate

    (tmp_path / "editing_cells.py").write_text(
        "from rnn_jax import SimpleRNNCell\n\n\nclass Half(SimpleRNNCell):\n"
        "    def step(self, h, xw):\n        return undefined_name, h\n"
    )
    (tmp_path / "typo_cells.py").write_text("x = (\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = default.get_config()
    for cell, words in [
        ("editing_cells:Half", "one step raised NameError: name 'undefined_name'"),
        ("typo_cells:X", "raised SyntaxError: "),
        ("flax.linen:GRUCell", "unexpected keyword argument 'activation'"),
    ]:
        config.cell = cell
        with pytest.raises(ConfigError) as info:
            validate(config, None)
        message = str(info.value)
        assert message.startswith(f"config.cell={cell!r} is not allowed: ") and words in message
        assert "\n" not in message


def test_cells_from_config_names_keep_their_class_defaults():
    from rnn_jax.models import make_cells

    (mingru,) = make_cells("mingru", 4, 1)  # The paper's linear candidate, as the class says.
    assert mingru.activation is CELLS["mingru"].activation
    (tanh,) = make_cells("mingru", 4, 1, activation="tanh")
    assert tanh.activation is jnp.tanh
