"""The adhoc_forecast job run in process: "Launch" with no edits works on the demo profile (the project's own
Kronos checkpoint), the result is in the materialisation's metadata and files, the warehouse is left exactly as it
was, and bad settings fail at run start with a message naming the cause."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from kronos_assets.configuration.settings import REPO_ROOT, load_settings
from kronos_assets.defs.adhoc import ADHOC_JOB, ADHOC_POOL
from kronos_assets.defs.factory import build_definitions
from kronos_assets.forecasting import kinds
from kronos_assets.market.synthetic import SyntheticMarket
from kronos_assets.publishing.public import is_local_path
from kronos_assets.warehouse import Warehouse

pytestmark = pytest.mark.timeout(180)
DEMO_WEIGHTS = REPO_ROOT / "kronos_assets" / "checkpoints" / "real-1h" / "model" / "model.safetensors"  # kronos-demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The shipped synthetic profile (the demo on the synthetic market) in a temporary home, its warehouse holding
    one day of candles."""
    settings = load_settings("synthetic", home=tmp_path_factory.mktemp("adhoc") / "home")
    defs = build_definitions(settings)
    defs.get_repository_def().load_all_definitions()  # what a code server does: names must not collide
    instance = dg.DagsterInstance.ephemeral()
    seeded = defs.resolve_job_def("candles_1h").execute_in_process(
        instance=instance, partition_key="2025-06-01|BTC-USDT"
    )
    assert seeded.success
    return settings, defs, instance


def warehouse_state(settings) -> dict:
    wh = Warehouse(settings.warehouse_path)
    tables = wh.query("SELECT table_name FROM information_schema.tables ORDER BY 1")["table_name"].to_list()
    return {t: wh.query(f'SELECT * FROM "{t}" ORDER BY ALL').to_dicts() for t in tables}


def run(defs, instance, config: dict | None = None) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(ADHOC_JOB).execute_in_process(
        run_config={"ops": {"adhoc_forecast": {"config": config}}} if config else None,
        instance=instance,
        raise_on_error=False,
    )


