"""The two random-walk kinds (forecasting/baselines.py). Each is also a built-in forecaster of the same name that a
profile names without a models.yaml entry; an entry of one of these kinds changes its window."""

from __future__ import annotations

from kronos_assets.base.config_files import Schema, Whole
from kronos_assets.forecasting.baselines import RandomWalk, RandomWalkVol
from kronos_assets.forecasting.kinds.base import Kind, register


class RandomWalkOptions(Schema):
    volume_window: Whole(1) = 24  # type: ignore[valid-type]


class RandomWalkVolOptions(Schema):
    vol_window: Whole(2) = 168  # type: ignore[valid-type]


RANDOM_WALK = register(
    Kind(
        "random_walk",
        schema=lambda entry: RandomWalkOptions,
        settle=lambda key, o: o.volume_window,
        build=lambda key, window: RandomWalk(window, name=key),
        describe=lambda window: f"baseline: last close, volume the mean of {window} bars",
        options=int,
    )
)
RANDOM_WALK_VOL = register(
    Kind(
        "random_walk_vol",
        schema=lambda entry: RandomWalkVolOptions,
        settle=lambda key, o: o.vol_window,
        build=lambda key, window: RandomWalkVol(window, name=key),
        describe=lambda window: f"baseline: Gaussian random walk at the volatility of {window} bars",
        options=int,
    )
)
