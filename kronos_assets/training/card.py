"""MODEL_CARD.md of a trained checkpoint, rendered from templates/model_card.md.j2: configs, data, training, losses,
held-out scores, how to regenerate it, and what was measured on the weights after training.

The card is a function of what the folder records, so it can be rebuilt at any time (``regenerate_model_card``):

* ``training.json`` (the run's summary) and each network's ``config.json``;
* ``card_inputs.json`` (optional, written by hand or a benchmark): measurements of these weights made after
  training (its cost measured from outside, a learning curve over the saved states, a sampling sweep). It names
  the sha256 of the weights it was measured on and is rendered only while they match, so a retrain that
  changes the weights never carries figures of other weights;
* blocks that other tools keep in the card between ``<!-- NAME: begin ... -->`` and ``<!-- NAME: end -->``
  (benchmarks/bench_checkpoint_real.py --write-card), carried over verbatim on the same condition.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2

from kronos_assets.training.evaluate import HeldOut
from kronos_assets.training.outcome import RunOutcome

log = logging.getLogger(__name__)

CARD_NAME = "MODEL_CARD.md"
CARD_INPUTS = "card_inputs.json"
PARTS = ("model", "tokenizer")
# A block another tool writes into the card and owns: kept whole, in its order, at the end of the card.
_KEPT_BLOCK = re.compile(r"<!-- (?P<name>[\w.-]+): begin\b.*?-->.*?<!-- (?P=name): end -->", re.DOTALL)


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec)


def _mb(n: int) -> str:
    return f"{n / 2**20:.2f} MB"


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("kronos_assets.training", "templates"),
    autoescape=False,  # Markdown, not HTML: every value is printed as it is
    undefined=jinja2.StrictUndefined,  # a misspelt or missing field is an error, never an empty cell in the card
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
TEMPLATES.filters["fmt"] = _fmt
TEMPLATES.filters["mb"] = _mb


def curve_markdown(history: list[dict[str, Any]], stage: str, max_rows: int = 12) -> str:
    rows = [h for h in history if h["stage"] == stage]
    if not rows:
        return f"(no {stage} steps)"
    if len(rows) > max_rows:  # first, last and evenly spaced ones in between
        idx = sorted({round(i * (len(rows) - 1) / (max_rows - 1)) for i in range(max_rows)})
        rows = [rows[i] for i in idx]
    keys = list(rows[0]["parts"])
    head = "| step | loss | val loss | " + " | ".join(keys) + " | lr |"
    lines = [head, "|" + "---|" * (len(keys) + 4)]
    for h in rows:
        val = "" if h.get("val_loss") is None else f"{h['val_loss']:.4f}"
        parts = " | ".join(f"{h['parts'][k]:.4f}" for k in keys)
        lines.append(f"| {h['step']} | {h['loss']:.4f} | {val} | {parts} | {h['lr']:.2e} |")
    return "\n".join(lines)


def render_model_card(
    summary: Mapping[str, Any],
    configs: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
    kept: Sequence[str] = (),
) -> str:
    """The card's text from a run summary (training.json's content), the networks' config.json texts, the recorded
    measurements (``card_inputs.json``, already checked against the weights) and the blocks kept from the old card."""
    s = json.loads(json.dumps(summary, default=str))  # the same values whether fresh from the run or read back
    heldout = HeldOut(**s["heldout"]).markdown() if s.get("heldout") else ""
    curves = {stage: curve_markdown(s["history"], stage) for stage in ("tokenizer", "predictor")}
    return TEMPLATES.get_template("model_card.md.j2").render(
        s=s, configs=configs, extra=extra, kept=list(kept), curves=curves, heldout_table=heldout
    )


def write_model_card(o: RunOutcome, path: Path) -> None:
    """Write the card of a finished run beside its checkpoint, whole (via a temp file)."""
    summary = o.summary()
    configs = {"tokenizer": o.result.tokenizer.config.to_json(), "model": o.result.model.config.to_json()}
    text = _render_folder(path.parent, summary, configs)
    tmp = path.with_name(path.name + ".writing")
    tmp.write_text(text)
    tmp.replace(path)


def regenerate_model_card(folder: Path) -> str:
    """The card of a checkpoint folder rebuilt from what it records (training.json, config.json, card_inputs.json
    and the kept blocks of its current card): what ``kronos-train`` writes when the weights come out the same."""
    summary = _read_json(folder / "training.json")
    configs = {part: (folder / part / "config.json").read_text().rstrip("\n") for part in PARTS}
    return _render_folder(folder, summary, configs)


def weights_sha256(summary: Mapping[str, Any]) -> dict[str, str]:
    """The sha256 of each network's model.safetensors, as the run summary records them."""
    recorded = summary.get("checkpoint", {})
    return {part: recorded[part]["sha256"]["model.safetensors"] for part in PARTS if part in recorded}


def _render_folder(folder: Path, summary: Mapping[str, Any], configs: Mapping[str, str]) -> str:
    card = folder / CARD_NAME
    extra, kept = _measured(folder, summary, card.read_text() if card.is_file() else "")
    try:
        return render_model_card(summary, configs, extra, kept)
    except jinja2.UndefinedError as exc:  # name the file that lacks the field
        raise ValueError(f"{folder / (CARD_INPUTS if extra else 'training.json')}: {exc}") from exc


def _measured(folder: Path, summary: Mapping[str, Any], old_card: str) -> tuple[dict[str, Any] | None, list[str]]:
    """card_inputs.json and the old card's kept blocks, when they were measured on these very weights."""
    path = folder / CARD_INPUTS
    if not path.is_file():
        return None, []
    extra = _read_json(path)
    recorded = extra.get("weights")
    if not isinstance(recorded, dict) or set(recorded) != set(PARTS):
        raise ValueError(
            f"{path}: field 'weights' must map model and tokenizer to the sha256 of their model.safetensors "
            "(the weights these measurements were made on)"
        )
    if recorded != weights_sha256(summary):
        log.warning(
            "%s was measured on other weights (sha256 %s): the card leaves out its sections and the kept blocks; "
            "measure the new weights and update it",
            path,
            recorded,
        )
        return None, []
    return extra, [m.group(0) for m in _KEPT_BLOCK.finditer(old_card)]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot be read as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
