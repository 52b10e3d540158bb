"""The model card is rendered from what a checkpoint folder records: the shipped cards are exactly their recorded
inputs rendered, and a regeneration keeps the sections measured after training only while the weights match."""

from __future__ import annotations

import ast
import copy
import json
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kronos_assets.configuration.settings import REPO_ROOT
from kronos_assets.training.card import CARD_INPUTS, regenerate_model_card, weights_sha256, write_model_card
from kronos_assets.training.config import load_training_config
from kronos_assets.training.run import train_run

from .conftest import gbm_candles
from .test_config import TINY_RUN, write

CHECKPOINTS = REPO_ROOT / "kronos_assets" / "checkpoints"
BENCH_BLOCK = "<!-- bench_checkpoint_real: begin"
MEASURED = ("## Learning curve on real data", "## Temperature sweep", "Measured for these weights", BENCH_BLOCK)


def _recorded_copy(name: str, dest: Path) -> Path:
    """A checkpoint folder's recorded card inputs, without its weights (the card never reads them)."""
    src, out = CHECKPOINTS / name, dest / name
    for rel in ("training.json", "MODEL_CARD.md", CARD_INPUTS, "model/config.json", "tokenizer/config.json"):
        if (src / rel).is_file():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, out / rel)
    return out


@pytest.mark.parametrize("name", ["real-1h", "demo"])
def test_shipped_card_is_its_recorded_inputs_rendered(name: str) -> None:
    folder = CHECKPOINTS / name
    assert regenerate_model_card(folder) == (folder / "MODEL_CARD.md").read_text()


def test_real_card_renders_the_learning_curve_and_the_sweep_from_card_inputs(tmp_path: Path) -> None:
    folder = _recorded_copy("real-1h", tmp_path)
    inputs = json.loads((folder / CARD_INPUTS).read_text())
    card = regenerate_model_card(folder)
    assert all(section in card for section in MEASURED)
    assert "| 1000 (shipped) | 1.4621 | 0.01282 | +11.2% | -0.148% | 54.0% | 4.21% | 2.80× | 0.475 |" in card
    assert "| T 1.3 | 62.4% | +43.2% |" in card
    # the tables follow the recorded figures, not text kept from the old card
    inputs["learning_curve"]["checkpoints"]["1000"]["crps"] = 0.02
    inputs["temperature_sweep"]["rows"][1]["coverage_80_last"] = 0.5
    (folder / CARD_INPUTS).write_text(json.dumps(inputs))
    card = regenerate_model_card(folder)
    assert "| 1000 (shipped) | 1.4621 | 0.02000 |" in card and "| T 1.3 | 50.0% | +43.2% |" in card


def test_measured_sections_are_left_out_when_the_weights_changed(tmp_path: Path) -> None:
    folder = _recorded_copy("real-1h", tmp_path)
    summary = json.loads((folder / "training.json").read_text())
    summary["checkpoint"]["model"]["sha256"]["model.safetensors"] = "0" * 64  # a retrain that changed the weights
    (folder / "training.json").write_text(json.dumps(summary))
    card = regenerate_model_card(folder)
    assert not any(section in card for section in MEASURED)
    assert "## Held-out forecasts" in card and "`" + "0" * 64 + "`" in card


def test_incomplete_card_inputs_are_refused_naming_the_file(tmp_path: Path) -> None:
    folder = _recorded_copy("real-1h", tmp_path)
    (folder / CARD_INPUTS).write_text(json.dumps({"learning_curve": {}}))
    with pytest.raises(ValueError, match=r"card_inputs\.json: field 'weights'"):
        regenerate_model_card(folder)
    weights = json.loads((CHECKPOINTS / "real-1h" / CARD_INPUTS).read_text())["weights"]
    (folder / CARD_INPUTS).write_text(json.dumps({"weights": weights, "learning_curve": {"checkpoints": {}}}))
    with pytest.raises(ValueError, match=r"card_inputs\.json: .*'intro'"):
        regenerate_model_card(folder)
    (folder / CARD_INPUTS).write_text("{not json")
    with pytest.raises(ValueError, match=r"card_inputs\.json: cannot be read as JSON"):
        regenerate_model_card(folder)


def test_retraining_keeps_the_measured_sections_of_the_same_weights(tmp_path: Path) -> None:
    """kronos-train writes the card with write_model_card: a seeded rerun reproduces the weights, so the card
    keeps what was measured on them (card_inputs.json and a benchmark's block), and equals its regeneration."""
    spec = load_training_config(write(tmp_path, {"tiny": copy.deepcopy(TINY_RUN)}), {})["tiny"]
    frames = {"BTC/USDT": gbm_candles(1000, 2, start=datetime(2025, 1, 1, tzinfo=timezone.utc))}
    out = tmp_path / "out"
    first = train_run(spec, frames=frames, output=out, state_dir=tmp_path / "state")
    card = out / "MODEL_CARD.md"
    assert "## Learning curve" not in card.read_text()
    real = json.loads((CHECKPOINTS / "real-1h" / CARD_INPUTS).read_text())
    (out / CARD_INPUTS).write_text(json.dumps(real | {"weights": weights_sha256(first.summary())}))
    block = (
        f"{BENCH_BLOCK} (a benchmark's own section) -->\n## Held-out real data (benchmark)\n\nfigures\n"
        "<!-- bench_checkpoint_real: end -->"
    )
    card.write_text(card.read_text() + "\n" + block + "\n")

    again = train_run(spec, frames=frames, output=out, state_dir=tmp_path / "state")
    assert weights_sha256(again.summary()) == weights_sha256(first.summary())
    text = card.read_text()
    assert all(section in text for section in MEASURED) and text.count(block) == 1
    assert text == regenerate_model_card(out)
    assert not list(out.glob("*.writing"))

    # other weights (another seed): the card no longer claims the figures measured on the first ones
    train_run(replace(spec, seed=spec.seed + 1), frames=frames, output=out, state_dir=tmp_path / "state")
    text = card.read_text()
    assert "## Held-out forecasts" in text and not any(section in text for section in MEASURED)


def test_write_model_card_renders_a_run_without_card_inputs(tmp_path: Path) -> None:
    spec = load_training_config(write(tmp_path, {"tiny": copy.deepcopy(TINY_RUN)}), {})["tiny"]
    out = tmp_path / "out"
    outcome = train_run(spec, output=out, state_dir=tmp_path / "state", evaluate=False, write_card=False)
    write_model_card(outcome, out / "MODEL_CARD.md")
    text = (out / "MODEL_CARD.md").read_text()
    assert text.startswith("# Kronos checkpoint `tiny`") and "> **Synthetic data.**" in text
    assert "## Held-out forecasts" not in text and text == regenerate_model_card(out)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_training_imports_nothing_above_it_and_the_card_not_the_run() -> None:
    """Training is a library: no Dagster, no defs/, no command line but its own; the card needs none of run.py."""
    training = REPO_ROOT / "kronos_assets" / "training"
    upward = {
        f"{path.name}: {m}"
        for path in training.glob("*.py")
        for m in _imports(path)
        if m.split(".")[0] == "dagster"
        or m.startswith(("kronos_assets.defs", "kronos_assets.cli.main"))
        or (m.endswith(".cli") and m != "kronos_assets.cli.train")
    }
    assert upward == set()
    card = _imports(training / "card.py")
    assert "kronos_assets.training.run" not in card and "kronos_assets.cli.train" not in card
