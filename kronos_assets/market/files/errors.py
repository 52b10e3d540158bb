"""How a candle file can be unusable: each problem has a name (``CandleFileError.problem``)."""

from __future__ import annotations

import os
from pathlib import Path

from kronos_assets.market.rules import OHLC_VIOLATIONS
from kronos_assets.market.schema import CandleError

PROBLEMS = (
    "unsupported_format",
    "unreadable",
    "empty",
    "missing_columns",
    "ambiguous_columns",
    "unparsable_timestamp",
    "not_a_number",
    "missing_values",
    "unsorted",
    "duplicate_timestamp",
    *(name for name, _, _ in OHLC_VIOLATIONS),  # non_positive_price, high_below_low, ...
    "negative_volume",
    "unknown_timeframe",
    "off_grid",
    "timeframe_mismatch",
    "not_a_regular_file",
    "too_large",
    "bar_after_now",  # a replay file (market.replay) holding a bar that closes after the wall clock
)


class CandleFileError(CandleError):
    """A candle file that cannot be used; ``problem`` is one of PROBLEMS."""

    def __init__(self, path: str | os.PathLike[str], problem: str, detail: str):
        assert problem in PROBLEMS, problem
        self.path = str(path)
        self.problem = problem
        self.detail = detail
        super().__init__(f"{Path(path).name}: {detail}")


class PathEscapeError(ValueError):
    """A requested file name that would lead outside the watched folder."""
