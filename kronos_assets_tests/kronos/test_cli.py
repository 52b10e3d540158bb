"""kronos-forecast end to end on a small CSV with tiny checkpoints saved in tmp."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import huggingface_hub
import numpy as np
import polars as pl
import pytest

from kronos_assets.cli.forecast import main, read_candles_csv
from kronos_assets.forecasting.summary import summarise
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
    argv = [
        str(csv),
        "--model",
        str(ck["model"]),
        "--tokenizer",
        str(ck["tokenizer"]),
        "--horizon",
        "6",
        "--paths",
        "7",
        "--seed",
        "3",
        "--max-context",
        "64",
        "--device",
        "cpu",
        "-o",
        str(out),
        *extra,
    ]
    assert main(argv) == 0
    return json.loads(out.read_text())


def test_cli_forecast_writes_paths_and_summary(csv: Path, tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    doc = _forecast(csv, tmp_path / "a.json", checkpoints, "--top-k", "5", "--temperature", "0.7")
    assert len(doc["paths"]) == 7 and len(doc["paths"][0]) == 6 and len(doc["paths"][0][0]) == 6
    assert doc["fields"] == ["open", "high", "low", "close", "volume", "amount"]
    assert doc["timestamps"][0] == "2024-03-04T08:00:00Z" and len(doc["timestamps"]) == 6  # inferred 1h step
    assert 0 <= doc["summary"]["p_up"] <= 1 and 0 <= doc["summary"]["p_vol_amp"] <= 1
    assert len(doc["summary"]["close_quantiles"]["0.5"]) == 6
    paths = np.array(doc["paths"])
    want = summarise(paths[..., 3], paths[..., 4], read_candles_csv(csv)["close"].to_numpy())
    assert doc["summary"]["p_up"] == want.p_up and doc["summary"]["p_vol_amp"] == want.p_vol_amp
    assert doc["summary"]["close_quantiles"]["0.5"] == want.quantiles[want.levels.index(0.5)].tolist()
    assert doc["sampling"] == {
        "n_paths": 7,
        "horizon": 6,
        "temperature": 0.7,
        "top_k": 5,
        "top_p": 0.9,
        "seed": 3,
        "mode": "fast",
    }
    assert doc["provenance"]["model_path"] == str(checkpoints["model"])
    again = _forecast(csv, tmp_path / "b.json", checkpoints, "--top-k", "5", "--temperature", "0.7")
    assert again["paths"] == doc["paths"]  # one seed fixes the result


def test_cli_from_offline_hub_cache(
    csv: Path, tmp_path: Path, checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    install_into_cache(checkpoints["model"], "acme/tiny-model", COMMIT, cache)
    install_into_cache(checkpoints["tokenizer"], "acme/tiny-tokenizer", COMMIT, cache)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "c.json"
    argv = [
        str(csv),
        "--model",
        "acme/tiny-model",
        "--model-revision",
        COMMIT,
        "--tokenizer",
        "acme/tiny-tokenizer",
        "--tokenizer-revision",
        "main",
        "--cache-dir",
        str(cache),
        "--horizon",
        "4",
        "--paths",
        "3",
        "--context-policy",
        "exact",
        "--mode",
        "reference",
        "-o",
        str(out),
        "--no-paths",
    ]
    assert main(["forecast", *argv]) == 0
    doc = json.loads(out.read_text())
    assert "paths" not in doc and doc["provenance"]["model_revision"] == COMMIT
    assert doc["provenance"]["context_policy"] == "exact"


def test_cli_download_offline_reports_and_fails_cleanly(
    tmp_path: Path, checkpoints: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    install_into_cache(checkpoints["model"], "acme/tiny-model", COMMIT, tmp_path)
    assert main(["download", f"acme/tiny-model@{COMMIT}", "--cache-dir", str(tmp_path), "--offline"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["repo_id"] == "acme/tiny-model" and info["revision"] == COMMIT and info["parameter_count"] > 0
    assert main(["download", "acme/absent", "--cache-dir", str(tmp_path), "--offline"]) == 2
    err = capsys.readouterr().err
    assert "acme/absent" in err and "revision main" in err and "kronos-forecast download acme/absent" in err


def test_cli_errors_and_help(
    csv: Path, tmp_path: Path, checkpoints: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    pl.read_csv(csv).drop("close").write_csv(bad)
    assert main([str(bad), "--model", str(checkpoints["model"]), "--tokenizer", str(checkpoints["tokenizer"])]) == 2
    assert "missing columns close" in capsys.readouterr().err
    help_text = subprocess.run(
        [sys.executable, "-m", "kronos_assets.cli.forecast", "forecast", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--horizon",
        "--paths",
        "--temperature",
        "--top-k",
        "--top-p",
        "--seed",
        "--context-policy",
        "--max-context",
        "--device",
        "--model-revision",
        "trim",
        "demo",
    ):
        assert flag in help_text
    assert "--history" in help_text and "488 with the defaults" in " ".join(help_text.split())


HEAVY = ("torch", "numpy", "polars", "huggingface_hub", "safetensors")


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["forecast", "--help"],
        ["x.csv", "--horizon", "0"],
        ["x.csv", "--paths", "many"],
        ["x.csv", "--context-policy", "nope"],
    ],
)
def test_help_and_argument_errors_are_immediate(argv: list[str]) -> None:
    """Parsing needs no heavy library: help and argument errors print before torch & co. would load."""
    code = (
        "import sys, time; t = time.perf_counter(); from kronos_assets.cli.forecast import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(code, loaded, time.perf_counter() - t, file=sys.stderr)"
    )
    t = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t
    exit_code, loaded = run.stderr.strip().splitlines()[-1].split(" ", 2)[:2]
    assert loaded == "[]", run.stderr
    assert exit_code == ("0" if "--help" in argv else "2"), run.stderr
    assert elapsed < 1.5, f"{argv}: {elapsed:.2f} s"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name,text,extra,want",
    [
        (
            "semi.csv",
            "timestamp;open;high;low;close\n2024-01-01T00:00:00Z;1;2;0.5;1.5\n",
            [],
            ["row 1", "separated by semicolons", "comma-separated"],
        ),
        ("header.csv", "timestamp,open,high,low,close,volume\n", ["--interval", "1h"], ["header.csv", "no rows"]),
        (
            "lowhigh.csv",
            "timestamp,open,high,low,close\n2024-01-01T00:00:00Z,1,2,0.5,1.5\n2024-01-01T01:00:00Z,1,1.1,1.3,1.05\n",
            [],
            ["row 2", "high is below low"],
        ),
        (
            "negative.csv",
            "timestamp,open,high,low,close\n2024-01-01T00:00:00Z,1,2,0.5,1.5\n2024-01-01T01:00:00Z,-1,2,-2,1\n",
            [],
            ["row 2", "zero or negative"],
        ),
        ("one.csv", "timestamp,open,high,low,close\n2024-01-01T00:00:00Z,1,2,0.5,1.5\n", [], ["--interval"]),
    ],
)
def test_bad_files_get_one_clear_line(
    tmp_path: Path,
    checkpoints: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str,
    extra: list[str],
    want: list[str],
) -> None:
    path = _write(tmp_path / name, text)
    argv = [str(path), "--model", str(checkpoints["model"]), "--tokenizer", str(checkpoints["tokenizer"]), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("kronos-forecast: error:"), err
    for w in want:
        assert w in err, err


def test_a_long_file_forecasts_like_its_last_history_bars(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    """The default history (max_context - horizon = 58 here) is cut before anything else; the old bars, at a far
    other price level, change nothing: the JSON paths are bitwise those of a file holding only the last 58."""
    old = candles(400, seed=8).with_columns(pl.col("open", "high", "low", "close") * 20)
    recent = candles(58, seed=9, start=old["ts"][-1] + timedelta(hours=1))
    for name, df in (("long.csv", pl.concat([old, recent])), ("short.csv", recent)):
        df.drop("exchange").with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(tmp_path / name)
    long = _forecast(tmp_path / "long.csv", tmp_path / "long.json", checkpoints)
    short = _forecast(tmp_path / "short.csv", tmp_path / "short.json", checkpoints)
    assert long["paths"] == short["paths"] and long["summary"] == short["summary"]
    assert long["input"]["rows_in_file"] == 458 and long["input"]["rows"] == 58
    explicit = _forecast(tmp_path / "long.csv", tmp_path / "h.json", checkpoints, "--history", "30")
    assert explicit["input"]["rows"] == 30 and explicit["paths"] != long["paths"]


def test_shipped_demo_checkpoint_by_name_offline(csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "demo.json"
    assert main([str(csv), "--model", "demo", "--paths", "3", "--horizon", "4", "-o", str(out), "--no-paths"]) == 0
    doc = json.loads(out.read_text())
    # "demo" is the demo profile's checkpoint (trained on real candles); "synthetic" its synthetic-only predecessor.
    assert doc["provenance"]["model_path"].endswith("checkpoints/real-1h/model")
    assert doc["provenance"]["tokenizer_path"].endswith("checkpoints/real-1h/tokenizer")
    assert doc["provenance"]["max_context"] == 504 and doc["provenance"]["context_policy"] == "exact"
    from kronos_assets.configuration.settings import load_settings

    configured = load_settings("demo", home=tmp_path / "home").model_specs["kronos-demo"]
    assert str(configured.options.local_dir).endswith("checkpoints/real-1h")
    synthetic = tmp_path / "synthetic.json"
    assert (
        main([str(csv), "--model", "synthetic", "--paths", "3", "--horizon", "4", "-o", str(synthetic), "--no-paths"])
        == 0
    )
    assert json.loads(synthetic.read_text())["provenance"]["model_path"].endswith("checkpoints/demo/model")


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9", "https://kronos-test.invalid"])
def test_an_unreachable_hub_fails_in_seconds_saying_how_to_predownload(
    csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], endpoint: str
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    t = time.perf_counter()
    assert (
        main(
            [
                str(csv),
                "--model",
                "acme/not-cached",
                "--tokenizer",
                "acme/not-cached-tok",
                "--cache-dir",
                str(tmp_path / "hub"),
            ]
        )
        == 2
    )
    assert time.perf_counter() - t < 5
    err = capsys.readouterr().err
    assert "acme/not-cached" in err and "cannot reach the hub" in err
    assert "kronos-forecast download acme/not-cached --revision main" in err and "HF_HUB_OFFLINE=1" in err


def test_read_candles_csv_epoch_and_naive_times(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    p.write_text("Open_Time,open,high,low,close\n1709251200000,1,2,0.5,1.5\n1709254800000,1.5,2,1,1.2\n")
    df = read_candles_csv(p)
    assert df["ts"].dtype == pl.Datetime("us", "UTC") and str(df["ts"][0]) == "2024-03-01 00:00:00+00:00"
    p.write_text("date,open,high,low,close\n2024-03-01 00:00:00,1,2,0.5,1.5\n")
    assert read_candles_csv(p)["ts"].dtype == pl.Datetime("us", "UTC")


def test_the_output_file_is_replaced_whole(
    csv: Path, tmp_path: Path, checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while writing leaves the previous forecast file intact and no temporary file behind."""
    out = tmp_path / "f.json"
    out.write_text('{"previous": true}')
    real_write = Path.write_text

    def failing_write(self: Path, text: str, *a: object, **k: object) -> int:
        real_write(self, text[: len(text) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", failing_write)
    argv = [
        str(csv),
        "--model",
        str(checkpoints["model"]),
        "--tokenizer",
        str(checkpoints["tokenizer"]),
        "--horizon",
        "3",
        "--paths",
        "2",
        "--max-context",
        "64",
        "-o",
        str(out),
    ]
    assert main(argv) == 2
    monkeypatch.undo()
    assert out.read_text() == '{"previous": true}' and [p.name for p in tmp_path.iterdir()] == ["candles.csv", "f.json"]
    assert main(argv) == 0 and "paths" in json.loads(out.read_text())
