"""What the experiment scripts share: flags, training runs, reports, and the speed machinery.

The scripts in ``experiments/`` are thin: each is one study and imports this library, never
another script; nothing here imports a script. ``flags`` and ``training_runs`` are what every
script that trains starts from, ``reporting`` writes every report; the speed studies build on
``timing`` (the ``Candidate``, interleaved rounds), ``candidates`` (rnn_jax and its peers, each
compiled into a candidate), ``grids`` (which variants of which cells to time), and
``speed_tables`` (one row builder and the ratios every speed table uses). ``device_checks`` is
the numerical check of every cell on the default device against the host CPU, run by
``experiments.accelerator`` and by ``tests/test_device_checks.py``. The studies with
several modules of their own are subpackages: the cell lab (``lab``, ``experiments.lab``), the
language-modelling study (``lm``, ``experiments.lm``) and the cell card (``card``,
``experiments.card``). ``noise`` is the one rule for a difference beside its seed noise,
``processes`` runs independent jobs in worker processes, ``collectives`` counts a compiled
step's all-reduces. ``gradient_decay`` is the one rule for when a gradient through time has
vanished (``experiments.gradients`` and ``lab.gradients``). Imports
rnn_jax, configs and this package only.
"""
