"""The SQL scoreboards agree with the hand-tested Python metrics on the same evaluations."""

import numpy as np
import pytest

from kronos_assets.evaluation.track_record import track_record
from kronos_assets.metrics import mae, mape, pit_histogram, reliability_table, rmse
from kronos_assets_tests.foundation.test_assets import HOUR, D, Env, _prepare_forecasts


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    env = Env(tmp_path_factory.mktemp("record"))
    _prepare_forecasts(env, "BTC/USDT", D, D + 40 * HOUR)
    return env, track_record(env.wh, "1h")


def test_scoreboard_matches_python_aggregates(scored):
    env, record = scored
    for model in ("random_walk", "random_walk_vol"):
        rows = env.wh.query("SELECT * FROM evaluations WHERE model = ? AND step = horizon", [model]).to_dicts()
        (sql,) = [
            r
            for r in record["scoreboard"]
            if r["model"] == model and r["window_name"] == "all" and r["step"] == r["horizon"]
        ]
        assert sql["n_forecasts"] == len(rows) == 35  # bars D+6h .. D+40h score forecasts made from D onwards
        assert sql["mae"] == pytest.approx(mae(rows)) and sql["rmse"] == pytest.approx(rmse(rows))
        assert sql["mape"] == pytest.approx(mape(rows))
        assert sql["crps"] == pytest.approx(np.mean([r["crps"] for r in rows]))


def test_reliability_and_pit_match_python(scored):
    env, record = scored
    rows = env.wh.query(
        "SELECT e.p_up, e.pit, (e.realised > f.last_close)::INTEGER AS up FROM evaluations e "
        "JOIN forecasts f USING (symbol, timeframe, origin, model) WHERE e.model = 'random_walk_vol' "
        "AND e.step = e.horizon"
    )
    table = [t for t in reliability_table(rows["p_up"].to_numpy(), rows["up"].to_numpy(), n_bins=10) if t["count"]]
    sql = [r for r in record["reliability"] if r["model"] == "random_walk_vol"]
    assert [r["bin"] for r in sql] == [t["bin"] for t in table]
    assert [r["n"] for r in sql] == [t["count"] for t in table]
    assert [r["observed_frequency"] for r in sql] == pytest.approx([t["observed_frequency"] for t in table])
    assert [r["mean_forecast"] for r in sql] == pytest.approx([t["mean_forecast"] for t in table])
    counts = pit_histogram(rows["pit"].to_numpy(), n_bins=10)
    sql_counts = np.zeros(10, dtype=int)
    for r in record["pit_histogram"]:
        if r["model"] == "random_walk_vol":
            sql_counts[r["bin"]] = r["n"]
    assert sql_counts.tolist() == counts.tolist()


def test_winkler_and_the_confidence_table_from_scored_forecasts(scored):
    """The registry's new metrics through the scoring step: the scoreboard's Winkler score is the mean of the
    stored per-forecast scores (n/a for the point forecast), and the track record's direction-by-confidence table
    counts the stored P(up) calls per band."""
    env, record = scored
    last = {(r["model"], r["window_name"]): r for r in record["scoreboard"] if r["step"] == r["horizon"]}
    rows = env.wh.query(
        "SELECT p_up, p_up_hit, winkler_80, width_80 FROM evaluations "
        "WHERE model = 'random_walk_vol' AND step = horizon"
    ).to_dicts()
    assert all(r["winkler_80"] >= r["width_80"] for r in rows)
    assert last[("random_walk_vol", "all")]["winkler_80"] == pytest.approx(np.mean([r["winkler_80"] for r in rows]))
    assert last[("random_walk", "all")]["winkler_80"] is None  # a point forecast has no band
    table = [t for t in record["direction_by_confidence"] if t["model"] == "random_walk_vol"]
    assert [t["band"] for t in table] == ["p_up > 0.6", "p_up < 0.4", "0.4 to 0.6"]
    assert sum(t["n"] for t in table) == len(rows)
    confident_up = [r for r in rows if r["p_up"] > 0.6]
    assert table[0]["n"] == table[0]["calls"] == len(confident_up)
    if confident_up:
        assert table[0]["hit_rate"] == pytest.approx(np.mean([r["p_up_hit"] for r in confident_up]))
    assert not [t for t in record["direction_by_confidence"] if t["model"] == "random_walk"]  # no P(up)