def logged(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    """The messages the run logged (context.log), as the run page lists them."""
    return [e.user_message for e in instance.all_logs(result.run_id) if e.dagster_event is None]


def json_strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from json_strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from json_strings(v)


def failure(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    [event] = [e for e in result.all_events if e.is_step_failure]
    data = event.step_failure_data
    return data.user_failure_data.description if data.user_failure_data else data.error.message


def test_launch_with_no_edits_forecasts_scores_and_leaves_the_track_record_alone(demo):
    settings, defs, instance = demo
    before = warehouse_state(settings)
    assert before["clean_candles"], "the warehouse was not seeded"
    weights_sha = hashlib.sha256(DEMO_WEIGHTS.read_bytes()).hexdigest()
    file_sha = hashlib.sha256(settings.warehouse_path.read_bytes()).hexdigest()

    result = run(defs, instance)
    assert result.success
    [mat] = result.asset_materializations_for_node("adhoc_forecast")
    md = {k: v.value for k, v in mat.metadata.items()}
    assert warehouse_state(settings) == before
    assert hashlib.sha256(settings.warehouse_path.read_bytes()).hexdigest() == file_sha

    folder = settings.profile_home / "adhoc" / result.run_id
    assert md["chart_png"] == str(folder / "forecast.png") and md["chart_html"] == str(folder / "forecast.html")
    inline = re.match(r"!\[forecast\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)\n\n", md["chart"])
    assert inline and base64.b64decode(inline.group(1)) == (folder / "forecast.png").read_bytes()
    # The run page shows tables and text as they are: the scores are a table, the chart a log row of text.
    assert list(md)[0] == "metrics" and isinstance(mat.metadata["metrics"], dg.TableMetadataValue)
    table = [r.data for r in md["metrics"].records]
    assert [r["model"] for r in table] == ["kronos-demo", "random_walk", "random_walk_vol"]
    assert table[1]["P(up)"] == table[1]["P(up) hit"] == "n/a"  # the plain random walk makes no P(up)
    assert md["scores"]["random_walk"]["p_up"] is None and md["scores"]["random_walk"]["p_up_hit"] is None
    assert "| random_walk |" in md["chart"] and "n/a: a point forecast gives no P(up)" in md["metrics_note"]
    [text_chart] = [m for m in logged(instance, result) if "held out" in m and "━" in m]
    assert text_chart.startswith("BTC/USDT 1h · forecast at") and len(text_chart.splitlines()) == 11
    html = (folder / "forecast.html").read_text()
    assert "held out (what happened)" in html and "plotly" in html.lower()

    prov = md["provenance"]
    assert prov["model"] == md["model"] == "kronos-demo" and prov["model_sha256"] == weights_sha
    assert prov["model_checkpoint"] == f"{DEMO_WEIGHTS.parent.parent.name}/model"  # named, never a local path
    assert not [s for s in json_strings(prov) if is_local_path(s) or str(REPO_ROOT) in s]
    assert prov["sampling"] == {
        "n_paths": 30,
        "horizon": 24,
        "temperature": 1.0,
        "top_p": settings.sampling.top_p,
        "top_k": 0,
        "seed": settings.sampling.seed,
    }
    assert prov["source"] == {"kind": "synthetic", "symbol": "BTC/USDT", "timeframe": "1h"}
    assert prov["history"][2] == 480 and prov["held_out"][2] == 24  # lookback = the timeframe's history_bars
    assert pl.Series([prov["history"][1], prov["held_out"][0]]).str.to_datetime().diff()[1].total_seconds() == 3600
    rows = [ln for ln in md["chart"].splitlines() if ln.startswith("| ") and not ln.startswith("| model")]
    assert [r.split("|")[1].strip() for r in rows] == ["kronos-demo", "random_walk", "random_walk_vol"]
    assert md["scores"]["kronos-demo"]["mae"] == md["mae"] > 0 and md["scores"]["kronos-demo"]["scored_steps"] == 24
    assert 0 <= md["coverage_90"] <= 1
    # The synthetic market is read at the wall clock, so the paths change every hour: at P(up) exactly 0.5 (15 of
    # 30 paths up) there is no call to score.
    p_up = md["scores"]["kronos-demo"]["p_up"]
    assert md["p_up_hit"] in (0.0, 1.0) if p_up != 0.5 else md["p_up_hit"] is None, (p_up, md["p_up_hit"])


def test_the_demo_profile_forecasts_the_shipped_real_candles_at_the_replay_clock(tmp_path):
    settings = load_settings("demo", home=tmp_path / "home")
    assert settings.replay
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    result = run(defs, instance, {"model": "random_walk_vol", "lookback": 64, "horizon": 6})
    assert result.success, failure(result)
    [mat] = result.asset_materializations_for_node("adhoc_forecast")
    prov = mat.metadata["provenance"].value
    end = settings.replay_market().data_end()  # no clock file: a look by hand stands at the data's end
    assert prov["source"] == {
        "kind": "replay",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "exchange": "binance",
        "as_of": end.isoformat(),
    }
    assert prov["held_out"][1] == (end - timedelta(hours=1)).isoformat() and prov["held_out"][2] == 6
    assert not settings.replay_clock_file.exists()  # and never starts the schedules' replay walk
    [text_chart] = [m for m in logged(instance, result) if "held out" in m and "━" in m]
    assert "REPLAY of real Binance candles" in text_chart.splitlines()[0]


def test_garch_a_model_of_another_kind_forecasts_ad_hoc_next_to_the_kinds_baselines(demo):
    settings, defs, instance = demo
    assert settings.model_specs["garch"].kind == "garch"
    result = run(defs, instance, {"model": "garch"})
    assert result.success
    [mat] = result.asset_materializations_for_node("adhoc_forecast")
    md = {k: v.value for k, v in mat.metadata.items()}
    rows = [ln for ln in md["chart"].splitlines() if ln.startswith("| ") and not ln.startswith("| model")]
    assert (
        [r.split("|")[1].strip() for r in rows]
        == ["garch", *kinds.BUILTIN]
        == ["garch", "random_walk", "random_walk_vol"]
    )
    prov = md["provenance"]
    assert md["model"] == prov["model"] == "garch" and prov["model_kind"] == "garch" and prov["device"] is None
    assert prov["garch"]["fit"] == "ok" and prov["garch"]["n_returns"] == 479  # fitted on the 480 history bars
    garch = md["scores"]["garch"]
    assert garch["scored_steps"] == 24 and garch["mae"] == md["mae"] > 0 and garch != md["scores"]["random_walk_vol"]
    # GARCH has no context: a lookback over kronos-demo's 504 bars is taken.
    deep = run(defs, instance, {"model": "garch", "lookback": 600, "horizon": 4})
    assert deep.success
    [mat] = deep.asset_materializations_for_node("adhoc_forecast")
    assert mat.metadata["provenance"].value["history"][2] == 600


def test_the_step_takes_its_own_pool_never_the_warehouse_writers(demo):
    _, defs, _ = demo
    node = defs.resolve_job_def(ADHOC_JOB).graph.node_named("adhoc_forecast")
    assert node.definition.pool == ADHOC_POOL == "adhoc"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model": "kronos-dem"}, "unknown model (or checkpoint folder) 'kronos-dem'; did you mean 'kronos-demo'?"),
        (
            {"model": "garc"},
            "unknown model (or checkpoint folder) 'garc'; did you mean 'garch'? (valid: garch, kronos-demo",
        ),
        ({"lookback": 505}, "lookback 505 is over the model's context of 504 bars; use lookback <= 504"),
        ({"symbol": "BTC/USD"}, "unknown symbol 'BTC/USD'; did you mean 'BTC/USDT'?"),
        ({"file": "nope.csv"}, "file 'nope.csv' cannot be used"),
    ],
)
def test_bad_settings_fail_at_run_start_naming_the_cause(demo, config, message):
    _, defs, instance = demo
    assert message in failure(run(defs, instance, config))


