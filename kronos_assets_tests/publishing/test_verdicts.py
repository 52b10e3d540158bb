"""Published verdicts: the sentence and its numbers come from the warehouse, they flip when the model is made to
lose, a model that forecasts no move shows n/a, and uploaded markets stay out of public files unless published."""

from __future__ import annotations

import dataclasses
import html
import json
import shutil
from typing import Any, Callable

import numpy as np
import polars as pl
import pytest

from kronos_assets.configuration.settings import ConfigError
from kronos_assets.defs.publish import publish_config
from kronos_assets.evaluation.records import evaluation_rows, load_close_paths
from kronos_assets.evaluation.track_record import crps_standing, track_record
from kronos_assets.market.timeframes import timeframe_delta
from kronos_assets.metrics import TooPersistent, diebold_mariano
from kronos_assets.publishing.bars import publish_bars
from kronos_assets.publishing.store import LocalStore
from kronos_assets.warehouse import Warehouse, score_sums
from kronos_assets_tests.helpers import small_settings

BTC = "BTC/USDT"
HOUR = timeframe_delta("1h")
Transform = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


@pytest.fixture
def copy(site_data, tmp_path):
    """The session's warehouse copied, with settings and a fresh store of its own (the copy may be changed)."""
    settings = dataclasses.replace(site_data.settings, home=tmp_path / "home")
    settings.warehouse_path.parent.mkdir(parents=True)
    shutil.copy(site_data.settings.warehouse_path, settings.warehouse_path)
    return settings, Warehouse(settings.warehouse_path), LocalStore(tmp_path / "site")


def add_model(
    wh: Warehouse,
    name: str,
    transform: Transform,
    symbol: str = BTC,
    source: str = "random_walk_vol",
    new_symbol: str | None = None,
) -> None:
    """A forecaster made from ``source``'s stored forecasts: its close paths are ``transform(paths, realised,
    last_close)``; stored and scored through the same code as a real model (records.evaluation_rows)."""
    target = new_symbol or symbol
    origins = wh.query(
        "SELECT DISTINCT origin FROM evaluations WHERE symbol = ? AND model = ? ORDER BY origin", [symbol, source]
    )["origin"].to_list()
    heads = load_close_paths(wh, symbol, "1h", origins).filter(pl.col("model") == source)
    realised = wh.query(
        "SELECT ts, close FROM clean_candles WHERE symbol = ? AND timeframe = '1h' ORDER BY ts", [symbol]
    )
    closes = dict(zip(realised["ts"].to_list(), realised["close"].to_list()))
    rows, paths = [], []
    for head in heads.iter_rows(named=True):
        h = head["horizon"]
        future = np.array([closes[head["origin"] + i * HOUR] for i in range(h)])
        new = transform(np.asarray(head["close_paths"], dtype=np.float64), future, head["last_close"])
        head = head | {
            "model": name,
            "close_paths": new.tolist(),
            "p_up": float(np.mean(new[:, -1] > head["last_close"])),
        }
        rows += evaluation_rows(head, realised, target, "1h", HOUR, head["origin"] + (h - 1) * HOUR)
        paths += [{"origin": head["origin"], "path": i, "close": p.tolist()} for i, p in enumerate(new)]
    with wh.connect() as con:
        for table in ("forecasts", "forecast_steps"):
            con.execute(
                f"INSERT INTO {table} SELECT * REPLACE (? AS model, ? AS symbol) FROM {table} "
                "WHERE symbol = ? AND model = ?",
                [name, target, symbol, source],
            )
        new_paths = pl.DataFrame(paths, schema_overrides={"origin": pl.Datetime("us", "UTC")})
        con.register("new_paths", new_paths.to_arrow())
        con.execute(
            "INSERT INTO forecast_paths SELECT * REPLACE (? AS model, ? AS symbol, n.close AS close) "
            "FROM forecast_paths p JOIN new_paths n USING (origin, path) WHERE p.symbol = ? AND p.model = ?",
            [name, target, symbol, source],
        )
        frame = pl.DataFrame(rows, schema_overrides={"brier_vol_amp": pl.Float64}, infer_schema_length=None)
        con.register("new_rows", frame.to_arrow())
        con.execute("INSERT INTO evaluations BY NAME SELECT * FROM new_rows")
        # As the scoring step does: the running sums of the days scored kept with the scores.
        score_sums.refresh(con, target, "1h", score_sums.origin_days(origins))


def contrarian(paths: np.ndarray, future: np.ndarray, last: float) -> np.ndarray:
    """Deliberately bad: tight paths around the mirror image of what did happen, so its median, its band and
    its P(up) are all confidently wrong."""
    rng = np.random.default_rng(0)
    return (last**2 / future)[None, :] * np.exp(0.0005 * rng.standard_normal(paths.shape))


def clairvoyant(paths: np.ndarray, future: np.ndarray, last: float) -> np.ndarray:
    """Deliberately good: tight paths around what did happen (it peeks; only a test may)."""
    rng = np.random.default_rng(0)
    return future[None, :] * np.exp(0.0005 * rng.standard_normal(paths.shape))


