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
from rnn_jax.training import parallel, train_steps

FAULTS = {"none": None, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}


def with_fault(real_pmap_step, signum: int | None, at_step: int):
    """``parallel.pmap_step`` whose training step sends ``signum`` to this process at a step."""

    def pmap_step(step, *, donate_state):
        pmapped = real_pmap_step(step, donate_state=donate_state)
        if step is not train_steps.train_step or signum is None:
            return pmapped
        calls = []

        def counted(*args):
            out = pmapped(*args)
            calls.append(1)
            if len(calls) == at_step:
                print(f"fault {signal.Signals(signum).name} at {time.time()}", flush=True)
                os.kill(os.getpid(), signum)
            return out

        return counted

    return pmap_step


if __name__ == "__main__":
    fault, at_step, *flags = sys.argv[1:]
    parallel.pmap_step = with_fault(parallel.pmap_step, FAULTS[fault], int(at_step))
    app.run(main.main, argv=[sys.argv[0], *flags], flags_parser=main._parse_flags)
