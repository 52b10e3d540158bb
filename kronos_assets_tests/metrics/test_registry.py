"""The metric registry: the Winkler score against a hand-computed case, the direction-by-confidence table on a
planted case, and the rows of score_paths following the registry."""

from __future__ import annotations

import numpy as np
import pytest

from kronos_assets.metrics import score_paths
from kronos_assets.metrics.registry import confidence_table, metrics, row_keys, winkler

LAST = 100.0


def closes(log_returns) -> np.ndarray:
    return LAST * np.exp(np.asarray(log_returns, dtype=np.float64))


def test_winkler_by_hand() -> None:
    # 21 samples -0.03, -0.02, ..., 0.17: the linear 10 % and 90 % quantiles are -0.01 and 0.15 (width 0.16).
    # Inside: the width alone. Above by 0.05: 0.16 + (2 / 0.2) x 0.05 = 0.66. Below by 0.04: 0.16 + 10 x 0.04.
    paths = closes(np.arange(-0.03, 0.175, 0.01)[:, None].repeat(3, axis=1))
    rows = score_paths(paths, closes([0.05, 0.20, -0.05]), LAST)
    assert [r["winkler_80"] for r in rows] == pytest.approx([0.16, 0.66, 0.56], abs=1e-12)
    assert [r["width_80"] for r in rows] == pytest.approx([0.16] * 3, abs=1e-12)
    assert winkler(np.array([1.0]), np.array([2.0]), np.array([2.5]), 0.2) == pytest.approx([6.0])


def test_p_up_hit_is_the_call_of_p_up_and_none_without_one() -> None:
    # Step 1: 3 of 4 paths up (P(up) 0.75), the close rose: a hit. Step 2: P(up) 0.75, it fell: a miss.
    # Step 3: 2 of 4 up (0.5): no call.
    paths = closes([[0.01, 0.01, 0.01], [0.02, 0.02, 0.02], [0.03, 0.03, -0.01], [-0.01, -0.01, -0.02]])
    rows = score_paths(paths, closes([0.005, -0.005, 0.01]), LAST)
    assert [r["p_up"] for r in rows] == [0.75, 0.75, 0.5]
    assert [r["p_up_hit"] for r in rows] == [1.0, 0.0, None]


def test_confidence_table_on_a_planted_record() -> None:
    # Confident up (P(up) > 0.6): 4 calls, 3 right. Confident down (< 0.4): 2 calls, 2 right. The rest: 3 forecasts,
    # one exactly 0.5 (no call), 2 calls of which 1 right. The bounds themselves (0.6, 0.4) are "the rest".
    planted = (
        [(0.9, 1.0), (0.7, 1.0), (0.61, 0.0), (0.8, 1.0)]
        + [(0.1, 1.0), (0.39, 1.0)]
        + [(0.5, None), (0.6, 1.0), (0.4, 0.0)]
    )
    table = confidence_table([{"p_up": p, "p_up_hit": h} for p, h in planted])
    assert table == [
        {"band": "p_up > 0.6", "n": 4, "calls": 4, "hit_rate": 0.75},
        {"band": "p_up < 0.4", "n": 2, "calls": 2, "hit_rate": 1.0},
        {"band": "0.4 to 0.6", "n": 3, "calls": 2, "hit_rate": 0.5},
    ]
    assert [b["hit_rate"] for b in confidence_table([])] == [None, None, None]


def test_score_rows_follow_the_registry() -> None:
    rows = score_paths(closes([[0.01, 0.02], [-0.01, 0.0]]), closes([0.0, 0.01]), LAST)
    assert all(tuple(r) == row_keys() == ("step", *(m.name for m in metrics())) for r in rows)
    names = [m.name for m in metrics()]
    assert len(names) == len(set(names))
    boards = [m.board for m in metrics() if m.board]
    assert len(boards) == len(set(boards))
    assert all(m.not_null or m.since > 1 or m.last_step_only for m in metrics())
