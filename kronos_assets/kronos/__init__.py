"""Kronos (K-line foundation model) in PyTorch, written from the clean-room spec (shared/docs/kronos-spec.md).

Dagster-free. Entry points:
  * ``load_model`` / ``load_tokenizer`` / ``load_checkpoint`` — from a folder or a hub repo id at a revision;
  * ``predownload`` — snapshot + verify into the hub cache; ``save_checkpoint`` / ``install_into_cache``;
  * ``KronosPredictor`` — candles in, all sample paths + summaries out (fast KV-cached or reference mode).
"""

from .config import OFFICIAL, KronosConfig, TokenizerConfig
from .errors import (
    CheckpointError,
    CheckpointShapeError,
    ChecksumMismatchError,
    HorizonTooLongError,
    KronosError,
    KronosInputError,
    MissingColumnsError,
    NonFiniteInputError,
    TimestampOrderError,
    WeightsNotAvailableError,
)
from .generate import GenerationConfig, generate
from .hub import (
    CheckpointInfo,
    LoadedCheckpoint,
    install_into_cache,
    load_checkpoint,
    load_model,
    load_tokenizer,
    predownload,
    save_checkpoint,
)
from .model import Kronos
from .predictor import KronosPredictor, PathForecast, prepare_series
from .sampling import SamplingParams
from .tokenizer import KronosTokenizer

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
    "generate",
    "install_into_cache",
    "load_checkpoint",
    "load_model",
    "load_tokenizer",
    "predownload",
    "prepare_series",
    "save_checkpoint",
]
