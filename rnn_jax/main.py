"""Command line entry: ``python -m rnn_jax.main --config=configs/lstm.py [--workdir=runs/lstm]``.

Intentionally kept short: the logic lives in ``train.py`` so it can be imported and tested.
Errors a user can fix (bad config value, missing data, unusable workdir, NaN loss) end in one
line on stderr and a non-zero exit code, not a traceback.
"""

import difflib
import logging as std_logging
import os
import sys
import types
from typing import NoReturn

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from rnn_jax.training import configuration, distributed, parallel

# TensorFlow and rnn_jax.train (Orbax, optax: seconds of imports) are imported in main() only
# once the config is valid, so a typo in a flag costs a second, not the start-up of a run.

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/lstm.py.", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Where the run's files go (default: runs/<config file name>)."
)
# Multi-host (rnn_jax/distributed.py): all three or none; each defaults to its JAX_* variable.
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (default: $JAX_COORDINATOR_ADDRESS)."
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes in the run, one per host (default: $JAX_NUM_PROCESSES)."
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process, 0 .. num_processes - 1 (default: $JAX_PROCESS_ID)."
)
_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout",
    distributed.DEFAULT_TIMEOUT_SECONDS,
    "Seconds to wait for the other processes to join, and for a silent one to answer.",
)
flags.mark_flags_as_required(["config"])

# Exit codes: 2 for a config field or value that is not allowed (as for a bad flag), 1 for
# other problems the user can fix, 128 + signal number when interrupted (checkpoint saved).


def _user_errors() -> tuple[type[Exception], ...]:
    from rnn_jax.data.imdb_reader import DataNotFoundError
    from rnn_jax.training import train
    from rnn_jax.training import workdir as workdirs
    from rnn_jax.training.checkpointing import NoUsableCheckpointError

    return (
        DataNotFoundError,
        workdirs.WorkdirError,
        train.NonFiniteLossError,
        NoUsableCheckpointError,
    )


def _config_argument(argv: list[str]) -> str | None:
    """The value of the last ``--config`` in ``argv`` (absl keeps the last one), if any."""
    value = None
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--":
            break
        name, equals, rest = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name == "config":
            value = rest if equals else (argv[i + 1] if i + 1 < len(argv) else None)
    return value


def _config_file_problem(path: str) -> str | None:
    """Why the config file ``path`` cannot be read (missing, a folder, no permission), or None."""

    def config_files(folder: str) -> list[str]:
        return sorted(n for n in os.listdir(folder) if n.endswith(".py") and n[0] != "_")

    if not path:
        return "no file named; pass a config file, e.g. --config=configs/lstm.py"
    if os.path.isdir(path):
        return f"a folder, not a file; its config files: {', '.join(config_files(path))}"
    if not os.path.exists(path):
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            return (
                f"no such file, nor a folder {folder!r} here; run from the repository root "
                "(where configs/ is) or give the file's full path"
            )
        names = config_files(folder)
        close = difflib.get_close_matches(os.path.basename(path), names, n=1)
        guess = f"did you mean {os.path.join(folder, close[0])}? " if close else ""
        return f"no such file; {guess}{folder}/ holds {', '.join(names) or 'no .py file'}"
    try:
        open(path, "rb").close()
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    return None


def _refuse_config_file(value: str | None, problem: str) -> NoReturn:
    """The one line (exit 2, as for a config value) for a config file that does not load."""
    print(f"error: --config={value}: {problem}", file=sys.stderr)
    sys.exit(2)


