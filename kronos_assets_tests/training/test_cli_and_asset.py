"""kronos-train on a tiny run, and the fine-tuned-weights asset trained from the warehouse's clean candles."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import yaml

from kronos_assets.cli.train import main
from kronos_assets.defs.ingest import clean_candles_key
from kronos_assets.defs.training import build_training_assets, finetuned_key
from kronos_assets.kronos.hub import load_checkpoint
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.helpers import small_settings

from .conftest import gbm_candles
from .test_config import TINY_RUN


def _csv(frame: pl.DataFrame, path: Path) -> str:
    frame.select(
        pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("timestamp"), "open", "high", "low", "close", "volume"
    ).write_csv(path)
    return str(path)


def test_cli_trains_resumes_and_writes_a_checkpoint(tmp_path: Path, capsys) -> None:
    from datetime import datetime, timezone

    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    run = copy.deepcopy(TINY_RUN)
    run["data"] |= {"source": "csv", "files": {"BTC/USDT": _csv(gbm_candles(1000, 2, start=start), tmp_path / "b.csv")}}
    cfg = tmp_path / "training.yaml"
    cfg.write_text(yaml.safe_dump({"runs": {"tiny": run}}))
    out = tmp_path / "out"
    args = ["tiny", "--config", str(cfg), "--home", str(tmp_path / "home"), "--out", str(out), "--quiet"]
    assert main([*args, "--max-steps", "5"]) == 0
    assert "continue with --resume" in capsys.readouterr().out
    assert (tmp_path / "home" / "training" / "tiny" / "state" / "state.json").is_file()
    assert main([*args, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "random_walk_vol" in printed and "random-weights" in printed
    for part in ("model", "tokenizer"):
        assert load_checkpoint(out / part, kind=part).info.parameter_count > 0
    summary = json.loads((out / "training.json").read_text())
    assert [h["stage"] for h in summary["history"]].count("predictor") >= 1
    assert set(summary["heldout"]["scores"]) == {"tiny", "random-weights", "random_walk", "random_walk_vol"}
    assert "kronos-train tiny" in (out / "MODEL_CARD.md").read_text()
    assert not (tmp_path / "home" / "training" / "tiny" / "state").exists()  # finished: state removed
    assert main(["--list", "--config", str(cfg)]) == 0


def _clean_rows(symbol: str, frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(symbol).alias("symbol"),
        pl.lit("1h").alias("timeframe"),
        pl.lit(None, pl.Float64).alias("log_return"),
        (pl.col("high") / pl.col("low")).log().alias("log_range"),
        pl.lit(None, pl.Float64).alias("realised_vol"),
        pl.lit(None, pl.Float64).alias("volume_z"),
        pl.lit(0, pl.Int32).alias("bars_missing_before"),
    )


def test_training_asset_trains_from_the_warehouse(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    settings = small_settings(tmp_path)
    run = copy.deepcopy(TINY_RUN)
    run["data"] |= {"source": "warehouse", "symbols": ["BTC/USDT", "ETH/USDT"]}
    other = copy.deepcopy(run)
    other["data"]["timeframe"] = "1d"  # not in the profile: no asset
    (settings.config_dir / "training.yaml").write_text(yaml.safe_dump({"runs": {"tiny": run, "daily": other}}))
    warehouse = Warehouse(settings.warehouse_path)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for i, sym in enumerate(["BTC/USDT", "ETH/USDT"]):
        rows = _clean_rows(sym, gbm_candles(1000, 10 + i, start=start))
        warehouse.replace("clean_candles", rows, "symbol = ? AND timeframe = ?", [sym, "1h"])

    assets = build_training_assets(settings)
    assert [a.key for a in assets] == [finetuned_key("tiny")]
    asset = assets[0]
    spec = next(iter(asset.specs))
    assert spec.group_name == "model" and "pytorch" in spec.kinds
    assert clean_candles_key("1h") in {d.asset_key for d in spec.deps}

    result = dg.materialize([asset], resources={"warehouse": warehouse})
    assert result.success
    meta = result.asset_materializations_for_node(asset.op.name)[0].metadata
    assert len(meta["training_curve"].value.records) >= 2
    assert np.isfinite(meta["heldout_crps"].value)
    assert "random_walk_vol" in meta["heldout_scores"].value
    assert "heldout_crps_random_weights" in meta and "predictor_final_loss" in meta
    out = settings.home / "checkpoints" / "tiny"
    assert meta["checkpoint"].value == str(out)
    for part in ("model", "tokenizer"):
        assert load_checkpoint(out / part, kind=part).info.sha256["model.safetensors"] == meta[f"{part}_sha256"].value


def test_fine_tuning_a_local_checkpoint_keeps_its_tokenizer_when_asked(tmp_path: Path) -> None:
    """base: a folder with model/ and tokenizer/; tokenizer steps 0 fine-tunes the predictor only."""
    from datetime import datetime, timezone

    from kronos_assets.training.config import load_training_config
    from kronos_assets.training.run import train_run, write_checkpoint
    from kronos_assets.training.trainer import build_scratch, weights_equal

    from .conftest import TINY_MODEL, TINY_TOKENIZER

    model, tok = build_scratch(TINY_TOKENIZER, TINY_MODEL, 5)
    write_checkpoint(model, tok, tmp_path / "base")
    run = copy.deepcopy(TINY_RUN)
    del run["scratch"]
    run["base"] = str(tmp_path / "base")
    run["tokenizer"]["steps"] = 0
    cfg = tmp_path / "training.yaml"
    cfg.write_text(yaml.safe_dump({"runs": {"ft": run}}))
    spec = load_training_config(cfg, {})["ft"]
    assert spec.base.kind == "folder"
    frames = {"BTC/USDT": gbm_candles(1000, 4, start=datetime(2025, 1, 1, tzinfo=timezone.utc))}
    out = train_run(spec, frames=frames, output=tmp_path / "out", state_dir=tmp_path / "state", evaluate=False)
    assert weights_equal(load_checkpoint(tmp_path / "out" / "tokenizer").module, tok)
    assert not weights_equal(load_checkpoint(tmp_path / "out" / "model").module, model)
    assert out.base_label == "base:base" and out.result.curve("tokenizer") == []


def test_cli_reads_the_profile_warehouse_that_the_library_is_handed(tmp_path: Path, monkeypatch, capsys) -> None:
    """training/run.py takes the warehouse as a value (it never loads the profile's settings); kronos-train opens
    the active profile's warehouse for a run whose data.source is "warehouse"."""
    from datetime import datetime, timezone

    import pytest

    from kronos_assets.base import environment
    from kronos_assets.training.config import load_training_config
    from kronos_assets.training.run import load_frames

    settings = small_settings(tmp_path)
    monkeypatch.setenv(environment.CONFIG_DIR, str(settings.config_dir))
    monkeypatch.setenv(environment.PROFILE, settings.profile)
    run = copy.deepcopy(TINY_RUN)
    run["data"] |= {"source": "warehouse", "symbols": ["BTC/USDT"]}
    cfg = tmp_path / "training.yaml"
    cfg.write_text(yaml.safe_dump({"runs": {"tiny": run}}))
    with pytest.raises(ValueError, match="run tiny: source 'warehouse' needs the warehouse"):
        load_frames(load_training_config(cfg)["tiny"])

    args = [
        "tiny",
        "--config",
        str(cfg),
        "--home",
        str(settings.home),
        "--out",
        str(tmp_path / "out"),
        "--quiet",
        "--no-eval",
        "--max-steps",
        "2",
    ]
    assert main(args) == 1  # an empty warehouse: no candles, said so
    assert "no 1h candles for ['BTC/USDT']" in capsys.readouterr().err
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    settings.open_warehouse().replace(
        "clean_candles",
        _clean_rows("BTC/USDT", gbm_candles(1000, 3, start=start)),
        "symbol = ? AND timeframe = ?",
        ["BTC/USDT", "1h"],
    )
    assert main(args) == 0
    assert "continue with --resume" in capsys.readouterr().out
