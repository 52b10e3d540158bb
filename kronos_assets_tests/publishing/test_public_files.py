"""What published files may say: no path of the machine that made them (a checkpoint is named by name, revision
and sha256), and null, never 0, for what the page shows as n/a."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from kronos_assets.configuration.settings import REPO_ROOT
from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.partitions import bar_key, day_key
from kronos_assets.defs.publish import publish_config
from kronos_assets.defs.resources import build_resources
from kronos_assets.publishing.bars import publish_bars
from kronos_assets.publishing.pages import dashboard_html
from kronos_assets.publishing.public import is_local_path, local_name, public_provenance
from kronos_assets.publishing.sentences import NA_COLUMNS, SCORE_COLUMNS, score_cells
from kronos_assets.publishing.store import LocalStore
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.helpers import published_snapshot, small_settings
from kronos_assets_tests.publishing.conftest import HORIZON, HOUR, LAST_BAR, run_job

BTC = "BTC/USDT"


def strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings(v)


def local_path_hits(folder: Path, machine: list[str]) -> list[str]:
    """Every published file that names one of the ``machine``'s folders, or holds an absolute path (JSON)."""
    hits = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        body = path.read_bytes()
        hits += [f"{path.relative_to(folder)}: {m}" for m in machine if m.encode() in body]
        if path.suffix == ".json":
            hits += [f"{path.relative_to(folder)}: {s}" for s in strings(json.loads(body)) if is_local_path(s)]
    return hits


@pytest.fixture(scope="module")
def kronos_site(tmp_path_factory):
    """A demo-profile site whose primary model is the project's own Kronos checkpoint (a local folder)."""
    root = tmp_path_factory.mktemp("public")
    settings = small_settings(
        root, forecasters=["random_walk", "random_walk_vol", "kronos-demo"], primary_model="kronos-demo"
    )
    resources = build_resources(settings)
    defs = build_definitions(settings, resources)
    instance = dg.DagsterInstance.ephemeral()
    first = LAST_BAR - HOUR
    run_job(
        defs,
        instance,
        "candles_1h",
        day_key(BTC, first - timedelta(days=3)),
        day_key(BTC, LAST_BAR + (HORIZON + 1) * HOUR),
    )
    run_job(defs, instance, "forecast_1h", bar_key(BTC, first), bar_key(BTC, LAST_BAR), assets=["1h/forecasts"])
    publish_bars(
        publish_config(settings),
        Warehouse(settings.warehouse_path),
        LocalStore(settings.publish_dir),
        {BTC: [first, LAST_BAR]},
        "1h",
    )
    return settings, root


def test_published_files_name_checkpoints_never_paths_of_this_machine(kronos_site):
    settings, root = kronos_site
    machine = [str(REPO_ROOT), str(root), str(settings.profile_home), str(Path.home())]
    assert local_path_hits(settings.publish_dir, machine) == []
    latest = published_snapshot(settings.publish_dir)
    prov = latest["forecasts"]["kronos-demo"]["provenance"]
    folder = settings.model_specs["kronos-demo"].options.local_dir  # the configured checkpoint folder
    assert prov["model_checkpoint"] == f"{Path(folder).name}/model"
    assert prov["tokenizer_checkpoint"] == f"{Path(folder).name}/tokenizer"
    assert len(prov["model_sha256"]) == 64 and len(prov["tokenizer_sha256"]) == 64 and "model_revision" in prov
    assert not any(k.endswith("_path") for k in prov)


def test_a_hub_checkpoint_is_named_by_its_repo_and_stray_paths_by_their_last_parts():
    prov = {
        "model_repo": "NeoQuasar/Kronos-mini",
        "model_revision": "f4e6",
        "model_sha256": "ab" * 32,
        "model_path": "/home/alice/.cache/huggingface/hub/models--NeoQuasar--Kronos-mini/snapshots/f4e6",
        "tokenizer_repo": None,
        "tokenizer_path": "C:\\Users\\bob\\ckpt\\tokenizer",
        "notes": {"data": "/srv/data/candles.csv", "url": "https://example.test/a", "pair": "BTC/USDT"},
    }
    out = public_provenance(prov)
    assert out["model_checkpoint"] == "NeoQuasar/Kronos-mini" and out["tokenizer_checkpoint"] == "ckpt/tokenizer"
    assert out["notes"] == {"data": "data/candles.csv", "url": "https://example.test/a", "pair": "BTC/USDT"}
    assert not any(is_local_path(s) for s in strings(out))
    assert local_name("file:///opt/k/demo/model") == "demo/model"


def test_what_the_page_shows_as_na_is_null_in_the_json_never_zero(site_data):
    folder = site_data.publish_dir
    latest = published_snapshot(folder)
    # The plain random walk repeats one path: no P(up), no P(volatility amplification).
    rw, rw_vol = latest["forecasts"]["random_walk"], latest["forecasts"]["random_walk_vol"]
    assert rw["p_up"] is None and rw["p_vol_amp"] is None
    assert isinstance(rw_vol["p_up"], float) and isinstance(rw_vol["p_vol_amp"], float)
    for path in (folder / "series/BTC-USDT/1h/history").glob("*.json"):
        forecasts = json.loads(path.read_text())["forecasts"]
        assert forecasts["random_walk"]["p_up"] is None and forecasts["random_walk"]["p_vol_amp"] is None, path
    # Every scoreboard cell the page shows as n/a is null in scoreboard.json, and only those.
    board = json.loads((folder / "scoreboard.json").read_text())["rows"]
    assert {r["model"] for r in board} >= {"random_walk", "random_walk_vol"}
    for row in board:
        cells = dict(zip([c for c, *_ in SCORE_COLUMNS], score_cells(row, 10)))
        for col in NA_COLUMNS:
            assert (cells[col] == "n/a") == (row[col] is None), (row["model"], col)
        if cells["coverage_80"].endswith("(n/a)"):
            assert row["expected_coverage_80"] is None
    assert {r["direction_hit_rate"] for r in board if r["model"] == "random_walk"} == {None}
    # The dashboard of a point forecast's series says n/a for its probabilities (and does not fail on the nulls).
    html = dashboard_html([latest | {"primary_model": "random_walk"}], [], latest["origin"], False)
    assert html.count("n/a: a point forecast gives no probability") == 2
