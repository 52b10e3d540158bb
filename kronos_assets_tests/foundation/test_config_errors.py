"""A configuration file's problems all at once, each naming file and field; values that would only fail in a run
(no timeframe, absurd sampling sizes, more history than a model reads) refused by `check`; broken training.yaml
and checkpoint config.json files are one line naming the file, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from kronos_assets.base.config_files import ConfigError
from kronos_assets.configuration.settings import load_settings
from kronos_assets.kronos.config import config_from_json
from kronos_assets.kronos.errors import CheckpointError
from kronos_assets.training.config import load_training_config
from kronos_assets_tests.helpers import SMALL_MARKETS, write_configs

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEMO_CHECKPOINT = REPO / "kronos_assets" / "checkpoints" / "demo"


def _load(cfg: Path, name: str = "demo"):
    return load_settings(name, config_dir=cfg, home=cfg.parent / "home", today=date(2026, 11, 21))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*args], cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def test_every_problem_of_a_profile_at_once(tmp_path):
    cfg = write_configs(tmp_path)
    (cfg / "profiles" / "demo.yaml").write_text(
        "description: x\nmarket: synthetic\ntimeframes: [1h, 2h]\nforecasters: [random_walk, random_walk_vl]\n"
        "primary_modle: random_walk\npublish: {backend: locl}\nuploads: {stable_looks: 2}\nuploads: {publish: 1}\n"
    )
    with pytest.raises(ConfigError) as err:
        _load(cfg)
    lines = err.value.lines
    path = cfg / "profiles" / "demo.yaml"
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    expected = [
        "key 'uploads' written twice (lines 7 and 8)",
        "publish.backend: unknown backend 'locl'",
        "primary_modle: unknown key; did you mean 'primary_model'?",
        "uploads.publish: expected true or false",
        "timeframes[1]: '2h' is not defined in",
        "forecasters[1]: unknown forecaster 'random_walk_vl'",
        "did you mean 'random_walk_vol'?",
    ]
    for part in expected:
        assert any(part in line for line in lines), (part, lines)
    # The misspelt key is one line with its nearest name, not also a 'missing primary_model' line.
    assert not any("primary_model: missing" in line for line in lines), lines
    assert len(lines) == 6, lines


def test_every_problem_of_markets_and_models_at_once(tmp_path):
    markets = yaml.safe_load(yaml.safe_dump(SMALL_MARKETS))
    markets["timeframes"]["1h"].update(horizon=0, history_bars=2.5)
    markets["timeframes"]["4h"]["horizn"] = markets["timeframes"]["4h"].pop("horizon")
    markets["exchanges"][0]["base_url"] = "ftp://x"
    cfg = write_configs(tmp_path, markets=markets)
    with pytest.raises(ConfigError) as err:
        _load(cfg)
    text = str(err.value)
    for part in (
        "timeframes.1h.horizon: must be a whole number",
        "timeframes.1h.history_bars: must be a whole number",
        "timeframes.4h.horizn: unknown key; did you mean 'horizon'?",
        "exchanges[0].base_url: must be",
    ):
        assert f"markets.yaml: {part}" in text, text

    cfg = write_configs(tmp_path / "m")
    (cfg / "models.yaml").write_text(
        "models:\n  a: {kind: garh}\n  b: {local_dir: kronos_assets/checkpoints/demo, max_context: -5}\n"
        "  random_walk: {kind: random_walk}\n"
        "sampling: {n_paths: 0, temperature: 1.0, top_p: 2, top_k: 0, seed: 1}\n"
    )
    with pytest.raises(ConfigError) as err:
        _load(cfg)
    text = str(err.value)
    for part in (
        "sampling.n_paths: must be a whole number",
        "sampling.top_p: must be a number",
        "models.a.kind: unknown kind 'garh'; did you mean 'garch'?",
        "models.b.max_context: must be",
        "models.random_walk: name is reserved",
    ):
        assert f"models.yaml: {part}" in text, text


@pytest.mark.parametrize(
    "file, change, field, bound",
    [
        ("profiles/demo.yaml", {"timeframes": []}, "timeframes", "must list at least one timeframe"),
        ("models.yaml", {"sampling.n_paths": 100_000_000}, "sampling.n_paths", "in 1..1000, got 100000000"),
        ("markets.yaml", {"timeframes.1h.horizon": 100_000}, "timeframes.1h.horizon", "in 1..1000, got 100000"),
        (
            "markets.yaml",
            {"timeframes.1h.history_bars": 600},
            "timeframes.1h.history_bars",
            "600 is above the context of forecaster 'kronos-demo' (max_context 504 in models.yaml); use at most 504",
        ),
    ],
)
def test_check_refuses_values_that_would_fail_in_a_run(tmp_path, file, change, field, bound):
    """Fault 5: each passed `check` and failed later (IndexError in the ad-hoc job, gigabytes of paths, a
    horizon no evaluation reaches, a raw error in every forecast); now `check` and the code location refuse it."""
    cfg = tmp_path / "configs"
    shutil.copytree(REPO / "configs", cfg)
    shutil.copy(REPO / "configs" / "models.yaml", cfg / "models.yaml")
    demo = yaml.safe_load((cfg / "profiles" / "demo.yaml").read_text())
    demo.update(
        market="synthetic",
        symbols=["BTC/USDT"],
        timeframes=["1h"],
        forecasters=["random_walk", "kronos-demo"],
        primary_model="kronos-demo",
    )  # the shipped checkpoint: a Kronos model and its context
    demo.pop("replay", None)
    (cfg / "profiles" / "demo.yaml").write_text(yaml.safe_dump(demo))
    data = yaml.safe_load((cfg / file).read_text())
    for dotted, value in change.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    (cfg / file).write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        _load(cfg)
    assert f"{cfg / file}: {field}: " in str(err.value) and bound in str(err.value), str(err.value)
    if file == "profiles/demo.yaml":  # and the command a user runs, with the same line
        proc = _cli(
            str(BIN / "kronos-assets"),
            "--profile",
            "demo",
            "check",
            env={"KRONOS_CONFIG_DIR": str(cfg), "KRONOS_HOME": str(tmp_path / "home")},
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == (f"configuration error: {cfg / file}: {field}: {bound}"), (
            proc.stderr
        )
        assert "Traceback" not in proc.stderr


def test_broken_training_yaml_is_one_line(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("runs:\n  x:\n    base: " + "[" * 100_000 + "]" * 100_000 + "\n")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00runs")
    for path in (deep, binary):
        with pytest.raises(ConfigError, match=rf"^{path}: not readable as YAML: \w+Error: "):
            load_training_config(path)
    proc = _cli(str(BIN / "kronos-train"), "--config", str(deep), "--list")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    # One line naming the file and the cause; Python words the end of the message by the frame the limit hits.
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"configuration error: {deep}: not readable as YAML: RecursionError: maximum recursion"), (
        line
    )


def test_broken_checkpoint_config_is_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="^x/config.json is not a checkpoint config: nested too deep to read$"):
        config_from_json("[" * 100_000 + "]" * 100_000, source="x/config.json")
    with pytest.raises(CheckpointError, match="^x/config.json is not valid JSON: not UTF-8 text"):
        config_from_json(b"\x80\x81{}", source="x/config.json")
    # kronos-forecast on a checkpoint folder whose config.json is nested 100,000 deep: one line naming the file.
    ckpt = tmp_path / "ckpt"
    shutil.copytree(DEMO_CHECKPOINT, ckpt)
    (ckpt / "model" / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    candles = tmp_path / "c.csv"
    candles.write_text(
        "timestamp,open,high,low,close,volume\n"
        + "".join(f"2025-01-01T{h:02d}:00:00Z,{100 + h},{101 + h},{99 + h},{100.5 + h},10\n" for h in range(24))
    )
    proc = _cli(
        str(BIN / "kronos-forecast"),
        str(candles),
        "--model",
        str(ckpt / "model"),
        "--tokenizer",
        str(ckpt / "tokenizer"),
        "--horizon",
        "2",
        "-o",
        str(tmp_path / "o.json"),
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith(f"{ckpt / 'model' / 'config.json'} is not a checkpoint config: nested too deep to read")
    ), proc.stderr


def test_every_unknown_exchange_and_every_bad_training_run_at_once(tmp_path):
    markets = yaml.safe_load(yaml.safe_dump(SMALL_MARKETS))
    markets["exchanges"] = [{"id": "binanse"}, {"id": "okx"}, {"id": "bybitt"}]
    cfg = write_configs(tmp_path, markets=markets, profile={"market": "ccxt"}, profile_name="live")
    with pytest.raises(ConfigError) as err:
        _load(cfg, "live")
    assert [line.split(": ", 1)[1] for line in err.value.lines] == [
        "exchanges[0].id: unknown exchange 'binanse'; did you mean 'binance'?",
        "exchanges[2].id: unknown exchange 'bybitt'; did you mean 'bybit'?",
    ], err.value.lines

    runs = yaml.safe_load((REPO / "configs" / "training.yaml").read_text())["runs"]
    demo = runs["demo"]
    bad = {
        "a": {**demo, "scratch": {**demo["scratch"], "tokenizer": {**demo["scratch"]["tokenizer"], "d_modl": 64}}},
        "b": {**demo, "base": "no-such-model"},
        "c": {**demo, "evaluation": {**demo["evaluation"], "n_paths": 100_000_000}},
    }
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump({"runs": bad}))
    with pytest.raises(ConfigError) as err:
        load_training_config(path, models={})
    text = str(err.value)
    for part in ("runs.c.evaluation.n_paths: must be a whole number in 2..1000, got 100000000",):
        assert f"{path}: {part}" in text, text
    # the schema's problem stops before the runs are read; once it is fixed, the two runs' problems come together
    bad["c"]["evaluation"]["n_paths"] = 30
    path.write_text(yaml.safe_dump({"runs": bad}))
    with pytest.raises(ConfigError) as err:
        load_training_config(path, models={})
    assert len(err.value.lines) == 2, err.value.lines
    assert "runs.a.scratch.tokenizer.d_modl: unknown key; did you mean 'd_model'?" in err.value.lines[0]
    assert "runs.b.base: 'no-such-model' is not 'scratch'" in err.value.lines[1]
