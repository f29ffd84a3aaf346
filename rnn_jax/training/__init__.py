"""Everything a training run needs above the model.

Optimizers, the train state and steps, checkpoints, the workdir contract, config validation,
data parallelism (``pmap`` or ``shard_map``), multi-host start-up, signals and the epoch loop
(``train.train_and_evaluate``). Imports every folder below it (``cells``, ``layers``,
``models``, ``data``).
"""
