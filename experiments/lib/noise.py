"""Measures beside their seed noise: mean ± sd over seeds, paired differences, a verdict.

Two cells compared at the same seeds (the same initialization key, data order and dropout keys
where a run has them) differ by a paired difference per seed. The difference is *resolved* when
the 95% confidence interval of its mean (Student's t over the seeds) excludes zero; its
half-width is the smallest difference those seeds resolve. Never a bare comparison of two runs.
"""

import math
import statistics
from collections.abc import Sequence

# Student's t, two-sided 95% (its 0.975 quantile), by degrees of freedom (seeds - 1); beyond
# 30, the normal's 1.96.
T_975 = dict(
    enumerate(
        (
            12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
            2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
            2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
        ),
        start=1,
    )
)  # fmt: skip
RULE = (
    "better / worse when the 95% confidence interval of the mean paired difference over seeds "
    "(Student's t) excludes zero, else within noise"
)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for fewer than two values)."""
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.fmean(values), sd


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> dict[str, float]:
    """``values - baseline`` seed by seed: their mean, sd, and the 95% half-width of the mean.

    Args:
      values: a cell's measure at seeds 0 .. n-1.
      baseline: the baseline's at the same seeds.

    Returns:
      ``{"mean", "sd", "half_width", "seeds"}``; ``half_width`` is NaN for one seed (nothing is
      resolved then).
    """
    if len(values) != len(baseline):
        raise ValueError(f"{len(values)} seeds against the baseline's {len(baseline)}")
    differences = [v - b for v, b in zip(values, baseline, strict=True)]
    mean, sd = mean_sd(differences)
    n = len(differences)
    half_width = T_975.get(n - 1, 1.96) * sd / math.sqrt(n) if n > 1 else math.nan
    return {"mean": mean, "sd": sd, "half_width": half_width, "seeds": n}


def verdict(difference: dict[str, float], lower_is_better: bool) -> str:
    """``better``, ``worse`` or ``within noise`` (``RULE``) for a ``paired_difference``."""
    mean, half_width = difference["mean"], difference["half_width"]
    if math.isnan(half_width) or abs(mean) <= half_width:
        return "within noise"
    return "better" if (mean < 0) == lower_is_better else "worse"
