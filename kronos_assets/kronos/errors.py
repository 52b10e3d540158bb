"""Errors raised by the Kronos package. Every message names the offending input and what to do about it."""

from __future__ import annotations


class KronosError(Exception):
    """Base class of every error this package raises on purpose."""


class KronosInputError(KronosError, ValueError):
    """Candles or settings the predictor cannot forecast from."""


class MissingColumnsError(KronosInputError):
    pass


class NonFiniteInputError(KronosInputError):
    pass


class TimestampOrderError(KronosInputError):
    pass


class HorizonTooLongError(KronosInputError):
    pass


class SamplingSettingsError(KronosInputError):
    pass


class CheckpointError(KronosError, ValueError):
    """A checkpoint folder or file that is not a valid Kronos checkpoint."""


class CheckpointShapeError(CheckpointError):
    """Tensor names or shapes in model.safetensors disagree with config.json."""


class ChecksumMismatchError(CheckpointError):
    """An official repo/revision whose files do not hash to the published sha256."""


class WeightsNotAvailableError(KronosError, FileNotFoundError):
    """Weights are neither in a local folder nor in the hub cache, and the hub cannot be reached."""
