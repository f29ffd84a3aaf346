"""``python -m tests.multihost_helpers FAULT STEP [main's flags]``: ``rnn_jax.main`` with a fault.

FAULT is ``none``, ``sigterm`` (this process sends itself SIGTERM after its STEP-th training
step, as a scheduler's preemption would) or ``sigkill`` (it dies there, as a crashed host does).
The fault is local: in a multi-host run the other processes only learn of it through JAX.
"""

import os
import signal
import sys
import time

from absl import app

from rnn_jax import main
from rnn_jax.training import lm_steps, parallel, train_steps

FAULTS = {"none": None, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}


def with_fault(real_create, signum: int | None, at_step: int):
    """``parallel.create`` whose compiled training step sends ``signum`` to this process at a step
    (after the step's ``at_step``-th call has returned)."""

    def create(parallelism):
        data_parallel = real_create(parallelism)
        real_compile = data_parallel.compile

        def compile_step(step, *args, **kwargs):
            compiled = real_compile(step, *args, **kwargs)
            if step not in (train_steps.train_step, lm_steps.train_step) or signum is None:
                return compiled
            calls = []

            def counted(*step_args):
                out = compiled(*step_args)
                calls.append(1)
                if len(calls) == at_step:
                    print(f"fault {signal.Signals(signum).name} at {time.time()}", flush=True)
                    os.kill(os.getpid(), signum)
                return out

            return counted

        data_parallel.compile = compile_step
        return data_parallel

    return create


if __name__ == "__main__":
    fault, at_step, *flags = sys.argv[1:]
    parallel.create = with_fault(parallel.create, FAULTS[fault], int(at_step))
    app.run(main.main, argv=[sys.argv[0], *flags], flags_parser=main._parse_flags)