def publish_as(settings, wh, store, model: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    settings = dataclasses.replace(settings, primary_model=model)
    bars = wh.query("SELECT max(origin) AS o FROM forecasts WHERE symbol = ? AND model = ?", [BTC, model])["o"][0]
    publish_bars(publish_config(settings), wh, store, {BTC: [bars - HOUR]}, "1h")
    latest = json.loads(store.get("series/BTC-USDT/1h/latest.json"))
    index = store.get("index.html").decode()
    return latest, index, json.loads(store.get("scoreboard.json"))


def warehouse_means(wh: Warehouse, model: str) -> dict[str, float]:
    """The verdict's numbers straight from the evaluations, computed here independently of track_record.py."""
    return wh.query(
        "SELECT avg(m.crps) AS crps, avg(b.crps) AS crps_ref, avg(m.abs_error / f.last_close) AS err, "
        "avg(abs(m.realised - f.last_close) / f.last_close) AS err_ref, avg(m.brier_up) AS brier, count(*) AS n "
        "FROM evaluations m JOIN forecasts f USING (symbol, timeframe, origin, model) "
        "JOIN evaluations b ON b.symbol = m.symbol AND b.origin = m.origin AND b.step = m.step "
        "AND b.model = 'random_walk_vol' WHERE m.symbol = ? AND m.model = ? AND m.step = m.horizon",
        [BTC, model],
    ).to_dicts()[0]


def _section(index: str, symbol: str) -> str:
    return next(p for p in index.split('<section class="series"')[1:] if f"<h2>{symbol}" in p)


@pytest.mark.parametrize("model, side", [("clairvoyant", "better"), ("contrarian", "worse")])
def test_published_verdict_matches_the_warehouse_and_flips_when_the_model_loses(copy, model, side):
    settings, wh, store = copy
    add_model(wh, model, {"clairvoyant": clairvoyant, "contrarian": contrarian}[model])
    latest, index, board = publish_as(settings, wh, store, model)
    verdict = latest["verdict"]
    want = warehouse_means(wh, model)
    assert verdict["n"] == want["n"] == 60 and verdict["n_independent"] == 10  # 60 origins, 6-bar horizon
    crps, point, p_up = verdict["crps"], verdict["point_error"], verdict["p_up"]
    assert crps["model"] == pytest.approx(want["crps"]) and crps["reference"] == pytest.approx(want["crps_ref"])
    assert point["model"] == pytest.approx(want["err"]) and point["reference"] == pytest.approx(want["err_ref"])
    assert p_up["model"] == pytest.approx(want["brier"]) and p_up["reference"] == 0.25
    losses = wh.query(
        "SELECT m.crps AS a, b.crps AS b FROM evaluations m JOIN evaluations b USING (symbol, origin, "
        "step) WHERE m.symbol = ? AND m.model = ? AND b.model = 'random_walk_vol' AND m.step = m.horizon "
        "ORDER BY origin",
        [BTC, model],
    )
    sentence = verdict["sentence"]
    rel = abs(want["crps"] / want["crps_ref"] - 1)
    try:
        assert crps["p_value"] == pytest.approx(diebold_mariano(losses["a"], losses["b"], 6).p_value)
        crps_word = "significant"
    except TooPersistent:  # 10 horizons of a CRPS gap that drifts with volatility: the test withholds its verdict
        assert crps["p_value"] is None and crps["verdict"] == "too persistent to judge"
        crps_word = "no verdict: the difference drifts too slowly"
    assert f"{model} was {100 * rel:.1f} % {side} than the random walk with volatility on CRPS ({crps_word}" in sentence
    point_side = "closer to the outcome" if side == "better" else "further off"
    assert (
        f"its median was {100 * abs(want['err'] / want['err_ref'] - 1):.1f} % {point_side} than the last price"
        in sentence
    )
    assert f"its P(up) did {side} than a coin flip (Brier {want['brier']:.3f} vs 0.250; significant" in sentence
    assert "60 forecasts" in sentence and "≈10 independent 6-bar horizons" in sentence
    # The same sentence at the top of the dashboard's section, and in scoreboard.json.
    section = _section(index, BTC)
    assert section.index('class="verdict"') < section.index('class="cards"')
    assert html.escape(sentence) in section
    row = next(r for r in section.split("<table>")[1].split("<tr")[1:] if f"<td>{model}</td>" in r)
    # Judged against the expected 74.8 % on the hits at every step: the contrarian's tight band around the wrong
    # price never covers; the clairvoyant's is centred on the outcome, so it covers nearly always (over-covers).
    flag = {"worse": "too narrow", "better": "too wide"}[side]
    assert f" % (74.8 %) · {flag} (" in row and " over the path)</td>" in row
    if crps_word == "significant":
        card = {"better": "better than the baseline (significant", "worse": "worse than the baseline (significant"}[
            side
        ]
        assert card in section and "Diebold–Mariano test over ≈10 independent horizons" in section
    assert any(v["symbol"] == BTC and v["model"] == model and v["sentence"] == sentence for v in board["verdicts"])
    # The track record's check warns on the same test's word, never on a point estimate alone.
    assert crps_standing(track_record(wh, "1h")["verdicts"], model)[BTC] == (
        side if crps_word == "significant" else "too persistent to judge"
    )


def test_too_few_independent_horizons_reads_so_with_no_p_value(site_data):
    eth = json.loads((site_data.publish_dir / "series/ETH-USDT/1h/latest.json").read_text())
    verdict = eth["verdict"]
    assert verdict["n_independent"] < 10
    assert verdict["sentence"].startswith("Too few independent horizons for a verdict on random_walk_vol")
    assert "p =" not in verdict["sentence"] and verdict["point_error"]["p_value"] is None
    assert verdict["point_error"]["verdict"] == "too few independent horizons"


def test_a_model_that_forecasts_no_move_shows_n_a(site_data):
    board = json.loads((site_data.publish_dir / "scoreboard.json").read_text())
    (rw,) = [r for r in board["rows"] if r["symbol"] == BTC and r["model"] == "random_walk"]
    (vol,) = [r for r in board["rows"] if r["symbol"] == BTC and r["model"] == "random_walk_vol"]
    assert rw["direction_hit_rate"] is None and rw["brier_up"] is None and rw["expected_coverage_80"] is None
    assert vol["direction_hit_rate"] is not None and vol["brier_up"] is not None
    # 30 paths: a calibrated 80 % band of linear sample quantiles covers 80 % * 29/31 on average.
    assert vol["expected_coverage_80"] == pytest.approx(0.8 * 29 / 31)
    (rw_verdict,) = [v for v in board["verdicts"] if v["symbol"] == BTC and v["model"] == "random_walk"]
    assert rw_verdict["p_up"] is None and "no P(up) forecast (n/a)" in rw_verdict["sentence"]
    table = _section((site_data.publish_dir / "index.html").read_text(), BTC).split("<table>")[1]
    row = next(r for r in table.split("<tr") if "<td>random_walk" in r and "random_walk_vol" not in r)
    # n/a: direction, Brier P(up) and the Winkler score of a band it does not have
    assert row.count("<td>n/a</td>") == 3 and "74.8 %" in table
    assert rw["winkler_80"] is None and vol["winkler_80"] is not None


def test_uploaded_markets_stay_out_of_public_files_unless_published(copy):
    settings, wh, store = copy
    add_model(wh, "random_walk_vol", lambda p, f, last: p, new_symbol="my-upload")  # an uploaded market's scores
    publish_bars(
        publish_config(settings),
        wh,
        store,
        {BTC: [wh.query("SELECT max(origin) AS o FROM forecasts")["o"][0] - HOUR]},
        "1h",
    )
    public = b"".join(
        store.get(k) or b""
        for k in (
            "scoreboard.json",
            "index.html",
            "series/BTC-USDT/1h/latest.json",
            "series/BTC-USDT/1h/scoreboard.json",
        )
    )
    assert b"my-upload" not in public
    assert {r["symbol"] for r in json.loads(store.get("scoreboard.json"))["rows"]} == {BTC, "ETH/USDT"}
    opened = dataclasses.replace(settings, uploads_publish=True)
    publish_bars(
        publish_config(opened),
        wh,
        store,
        {BTC: [wh.query("SELECT max(origin) AS o FROM forecasts")["o"][0] - HOUR]},
        "1h",
    )
    board = json.loads(store.get("scoreboard.json"))
    assert "my-upload" in {r["symbol"] for r in board["rows"]} | {v["symbol"] for v in board["verdicts"]}


def test_uploads_publish_setting(tmp_path):
    assert small_settings(tmp_path / "a").uploads_publish is False  # private by default
    assert small_settings(tmp_path / "b", uploads={"publish": True}).uploads_publish is True
    with pytest.raises(ConfigError, match=r"demo\.yaml: uploads\.publish: expected true or false, got str .yes.$"):
        small_settings(tmp_path / "c", uploads={"publish": "yes"})


def test_the_track_record_check_reads_the_test_not_the_point_estimate():
    """A model 30 % worse on average but within noise (or on too few horizons) is not called worse."""

    def row(symbol: str = BTC, model: str = "m", **crps: Any) -> dict[str, Any]:
        base = {"relative": 0.3, "significant": False, "winner": None, "verdict": "too few independent horizons"}
        return {"symbol": symbol, "model": model, "crps": base | crps}

    assert crps_standing([row()], "m") == {BTC: "too few independent horizons"}
    assert crps_standing([row(verdict="no significant difference")], "m") == {BTC: "no significant difference"}
    assert crps_standing([row(significant=True, winner="reference")], "m") == {BTC: "worse"}
    assert crps_standing([row(significant=True, winner="model", relative=-0.2)], "m") == {BTC: "better"}
    assert crps_standing([row(model="other"), {"symbol": BTC, "model": "m", "crps": None}], "m") == {}
