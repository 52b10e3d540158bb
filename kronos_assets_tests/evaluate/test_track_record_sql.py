"""The SQL scoreboards agree with the hand-tested Python metrics on the same evaluations."""

import numpy as np
import pytest

from kronos_assets.metrics import mae, mape, pit_histogram, reliability_table, rmse
from kronos_assets.track_record import track_record
from kronos_assets_tests.foundation.test_assets import D, HOUR, Env, _prepare_forecasts


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    env = Env(tmp_path_factory.mktemp("record"))
    _prepare_forecasts(env, "BTC/USDT", D, D + 40 * HOUR)
    return env, track_record(env.wh, "1h")


def test_scoreboard_matches_python_aggregates(scored):
    env, record = scored
    for model in ("random_walk", "random_walk_vol"):
        rows = env.wh.query("SELECT * FROM evaluations WHERE model = ? AND step = horizon", [model]).to_dicts()
        (sql,) = [r for r in record["scoreboard"]
                  if r["model"] == model and r["window_name"] == "all" and r["step"] == r["horizon"]]
        assert sql["n_forecasts"] == len(rows) == 35  # bars D+6h .. D+40h score forecasts made from D onwards
        assert sql["mae"] == pytest.approx(mae(rows)) and sql["rmse"] == pytest.approx(rmse(rows))
        assert sql["mape"] == pytest.approx(mape(rows))
        assert sql["crps"] == pytest.approx(np.mean([r["crps"] for r in rows]))


def test_reliability_and_pit_match_python(scored):
    env, record = scored
    rows = env.wh.query(
        "SELECT e.p_up, e.pit, (e.realised > f.last_close)::INTEGER AS up FROM evaluations e "
        "JOIN forecasts f USING (symbol, timeframe, origin, model) WHERE e.model = 'random_walk_vol' "
        "AND e.step = e.horizon")
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
