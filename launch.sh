#!/usr/bin/env bash
# rnn_jax launcher: builds the environment on first use, then runs.
#
#   ./launch.sh --config=configs/lstm.py [--workdir=runs/lstm] [--config.FIELD=value ...]
#   ./launch.sh test [pytest args]      lint (ruff) + the test suite
#   ./launch.sh setup                   only build/refresh the environment
#   ./launch.sh python -m rnn_jax.predict --workdir=runs/lstm "a great film"
#
# The environment is a virtualenv in .venv (override with RNN_JAX_VENV), rebuilt when
# pyproject.toml changes. IMDB is read from $TFDS_DATA_DIR, which defaults to
# ../shared/tensorflow_datasets when that folder exists.
#
# Multi-host (one process per host, same command everywhere; JAX's distributed runtime
# connects them and each process feeds its own slice of every global batch):
#
#   JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=4 JAX_PROCESS_ID=<0..3> \
#     ./launch.sh --config=configs/lstm.py --workdir=/shared/runs/lstm
#
# (or --coordinator_address, --num_processes, --process_id). Under SLURM (srun) and on Cloud
# TPU pods JAX finds them itself. The workdir must be on storage all hosts share; see
# docs/multihost.md for SLURM and TPU commands and what each failure looks like.
set -euo pipefail
cd "$(dirname "$0")"

venv="${RNN_JAX_VENV:-.venv}"
python="${PYTHON:-python3}"

setup() {
  if [ ! -x "$venv/bin/python" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
    echo "launch.sh: building $venv (first run takes a few minutes)" >&2
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -e ".[dev]"
    touch "$venv/.installed"
  fi
}

if [ -z "${TFDS_DATA_DIR:-}" ] && [ -d ../shared/tensorflow_datasets ]; then
  export TFDS_DATA_DIR="$(cd ../shared/tensorflow_datasets && pwd)"
fi
# Keep TensorFlow's C++ start-up chatter out of the logs.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

case "${1:-}" in
  setup)
    setup ;;
  test)
    shift
    setup
    "$venv/bin/ruff" check .
    "$venv/bin/ruff" format --check .
    # Two test workers: compiling is single-threaded, so two cores run two tests at once
    # (tests that start processes of their own share one worker: xdist_group "subprocesses").
    "$venv/bin/python" -m pytest -n 2 --dist loadgroup "$@" ;;
  python)
    shift
    setup
    "$venv/bin/python" "$@" ;;
  ""|-h|--help)
    sed -n '2,21p' "$0" ;;
  *)
    setup
    "$venv/bin/python" -m rnn_jax.main "$@" ;;
esac
