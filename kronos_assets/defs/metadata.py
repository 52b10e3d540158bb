"""Markdown tables for Dagster metadata (the UI renders them on materialisations and check results)."""

from typing import Any, Iterable, Sequence

import polars as pl


def _cell(v: Any) -> str:
    return "–" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def md_table(rows: pl.DataFrame | Iterable[dict[str, Any]], cols: Sequence[str] | None = None) -> str:
    """A markdown table of a frame or of dict rows, over ``cols`` (default: all columns)."""
    if isinstance(rows, pl.DataFrame):
        cols = cols or rows.columns
        rows = rows.to_dicts()
    rows = list(rows)
    cols = list(cols or (rows[0].keys() if rows else []))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
