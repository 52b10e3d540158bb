"""configs/training.yaml: the repository's runs load; every error names the file and the field."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from kronos_assets.configuration.settings import REPO_ROOT, ConfigError
from kronos_assets.training.config import load_training_config
from kronos_assets_tests.helpers import small_settings

TINY_RUN = {
    "base": "scratch",
    "scratch": {
        "tokenizer": {
            "d_model": 16,
            "n_heads": 2,
            "ff_dim": 32,
            "n_enc_layers": 2,
            "n_dec_layers": 2,
            "s1_bits": 4,
            "s2_bits": 4,
            "group_size": 4,
        },
        "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "ff_dim": 32},
    },
    "data": {
        "source": "synthetic",
        "symbols": ["BTC/USDT"],
        "timeframe": "1h",
        "train": {"start": "2025-01-01", "end": "2025-02-01"},
        "heldout": {"start": "2025-02-01", "end": "2025-02-15"},
        "lookback": 24,
        "horizon": 6,
    },
    "tokenizer": {"steps": 4, "batch_size": 4, "lr": 0.003},
    "predictor": {"steps": 4, "batch_size": 4, "lr": 0.003},
    "evaluation": {"origins_per_symbol": 2, "history_bars": 24, "horizon": 4, "n_paths": 4, "max_context": 32},
}


def write(tmp_path: Path, runs: dict) -> Path:
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump({"runs": runs}))
    return path


def test_repository_runs_load(tmp_path: Path) -> None:
    models = small_settings(tmp_path).models
    runs = load_training_config(REPO_ROOT / "configs" / "training.yaml", models)
    demo = runs["demo"]
    assert demo.base.kind == "scratch" and demo.data.source == "synthetic"
    assert set(demo.data.symbols) == {"BTC/USDT", "ETH/USDT"} and demo.data.timeframe == "1h"
    assert demo.data.train_end <= datetime(2026, 1, 1, tzinfo=timezone.utc) <= demo.data.heldout_start
    assert demo.output == REPO_ROOT / "kronos_assets" / "checkpoints" / "demo"
    assert runs["mini-1h"].base.kind == "model" and runs["mini-1h"].base.model.key == "kronos-mini"


def _set(d: dict, dotted: str, value) -> dict:
    import copy

    d = copy.deepcopy(d)
    *parents, last = dotted.split(".")
    cur = d
    for p in parents:
        cur = cur[p]
    if value is KeyError:
        del cur[last]
    else:
        cur[last] = value
    return d


@pytest.mark.parametrize(
    ("dotted", "value", "field"),
    [
        ("data.timeframe", "7m", "runs.tiny.data.timeframe"),
        ("data.heldout.start", "2025-01-20", "runs.tiny.data.heldout.start"),
        ("data.train.end", "2024-12-01", "runs.tiny.data.train.end"),
        ("data.symbols", ["btc-usdt"], "runs.tiny.data.symbols[0]"),
        ("data.source", "s3", "runs.tiny.data.source"),
        ("tokenizer.lr_typo", 1, "runs.tiny.tokenizer.lr_typo"),
        ("predictor.steps", -1, "runs.tiny.predictor.steps"),
        ("tokenizer.batch_size", KeyError, "runs.tiny.tokenizer.batch_size"),
        ("base", "no-such-model", "runs.tiny.base"),
        ("scratch.model.d_model", 30, "runs.tiny.scratch.model"),
        ("scratch.model.d_model", 32.5, "runs.tiny.scratch.model"),  # kronos/config.py's schema: whole numbers
        ("scratch.tokenizer.d_in", 7, "runs.tiny.scratch.tokenizer"),  # ... within the sane bounds
        ("scratch.model.n_layrs", 3, "runs.tiny.scratch.model.n_layrs"),
        ("scratch.tokenizer.group_size", 3, "runs.tiny.scratch.tokenizer.group_size"),
        ("device", "tpu", "runs.tiny.device"),
        ("evaluation.horizon", 40, "runs.tiny.evaluation.horizon"),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path: Path, dotted: str, value, field: str) -> None:
    path = write(tmp_path, {"tiny": _set(TINY_RUN, dotted, value)})
    with pytest.raises(ConfigError) as err:
        load_training_config(path, {})
    assert str(err.value).startswith(f"{path}: {field}:"), str(err.value)


def test_a_valid_tiny_run_loads(tmp_path: Path) -> None:
    run = load_training_config(write(tmp_path, {"tiny": TINY_RUN}), {})["tiny"]
    assert run.scratch_model.s1_bits == 4  # the model's vocabulary follows the tokenizer's bits
    assert run.fingerprint() == load_training_config(write(tmp_path, {"tiny": TINY_RUN}), {})["tiny"].fingerprint()
