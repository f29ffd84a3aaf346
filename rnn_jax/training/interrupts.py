"""SIGINT and SIGTERM (Ctrl-C, a scheduler's preemption) end a run with a checkpoint, not a crash.

``SignalFlag`` records the signal instead of dying; the training loop checks it after each step,
saves a checkpoint and raises ``Interrupted``, which ``main`` turns into exit code
128 + the signal's number.
"""

import signal


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; a checkpoint was saved. ``signum`` says which."""

    def __init__(self, signum: int, step: int, epoch: int, directory: str):
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} at step {step} (epoch {epoch + 1}): checkpoint saved in {directory}; "
            "rerun the same command to resume"
        )
        self.signum = signum


class SignalFlag:
    """Records SIGINT/SIGTERM instead of dying, so the loop can checkpoint and exit cleanly."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        del frame
        self.signum = signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
