"""What the experiment scripts share: flags, training runs, reports, and the speed machinery.

The scripts in ``experiments/`` are thin: each is one study and imports this library, never
another script; nothing here imports a script. ``flags`` and ``training_runs`` are what every
script that trains starts from, ``reporting`` writes every report; the speed studies build on
``timing`` (the ``Candidate``, interleaved rounds), ``candidates`` (rnn_jax and its peers, each
compiled into a candidate), ``grids`` (which variants of which cells to time), and
``speed_tables`` (one row builder and the ratios every speed table uses). ``device_checks`` is
the numerical check of every cell on the default device against the host CPU, run by
``experiments.accelerator`` and by ``tests/test_device_checks.py``. The cell lab
(``experiments.lab``) is ``lab_tasks`` (the synthetic tasks), ``lab_control`` (the memoryless
control cell), ``lab_runs`` (one training run), ``lab_protocol`` (the learning-rate sweep, the
doubling, the seeds, the horizon), ``lab_workers``, ``lab_gradients`` (each cell's gradient
horizon at initialization) and ``lab_report``. ``gradient_decay`` is the one rule for when a
gradient through time has vanished (``experiments.gradients`` and ``lab_gradients``). Imports
rnn_jax, configs and this package only.
"""
