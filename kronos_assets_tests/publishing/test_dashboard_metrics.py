"""The registry's metrics on the published site: the Winkler score in scoreboard.json and the dashboard's table,
the direction-by-confidence table in the track record JSON and on the dashboard, and the skill card's label
stating the span its data cover (issue 26, items 1 and 4)."""

from __future__ import annotations

import html
import json

from kronos_assets.publishing.page_model import skill_card
from kronos_assets_tests.publishing.test_site import _sections

BTC = "BTC/USDT"


def test_winkler_and_the_confidence_table_are_published_and_shown(site_data):
    folder = site_data.publish_dir
    board = {r["model"]: r for r in json.loads((folder / "scoreboard.json").read_text())["rows"] if r["symbol"] == BTC}
    assert board["random_walk"]["winkler_80"] is None  # a point forecast has no band: n/a, not a number
    assert board["random_walk_vol"]["winkler_80"] >= board["random_walk_vol"]["width_80"] > 0
    latest = json.loads((folder / "series/BTC-USDT/1h/latest.json").read_text())
    table = latest["track_record"]["direction_by_confidence"]
    models = {t["model"] for t in table}
    assert "random_walk_vol" in models and "random_walk" not in models  # no P(up), no row
    assert [t["band"] for t in table if t["model"] == "random_walk_vol"] == ["p_up > 0.6", "p_up < 0.4", "0.4 to 0.6"]
    primary = latest["primary_model"]  # its scored forecasts, as of the origin, all in one band or another
    assert sum(t["n"] for t in table if t["model"] == primary) == latest["track_record"]["n"] > 0
    section = html.unescape(_sections((folder / "index.html").read_text())[BTC])
    assert '<th title="interval score of the 80 % band' in section and ">Winkler 80 %</th>" in section
    assert "Direction calls by confidence" in section
    assert "<th>P(up) > 0.6</th><th>P(up) < 0.4</th><th>0.4–0.6</th>" in section


def test_the_skill_card_states_the_span_its_data_cover(site_data):
    latest = json.loads((site_data.publish_dir / "series/BTC-USDT/1h/latest.json").read_text())
    v = latest["verdict"]
    # 60 hourly forecasts: 2.5 days, not "30 days"
    assert skill_card(latest).label == (
        "Skill vs random walk with volatility (CRPS, 2.5 days scored so far, of a 30-day window)"
    )
    full = v | {"first_origin": "2026-01-01T00:00:00+00:00", "last_origin": "2026-01-30T23:00:00+00:00"}
    assert skill_card(latest | {"verdict": full}).label == ("Skill vs random walk with volatility (CRPS, last 30 days)")
    assert skill_card(latest | {"verdict": None}).label == (
        "Skill vs random walk with volatility (CRPS, 30-day window, nothing scored yet)"
    )
