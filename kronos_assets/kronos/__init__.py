"""Kronos (K-line foundation model) in PyTorch, written from the clean-room spec (shared/docs/kronos-spec.md).

Dagster-free. Entry points:
  * ``load_model`` / ``load_tokenizer`` / ``load_checkpoint`` — from a folder or a hub repo id at a revision;
  * ``predownload`` — snapshot + verify into the hub cache; ``save_checkpoint`` / ``install_into_cache``;
  * ``KronosPredictor`` — candles in, all sample paths + summaries out (fast KV-cached or reference mode).
"""

from __future__ import annotations

import importlib
from typing import Any

# Names -> submodule, imported on first use: ``kronos-forecast --help`` and the config module load without torch.
_WHERE = {
    **dict.fromkeys(("OFFICIAL", "KronosConfig", "TokenizerConfig"), "config"),
    **dict.fromkeys(
        (
            "CheckpointError",
            "CheckpointShapeError",
            "ChecksumMismatchError",
            "HorizonTooLongError",
            "KronosError",
            "KronosInputError",
            "MissingColumnsError",
            "NonFiniteInputError",
            "TimestampOrderError",
            "WeightsNotAvailableError",
        ),
        "errors",
    ),
    "GenerationConfig": "generate",
    **dict.fromkeys(
        (
            "CheckpointInfo",
            "LoadedCheckpoint",
            "install_into_cache",
            "load_checkpoint",
            "load_model",
            "load_tokenizer",
            "predownload",
            "save_checkpoint",
        ),
        "hub",
    ),
    "Kronos": "model",
    **dict.fromkeys(("KronosPredictor", "PathForecast"), "predictor"),
    "prepare_series": "inputs",
    "SamplingParams": "sampling",
    "KronosTokenizer": "tokenizer",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


__all__ = [
    "OFFICIAL",
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointShapeError",
    "ChecksumMismatchError",
    "GenerationConfig",
    "HorizonTooLongError",
    "Kronos",
    "KronosConfig",
    "KronosError",
    "KronosInputError",
    "KronosPredictor",
    "KronosTokenizer",
    "LoadedCheckpoint",
    "MissingColumnsError",
    "NonFiniteInputError",
    "PathForecast",
    "SamplingParams",
    "TimestampOrderError",
    "TokenizerConfig",
    "WeightsNotAvailableError",
    "install_into_cache",
    "load_checkpoint",
    "load_model",
    "load_tokenizer",
    "predownload",
    "prepare_series",
    "save_checkpoint",
]
