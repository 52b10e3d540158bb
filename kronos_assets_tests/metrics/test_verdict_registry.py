"""Verdicts derived from the metric registry: the published verdicts of a fixed record stay those of the hand-kept
list they replaced (golden/verdicts.json, written by that code: words and counts exactly, numbers to 1e-9 of their
size, which a library's summation order moves in the 16th digit), ``kronos-assets verify``
judges from the same derived list, and a metric registered with a verdict declaration reaches both."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kronos_assets.evaluation.track_record import dm_table, measures, verdicts
from kronos_assets.metrics import registry
from kronos_assets.publishing import verify as v
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.metrics.verdict_record import (
    CASES,
    GOLDEN,
    HOUR,
    PINNED,
    T0,
    build,
    differences,
    dumps,
    only_verdicts,
    warehouse_verdicts,
)


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    """The fixed record, judged on the pinned measures only: a metric registered later with a verdict of its own
    is left out here (its own test shows it), so the pin holds as the registry grows."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "METRICS", only_verdicts())
        wh = Warehouse(tmp_path_factory.mktemp("verdicts") / "warehouse.duckdb")
        yield wh, build(wh)


def verify_verdicts(scored) -> dict:
    """The verdicts ``kronos-assets verify`` recomputes from its re-scored rows, in the warehouse's cases."""
    out = {}
    for name, days in CASES.items():
        out[name] = verdicts(v.Losses(scored), "1h", days)
        out[f"{name} as of"] = verdicts(v.Losses(scored), "1h", days, scored_before=T0 + 120 * HOUR)
    return out


def test_published_verdicts_of_a_fixed_record_are_unchanged(record) -> None:
    wh, _ = record
    assert [m for m, *_ in measures()] == list(PINNED)
    assert differences(json.loads(dumps(warehouse_verdicts(wh))), json.loads(GOLDEN.read_text())) == []


def test_verify_judges_the_re_scored_record_as_the_warehouse_does(record) -> None:
    _, scored = record
    golden = json.loads(GOLDEN.read_text())
    ours = json.loads(dumps(verify_verdicts(scored)))
    assert differences(ours, {k: golden[k] for k in ours}) == []


def test_a_metric_registered_with_a_verdict_reaches_the_verdicts_and_verify(tmp_path, monkeypatch) -> None:
    """Two entries added to the registry alone (no other file): one judged against the random walk with volatility's
    same loss, one (probabilistic) against a constant."""
    log_error = registry.Metric(
        "abs_log_error",
        lambda i: np.abs(np.log(i.median / i.realised)),
        "absolute log error of the median",
        not_null=False,
        since=4,
        verdict=registry.Verdict(
            "log_error",
            "random walk with volatility",
            4,
            model=registry.BASELINE,
            label="the absolute log error of its median",
        ),
    )
    half_brier = registry.Metric(
        "half_brier",
        lambda i: 0.5 * (i.p_up - i.went_up) ** 2,
        "half the Brier score of P(up)",
        applies="probabilistic",
        not_null=False,
        since=4,
        verdict=registry.Verdict("half_brier", "a half coin flip", 5, constant=0.125, label="half its Brier score"),
    )
    monkeypatch.setattr(registry, "METRICS", (*registry.METRICS, log_error, half_brier))
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    scored = build(wh)
    rows = verdicts(wh, "1h", 30)
    btc = {r["model"]: r for r in rows if r["symbol"] == "BTC/USDT"}
    wide = btc["wide"]
    assert list(wide)[-3:] == ["log_error", "half_brier", "sentence"]
    for measure, name in (("log_error", "random walk with volatility"), ("half_brier", "a half coin flip")):
        c = wide[measure]
        assert c["reference_name"] == name and c["n"] == 260 and c["verdict"]
        assert f"{100 * abs(c['relative']):.1f} %" in wide["sentence"]
    own = [r["abs_log_error"] for r in scored[("BTC/USDT", "1h", "wide")].values()]
    assert wide["log_error"]["model"] == pytest.approx(np.mean(own), rel=1e-12)
    assert wide["half_brier"]["reference"] == 0.125
    assert "on the absolute log error of its median it was" in wide["sentence"]
    assert btc["random_walk_vol"]["log_error"] is None  # the reference itself
    assert btc["random_walk"]["half_brier"] is None  # a point forecast gives no probability
    assert {"log_error", "half_brier"} <= {d["measure"] for d in dm_table(rows, "30d")}
    # verify recomputes them from the re-scored forecasts, and names one published wrong
    assert json.loads(dumps(verdicts(v.Losses(scored), "1h", 30))) == json.loads(dumps(rows))
    summary = v.Summary()
    v.check_verdicts("scoreboard.json", rows, scored, summary)
    tampered = json.loads(dumps(rows))
    tampered[[r["model"] for r in tampered].index("wide")]["half_brier"]["model"] *= 1.01
    with pytest.raises(v.Mismatch, match=r"verdicts\[\d\] \(BTC/USDT 1h wide\)\.half_brier\.model"):
        v.check_verdicts("scoreboard.json", tampered, scored, v.Summary())