def _parse_flags(argv: list[str]) -> list[str]:
    """Parses flags as absl does; a config file or field that is not usable is one line, exit 2.

    ml_collections loads the config file while the flags are parsed. A file that cannot be read
    is checked first: config_flags defers that error to the config's first use, and with
    ``--config.<field>`` overrides reports it as unknown flags instead. A file with a syntax
    error or without ``get_config``, and a locked ConfigDict refusing an unknown field, raise
    exceptions that are not flags errors (SyntaxError, AttributeError): absl would show a
    traceback.
    """
    value = _config_argument(argv)
    if value is not None and (problem := _config_file_problem(value.split(":", 1)[0])):
        _refuse_config_file(value, problem)
    try:
        argv = app.parse_flags_with_usage(argv)
    except SyntaxError as error:  # In the config file, or in a module it imports.
        _refuse_config_file(
            value, f"invalid Python in {error.filename}, line {error.lineno}: {error.msg}"
        )
    except AttributeError as error:
        if error.name == "get_config" and isinstance(error.obj, types.ModuleType):
            _refuse_config_file(
                value,
                "the file defines no get_config(); a config file's get_config() returns an "
                "ml_collections.ConfigDict (see configs/lstm.py)",
            )
        context = error.__context__
        detail = str(context.args[0]) if isinstance(context, KeyError) and context.args else ""
        name, *hint = detail.splitlines() or [""]
        name = name.strip("'\"")
        overrides = [a for a in argv[1:] if a.startswith(f"--config.{name}")]
        if not name or not overrides:
            raise
        hint_text = f" ({hint[0].strip()})" if hint else ""
        print(
            f"error: {overrides[0].split('=')[0]}: the config has no field {name!r}{hint_text}; "
            "the fields are listed in configs/default.py",
            file=sys.stderr,
        )
        sys.exit(2)
    config = _CONFIG.value
    if not isinstance(config, ml_collections.ConfigDict):
        # A file that did not load although found above (e.g. --config given in a --flagfile),
        # or a get_config() that returned something else (None: a forgotten return).
        path = config_flags.get_config_filename(flags.FLAGS["config"])
        _refuse_config_file(
            value or path,
            _config_file_problem(path)
            or (
                f"get_config() returned {type(config).__name__}, not an "
                "ml_collections.ConfigDict (a missing return?)"
            ),
        )
    return argv


class _QuietLibraries:
    """Drops INFO chatter of Orbax (several lines per save) from the absl log; keeps warnings."""

    def filter(self, record) -> bool:
        return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def default_workdir() -> str:
    config_file = config_flags.get_config_filename(flags.FLAGS["config"])
    return os.path.join("runs", os.path.splitext(os.path.basename(config_file))[0])


def start(config, workdir: str) -> str:
    """Makes the devices, joins the other processes, and agrees with them on the launch.

    The values first: the CPU device split needs valid batch sizes. Then the devices (before
    anything else asks JAX about them), the other processes, and the checks that need every
    device (the global batch must split over them) or every process (the same config).
    A config this process refuses is reported after joining, so that the others stop too.

    Returns:
      What was started, for the log.
    """
    error = None
    try:
        configuration.validate(config, device_count=None)
        parallel.use_cpu_devices(config.cpu_devices, (config.batch_size, config.eval_batch_size))
    except configuration.ConfigError as refused:
        error = refused
    started = distributed.initialize(
        _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, timeout_seconds=_TIMEOUT.value
    )
    if error is None:
        try:
            configuration.validate(config, jax.device_count())
        except configuration.ConfigError as refused:
            error = refused
    distributed.agree_to_start({"config": config.to_dict(), "workdir": workdir}, error)
    return started


def fail(code: int, message: str):
    """Prints ``message`` as the one line on stderr and exits with ``code``.

    In a multi-host run the exit skips JAX's shutdown barrier, which would wait up to
    ``--distributed_timeout`` for peers that may be gone.
    """
    print(message, file=sys.stderr, flush=True)
    if distributed.joined():
        os._exit(code)
    sys.exit(code)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.get_absl_logger().addFilter(_QuietLibraries())
    config = _CONFIG.value
    workdir = _WORKDIR.value or default_workdir()
    try:
        started = start(config, workdir)
    except (configuration.ConfigError, distributed.LaunchError) as error:
        fail(2, f"error: {error}")
    except distributed.DistributedError as error:
        fail(1, f"error: {error}")
    # TensorFlow is imported only if IMDB must be read from tfds (rnn_jax.imdb_reader, which
    # keeps it off the GPUs); a cached run never imports it.
    from rnn_jax.training import interrupts, train

    logging.info("JAX: %s, local devices: %s", started, jax.local_devices())
    try:
        train.train_and_evaluate(config, workdir)
    except configuration.ConfigError as error:
        fail(2, f"error: {error}")
    except (*_user_errors(), distributed.DistributedError) as error:
        fail(1, f"error: {error}")
    except interrupts.Interrupted as error:
        fail(128 + error.signum, f"interrupted: {error}")
    except jax.errors.JaxRuntimeError as error:
        if jax.process_count() == 1:
            raise
        # A peer died or its host went away, so a collective failed (or a device did).
        first_line = (str(error).strip().splitlines() or [""])[0][:160]
        fail(
            1,
            f"error: a step failed in this {jax.process_count()}-process run, most likely "
            f"because another process died ({first_line}); the last checkpoint in "
            f"{workdir}/checkpoints is intact: rerun every process to resume",
        )


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
