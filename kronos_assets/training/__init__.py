"""Training and fine-tuning of Kronos (Dagster-free), implemented from the clean-room spec (§4.5, §5.6, §15).

* ``data``: windows of lookback + horizon contiguous bars from candle frames, the warehouse or the demo market,
  normalised over each window's lookback only;
* ``losses``: the tokenizer's reconstruction + BSQ losses and the predictor's next-token cross-entropies;
* ``trainer``: the seeded, resumable two-stage loop (safetensors/JSON state, progress callback and log lines);
* ``evaluate``: held-out forecasts of the trained checkpoint, its base and the baselines, scored alike;
* ``run``: one configured run end to end (``train_run``); ``config``: configs/training.yaml; ``cli``: kronos-train.
"""

from kronos_assets.training.config import RunSettings, load_training_config
from kronos_assets.training.data import TrainingDataError, WindowSet, normalise_window, series_from_frame
from kronos_assets.training.evaluate import HeldOut, evaluate_forecasters
from kronos_assets.training.run import RunOutcome, train_run
from kronos_assets.training.trainer import ResumeError, Trainer, TrainEvent, TrainResult, TrainSpec, build_scratch

__all__ = [
    "HeldOut",
    "ResumeError",
    "RunOutcome",
    "RunSettings",
    "TrainEvent",
    "TrainResult",
    "TrainSpec",
    "Trainer",
    "TrainingDataError",
    "WindowSet",
    "build_scratch",
    "evaluate_forecasters",
    "load_training_config",
    "normalise_window",
    "series_from_frame",
    "train_run",
]
