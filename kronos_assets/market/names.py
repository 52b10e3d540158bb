"""How configs name a market: a symbol (BASE/QUOTE in capitals) and a timeframe, as validated config types that
the profile's files and training.yaml share (kronos_assets.base.config_files turns their problems into errors naming
the file and the field)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

from kronos_assets.base.config_files import no_repeats, problem
from kronos_assets.market.timeframes import TIMEFRAME_SECONDS

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,15}/[A-Z0-9]{2,15}$")


def _symbols(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise problem("must be a non-empty list of symbols like BTC/USDT")
    for i, s in enumerate(value):
        if not isinstance(s, str) or not SYMBOL_RE.match(s):
            raise problem(f"bad symbol {s!r}: use BASE/QUOTE in capitals, e.g. BTC/USDT", at=(i,))
    return tuple(no_repeats(value, "symbol"))


def _timeframe_name(value: Any) -> str:
    if value not in TIMEFRAME_SECONDS:
        raise problem(f"unknown timeframe {value!r}; known: {', '.join(TIMEFRAME_SECONDS)}")
    return value


Symbols = Annotated[tuple[str, ...], BeforeValidator(_symbols)]
TimeframeName = Annotated[str, BeforeValidator(_timeframe_name)]
