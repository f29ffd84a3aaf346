"""The accelerator's numerical checks as tests, on whatever device JAX takes by default.

``experiments.lib.device_checks`` compares every cell's layer on the default device with the
host CPU. Here, on a CPU-only machine, "device" and "host" are one device, so what can fail is
padding (pre against post, with garbage on the padded steps), the LSTM's cuDNN stand-in against
its scan, and pmap against jit; on a GPU or TPU host, ``pytest -m device`` runs all of them there
(``python -m experiments.accelerator`` writes the same rows as a report).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.lib import device_checks

pytestmark = [pytest.mark.device, pytest.mark.slow]

ON_GPU = jax.default_backend() == "gpu"
# On a CPU JAX's default matmul precision is float32 already: "highest" alone says everything
# there, and each precision costs a compilation per case.
PRECISIONS = ("highest",) if jax.default_backend() == "cpu" else tuple(device_checks.TOLERANCES)


@pytest.mark.parametrize(
    "case", device_checks.layer_cases(ON_GPU), ids=lambda case: f"{case.cell}, {case.path}"
)
def test_the_device_computes_what_the_host_computes(case):
    device, host = jax.devices()[0], device_checks.host_device()
    rows = device_checks.case_rows(case, device, host, PRECISIONS)
    assert [r["check"] for r in rows] == ["device vs host"] * len(PRECISIONS) + [
        "pre vs post padding"
    ]
    assert all(r["passed"] for r in rows), [r for r in rows if not r["passed"]]


def test_pmap_makes_the_update_of_one_jit_step():
    row = device_checks.pmap_row()
    assert row["passed"], row
    assert f"pmap over {jax.local_device_count()} device(s)" in row["path"]


def test_the_check_fails_a_wrong_implementation():
    # One recurrent weight moved by 1e-2 on the "device" side: its row must fail.
    (case,) = [c for c in device_checks.layer_cases(on_gpu=False) if c.cell == "gru"]
    batch = device_checks.check_batch("mixed")
    params = device_checks.random_params(case, batch)
    wrong = jax.tree.map(np.copy, params)
    wrong["cell"]["recurrent_kernel"][0, 0] += 1e-2
    step = jax.jit(lambda *args: device_checks.forward_and_grads(case.device_apply, *args))
    cpu = jax.devices("cpu")[0]
    expected, actual = (
        device_checks.run_on(step, cpu, "highest", p, batch["inputs"], batch["mask"])
        for p in (params, wrong)
    )
    assert device_checks.device_vs_host_row(case, "highest", expected, expected)["passed"]
    row = device_checks.device_vs_host_row(case, "highest", actual, expected)
    assert not row["passed"] and row["max_error"] > device_checks.HIGHEST_RTOL


def test_the_padding_check_fails_a_layer_that_reads_padded_steps():
    # A layer that ignores its mask reads the garbage on the padded steps: pre and post padding
    # then give different carries, and the padding row must fail.
    (case,) = [c for c in device_checks.layer_cases(on_gpu=False) if c.cell == "gru"]
    leaky = device_checks.LayerCase(
        case.cell,
        case.path,
        lambda params, inputs, mask: case.device_apply(params, inputs, jnp.ones_like(mask)),
        case.host_apply,
    )
    cpu = jax.devices("cpu")[0]
    rows = device_checks.case_rows(leaky, cpu, cpu, ("highest",))
    assert [(r["check"], r["passed"]) for r in rows] == [
        ("device vs host", False),
        ("pre vs post padding", False),
    ]
