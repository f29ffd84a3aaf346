"""The cell lab (``python -m experiments.lab``): each cell's horizon on memory and recall tasks.

``tasks`` holds the synthetic tasks, generated from a seed; ``control`` the memoryless negative
control and the attention positive control; ``runs`` one training run and its record;
``protocol`` the learning-rate sweep, the doubling, the seeds at the frontier and the horizon;
``workers`` runs cards in worker processes; ``gradients`` measures each cell's gradient horizon
at initialization; ``report`` writes the tables and figures; ``variants`` is a researcher-style
cell outside the package (the negative-decay minGRU).
"""