def test_an_uploaded_file_is_validated_and_must_be_long_enough(demo):
    settings, defs, instance = demo
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    (settings.uploads_dir / "bad.csv").write_text("timestamp,open,high,low,close\n2025-01-01T00:00:00Z,1,0.5,0.9,1\n")
    assert re.search(r"file 'bad.csv' cannot be used: .*bad.csv", failure(run(defs, instance, {"file": "bad.csv"})))
    start = datetime(2025, 3, 1, tzinfo=UTC)
    candles = SyntheticMarket(seed=99).fetch(
        "MY/COIN", "1h", start, start + timedelta(hours=100), start + timedelta(days=9)
    )
    candles.select(
        pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("timestamp"), "open", "high", "low", "close", "volume"
    ).write_csv(settings.uploads_dir / "my-coin.csv")  # 100 bars
    short = failure(run(defs, instance, {"file": "my-coin.csv", "horizon": 60, "holdout": 41}))
    assert "horizon 60 + holdout 41 = 101 bars is longer than file 'my-coin.csv' (100 bars)" in short
    deep = failure(run(defs, instance, {"file": "my-coin.csv", "lookback": 90}))
    assert "lookback 90 + holdout 24 bars is more than file 'my-coin.csv' holds (100 bars); use lookback <= 76" in deep

    result = run(defs, instance, {"file": "my-coin.csv", "lookback": 64, "horizon": 8, "holdout": 12, "seed": 5})
    assert result.success
    [mat] = result.asset_materializations_for_node("adhoc_forecast")
    prov = mat.metadata["provenance"].value
    assert prov["source"] == {
        "kind": "file",
        "file": "my-coin.csv",
        "rows": 100,
        "sha256": hashlib.sha256((settings.uploads_dir / "my-coin.csv").read_bytes()).hexdigest(),
    }
    assert prov["history"] == [candles["ts"][24].isoformat(), candles["ts"][87].isoformat(), 64]
    assert prov["held_out"] == [candles["ts"][88].isoformat(), candles["ts"][99].isoformat(), 12]
    assert (
        mat.metadata["series"].value == "my-coin 1h"
        and mat.metadata["scores"].value["kronos-demo"]["scored_steps"] == 8
    )


def test_an_unknown_device_is_refused_by_the_config_schema(demo):
    _, defs, instance = demo
    with pytest.raises(dg.DagsterInvalidConfigError, match="gpu"):
        run(defs, instance, {"device": "gpu"})


def test_a_checkpoint_folder_is_a_model_and_a_device_that_is_absent_is_named(demo, tmp_path):
    settings, defs, instance = demo
    folder = REPO_ROOT / "kronos_assets" / "checkpoints" / "demo"
    result = run(defs, instance, {"model": str(folder), "lookback": 64, "horizon": 4, "device": "cpu"})
    assert result.success
    [mat] = result.asset_materializations_for_node("adhoc_forecast")
    prov = mat.metadata["provenance"].value
    assert prov["model_checkpoint"] == "demo/model" and "model_path" not in prov and prov["device"] == "cpu"
    assert prov["model_sha256"] == hashlib.sha256((folder / "model" / "model.safetensors").read_bytes()).hexdigest()

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert (
        f"model folder {str(tmp_path)!r} is not a Kronos checkpoint: {tmp_path}/model/model.safetensors not found"
        in (failure(run(defs, instance, {"model": str(tmp_path)})))
    )

    import torch

    cuda = run(defs, instance, {"device": "cuda", "lookback": 64, "horizon": 4})
    if torch.cuda.is_available():
        assert cuda.success
    else:
        assert "device cuda: torch sees no CUDA GPU on this machine; use auto or cpu" in failure(cuda)


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"top_p": 1.5}, "top_p", "Input should be less than or equal to 1"),
        ({"n_paths": 0}, "n_paths", "Input should be greater than or equal to 1"),
        ({"temperature": 0.0}, "temperature", "Input should be greater than 0"),
    ],
)
def test_sampling_out_of_range_fails_at_run_start_naming_the_field(demo, config, field, message):
    _, defs, instance = demo
    result = run(defs, instance, config)
    [event] = [e for e in result.all_events if e.is_step_failure]
    cause = event.step_failure_data.error.cause.message
    assert f"validation error for AdhocForecastConfig\n{field}\n  {message}" in cause
    assert not result.asset_materializations_for_node("adhoc_forecast")
