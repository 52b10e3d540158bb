"""The two random-walk kinds (forecasting/baselines.py). Each is also a built-in forecaster of the same name that a
profile names without a models.yaml entry; an entry of one of these kinds changes its window."""

from __future__ import annotations

from kronos_assets.forecasting.baselines import RandomWalk, RandomWalkVol
from kronos_assets.forecasting.kinds.base import Kind


RANDOM_WALK = Kind(
    "random_walk",
    parse=lambda o: o.whole("volume_window", 1, 24),
    build=lambda key, window: RandomWalk(window, name=key),
    describe=lambda window: f"baseline: last close, volume the mean of {window} bars",
)
RANDOM_WALK_VOL = Kind(
    "random_walk_vol",
    parse=lambda o: o.whole("vol_window", 2, 168),
    build=lambda key, window: RandomWalkVol(window, name=key),
    describe=lambda window: f"baseline: Gaussian random walk at the volatility of {window} bars",
)
