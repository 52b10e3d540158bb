"""Forecast scoring: the metric registry (``registry``: every per-forecast score declared once), per-forecast
scores of sample paths (``scores``, built on the scoring rules of ``rules``) and scoreboard aggregates
(``compare``).

numpy/scipy only; knows nothing of Dagster.
"""

from kronos_assets.metrics.compare import (
    MIN_INDEPENDENT_HORIZONS,
    DMResult,
    TooFewHorizons,
    TooPersistent,
    diebold_mariano,
    dm_batch,
    mae,
    mape,
    mean_of,
    pit_histogram,
    reliability_table,
    rmse,
    skill_score,
)
from kronos_assets.metrics.scores import (
    INTERVALS,
    QUANTILE_LEVELS,
    ROW_KEYS,
    crps_samples,
    pinball_loss,
    pit_values,
    realised_path_volatility,
    score_paths,
)

__all__ = [
    "DMResult",
    "MIN_INDEPENDENT_HORIZONS",
    "TooFewHorizons",
    "TooPersistent",
    "INTERVALS",
    "QUANTILE_LEVELS",
    "ROW_KEYS",
    "crps_samples",
    "diebold_mariano",
    "dm_batch",
    "mae",
    "mape",
    "mean_of",
    "pinball_loss",
    "pit_histogram",
    "pit_values",
    "realised_path_volatility",
    "reliability_table",
    "rmse",
    "score_paths",
    "skill_score",
]
