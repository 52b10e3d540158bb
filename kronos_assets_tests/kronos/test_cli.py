"""kronos-forecast end to end on a small CSV with tiny checkpoints saved in tmp."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import polars as pl
import pytest

from kronos_assets.kronos.cli import main, read_candles_csv
from kronos_assets.kronos.hub import install_into_cache

from .conftest import candles

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "candles.csv"
    df = candles(80).drop("exchange", "amount")
    df.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("timestamp")).drop("ts").write_csv(path)
    return path


def _forecast(csv: Path, out: Path, ck: dict[str, Path], *extra: str) -> dict:
    argv = [str(csv), "--model", str(ck["model"]), "--tokenizer", str(ck["tokenizer"]), "--horizon", "6",
            "--paths", "7", "--seed", "3", "--max-context", "64", "--device", "cpu", "-o", str(out),
            *extra]  # fmt: skip
    assert main(argv) == 0
    return json.loads(out.read_text())


def test_cli_forecast_writes_paths_and_summary(csv: Path, tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    doc = _forecast(csv, tmp_path / "a.json", checkpoints, "--top-k", "5", "--temperature", "0.7")
    assert len(doc["paths"]) == 7 and len(doc["paths"][0]) == 6 and len(doc["paths"][0][0]) == 6
    assert doc["fields"] == ["open", "high", "low", "close", "volume", "amount"]
    assert doc["timestamps"][0] == "2024-03-04T08:00:00Z" and len(doc["timestamps"]) == 6  # inferred 1h step
    assert 0 <= doc["summary"]["p_up"] <= 1 and 0 <= doc["summary"]["p_vol_amp"] <= 1
    assert len(doc["summary"]["close_quantiles"]["0.5"]) == 6
    assert doc["sampling"] == {"n_paths": 7, "horizon": 6, "temperature": 0.7, "top_k": 5, "top_p": 0.9,
                               "seed": 3, "mode": "fast"}  # fmt: skip
    assert doc["provenance"]["model_path"] == str(checkpoints["model"])
    again = _forecast(csv, tmp_path / "b.json", checkpoints, "--top-k", "5", "--temperature", "0.7")
    assert again["paths"] == doc["paths"]  # one seed fixes the result


def test_cli_from_offline_hub_cache(csv: Path, tmp_path: Path, checkpoints: dict[str, Path],
                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    cache = tmp_path / "hub"
    install_into_cache(checkpoints["model"], "acme/tiny-model", COMMIT, cache)
    install_into_cache(checkpoints["tokenizer"], "acme/tiny-tokenizer", COMMIT, cache)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "c.json"
    argv = [str(csv), "--model", "acme/tiny-model", "--model-revision", COMMIT, "--tokenizer", "acme/tiny-tokenizer",
            "--tokenizer-revision", "main", "--cache-dir", str(cache), "--horizon", "4", "--paths", "3",
            "--context-policy", "exact", "--mode", "reference", "-o", str(out), "--no-paths"]  # fmt: skip
    assert main(["forecast", *argv]) == 0
    doc = json.loads(out.read_text())
    assert "paths" not in doc and doc["provenance"]["model_revision"] == COMMIT
    assert doc["provenance"]["context_policy"] == "exact"


def test_cli_download_offline_reports_and_fails_cleanly(tmp_path: Path, checkpoints: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    install_into_cache(checkpoints["model"], "acme/tiny-model", COMMIT, tmp_path)
    assert main(["download", f"acme/tiny-model@{COMMIT}", "--cache-dir", str(tmp_path), "--offline"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["repo_id"] == "acme/tiny-model" and info["revision"] == COMMIT and info["parameter_count"] > 0
    assert main(["download", "acme/absent", "--cache-dir", str(tmp_path), "--offline"]) == 2
    err = capsys.readouterr().err
    assert "acme/absent" in err and "revision main" in err and "kronos-forecast download acme/absent" in err


def test_cli_errors_and_help(csv: Path, tmp_path: Path, checkpoints: dict[str, Path],
                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    bad = tmp_path / "bad.csv"
    pl.read_csv(csv).drop("close").write_csv(bad)
    assert main([str(bad), "--model", str(checkpoints["model"]), "--tokenizer", str(checkpoints["tokenizer"])]) == 2
    assert "missing columns ['close']" in capsys.readouterr().err
    help_text = subprocess.run([sys.executable, "-m", "kronos_assets.kronos.cli", "forecast", "--help"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
    for flag in ("--horizon", "--paths", "--temperature", "--top-k", "--top-p", "--seed", "--context-policy",
                 "--max-context", "--device", "--model-revision", "trim"):  # fmt: skip
        assert flag in help_text


def test_read_candles_csv_epoch_and_naive_times(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    p.write_text("Open_Time,open,high,low,close\n1709251200000,1,2,0.5,1.5\n1709254800000,1.5,2,1,1.2\n")
    df = read_candles_csv(p)
    assert df["ts"].dtype == pl.Datetime("us", "UTC") and str(df["ts"][0]) == "2024-03-01 00:00:00+00:00"
    p.write_text("date,open,high,low,close\n2024-03-01 00:00:00,1,2,0.5,1.5\n")
    assert read_candles_csv(p)["ts"].dtype == pl.Datetime("us", "UTC")
