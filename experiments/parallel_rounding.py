"""Where pmap and shard_map part: each training step of both from the same state, compared.

``python -m experiments.parallel_rounding [--steps N] [--quick]``

``configs/lstm.py`` on the real training data, 2 CPU devices: for each of the first N batches
of epoch 1, the state that ``pmap`` reached is placed by both paths and stepped once by each,
and the two new states (parameters, Adam's moments, the metric sums) are compared array by
array. The relative difference of a step is the largest ``|pmap - shard_map| / max |pmap|``
over its arrays. This runs twice, each in a process of its own (XLA reads its flags once): with
XLA's default CPU code generation, as training runs, and with LLVM's optimizations off
(``--xla_backend_optimization_level=0``, as the tests compile). Equal counts at level 0 and
differing ones at the default mean that the difference comes from how LLVM compiles the two
programs, not from what they compute.
"""

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments.lib import flags, reporting
from experiments.lib.reporting import Column

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "default (as training runs)": "",
    "LLVM optimizations off (as the tests compile)": "--xla_backend_optimization_level=0",
}
COLUMNS = (
    Column("compile", "CPU code generation"),
    Column("steps", "steps compared"),
    Column("differing", "steps not bitwise equal"),
    Column("worst", "largest relative difference of a step", "{:.3g}"),
)


def compare(steps: int, max_examples: int, data_dir: str, cache_dir: str) -> dict:
    """In this process: ``steps`` steps of both paths from pmap's state, compared."""
    import jax
    import numpy as np

    from configs import lstm
    from rnn_jax.training import parallel, sentiment, train_steps

    config = lstm.get_config()
    config.update(
        progress_bar=False, max_examples=max_examples, data_dir=data_dir, cache_dir=cache_dir
    )
    task = sentiment.SentimentTask(config)
    paths = {p: parallel.create(p) for p in parallel.PARALLELISMS}
    compiled = {p: task.compile(dp)[0] for p, dp in paths.items()}
    state, differing, worst, compared = task.create_state(), 0, 0.0, 0
    for batch in task.train_batches(0, 0):
        if compared == steps:
            break
        new = {}
        for p, dp in paths.items():
            zero = dp.replicate(train_steps.zero_metrics())
            placed, sums, _ = compiled[p](dp.replicate(state), zero, None, dp.shard(batch))
            new[p] = dp.fetch({"state": placed, "sums": sums})
        a, b = (jax.tree.leaves(tree) for tree in new.values())
        relative = max(
            float(np.max(np.abs(np.asarray(x, np.float64) - y))) / (float(np.max(np.abs(x))) or 1)
            for x, y in zip(a, b, strict=True)
        )
        differing += relative > 0
        worst = max(worst, relative)
        compared += 1
        state = new["pmap"]["state"]
    return {"steps": compared, "differing": differing, "worst": worst}


def measure(xla_flags: str, args) -> dict:
    """``compare`` in a fresh process with 2 CPU devices and ``xla_flags``."""
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        XLA_FLAGS=f"--xla_force_host_platform_device_count=2 {xla_flags}",
    )
    code = (
        "import json, sys; from experiments.parallel_rounding import compare; "
        "print(json.dumps(compare(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])))"
    )
    quick = str(512 if args.quick else 0)
    out = subprocess.run(
        [sys.executable, "-c", code, str(args.steps), quick, args.data_dir, args.cache_dir],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the comparison failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = flags.make_parser(
        "parallel_rounding", __doc__.splitlines()[0], data=True, training=False
    )
    parser.add_argument("--steps", type=int, default=100, help="steps compared (default 100)")
    args = flags.parse(parser, argv)
    if args.quick:
        args.steps = min(args.steps, 3)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    report = reporting.Report(args, "pmap against shard_map, step by step")
    rows = [{"compile": name} | measure(xla_flags, args) for name, xla_flags in SETTINGS.items()]
    report.text(
        "configs/lstm.py on 2 CPU devices, the first training batches of epoch 1; each step "
        "starts both paths from the state pmap reached and compares every array of the new "
        "states (parameters, optimizer state, metric sums). Relative difference of a step: "
        "the largest |pmap - shard_map| / max |pmap| over its arrays."
    )
    report.table("table", rows, COLUMNS, "Steps where the two paths differ")
    report.json("results", {"rows": rows})
    report.finish()


if __name__ == "__main__":
    main()
