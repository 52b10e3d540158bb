"""MODEL_CARD.md of a trained checkpoint: configs, data, training, losses, held-out scores, how to regenerate it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from kronos_assets.training.outcome import RunOutcome, repo_relative


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


def _mb(n: int) -> str:
    return f"{n / 2**20:.2f} MB"


def write_model_card(o: RunOutcome, path: Path) -> None:
    r, res = o.run, o.result
    d, ev = r.data, r.evaluation
    tok_cfg, model_cfg = res.tokenizer.config, res.model.config
    infos = o.infos
    size = sum(i.size_bytes for i in infos.values())
    command = o.command or f".venv/bin/kronos-train {r.name}"
    heldout = o.heldout
    lines = [
        f"# Kronos checkpoint `{r.name}`",
        "",
        r.description or "",
        "",
        f"Trained by `kronos_assets.training` "
        f"{'from scratch (seeded random initialisation)' if r.base.kind == 'scratch' else 'from **' + o.base_label + '**'} on the "
        f"{'synthetic demo market (SyntheticMarket seed ' + str(d.synthetic_seed) + ')' if o.data['source'] == 'synthetic' else o.data['source'] + ' candles'}"
        f", {d.timeframe} bars of {', '.join(d.symbols)}.",
        "",
    ]
    if o.data["source"] == "synthetic":
        lines += ["> **Synthetic data.** These weights have only ever seen the deterministic synthetic market of the "
                  "offline demo. They demonstrate the training pipeline and the checkpoint format; they know nothing "
                  "about real markets and must not be used to trade.", ""]  # fmt: skip
    lines += [
        "## Use it",
        "",
        "A models.yaml entry selects it like any local checkpoint:",
        "",
        "```yaml",
        "models:",
        f"  kronos-{r.name}:",
        f"    local_dir: {_rel(o.output)}",
        f"    max_context: {d.lookback + d.horizon}",
        "```",
        "",
        f"It was trained on windows of {d.lookback} history + {d.horizon} future bars: give it at most "
        f"{d.lookback} bars of history (the timeframe's `history_bars`) and horizons up to {d.horizon}. Longer "
        "histories put positions it never saw into the tokenizer and change the normalisation statistics; "
        "forecasts then get worse.",
        "",
        "## Networks",
        "",
        "| part | parameters | files | sha256 (model.safetensors) |",
        "|---|---|---|---|",
    ]
    for part, module in (("tokenizer", res.tokenizer), ("model", res.model)):
        info = infos.get(part)
        sha = info.sha256["model.safetensors"] if info else ""
        lines.append(f"| {part} | {sum(p.numel() for p in module.parameters()):,} | "
                     f"{_mb(info.size_bytes) if info else ''} | `{sha}` |")  # fmt: skip
    lines += [
        "",
        f"Total on disk: {_mb(size)}.",
        "",
        "Tokenizer config.json:",
        "",
        "```json",
        tok_cfg.to_json(),
        "```",
        "",
        "Model config.json:",
        "",
        "```json",
        model_cfg.to_json(),
        "```",
        "",
        "## Data",
        "",
        f"* Source: {o.data['source']}; symbols {', '.join(d.symbols)}; timeframe {d.timeframe}.",
        *([f"* Files: {', '.join(f'`{f}`' for f in d.files.values())}."] if o.data["source"] == "csv" else []),
        f"* Training range: [{d.train_start.date()}, {d.train_end.date()}) — "
        f"{sum(o.data['train_windows'].values()):,} windows of {d.lookback}+{d.horizon} contiguous bars "
        f"({', '.join(f'{k}: {v:,}' for k, v in o.data['train_windows'].items())}).",
        f"* Held-out range: [{d.heldout_start.date()}, {d.heldout_end.date()}) — never seen in training; "
        "validation losses and the scores below come from it.",
        "* Normalisation: per window, per feature z-score with the mean and population std of the "
        f"{d.lookback} lookback bars only (the history a forecast sees), clipped to ±5; the horizon bars are scaled "
        "with the same statistics.",
        "",
        "## Training",
        "",
        f"* Seed {r.seed}; device {o.device}; {o.threads} CPU thread(s); torch {torch.__version__}.",
        f"* Tokenizer: {r.tokenizer.steps} steps × batch {r.tokenizer.batch_size}, AdamW (0.9, 0.95) lr {r.tokenizer.lr:g} "
        f"(warm-up {r.tokenizer.warmup}, cosine to {r.tokenizer.min_lr_ratio:g}×), weight decay {r.weight_decay:g}, "
        f"grad clip {r.tokenizer.grad_clip:g}. Loss (MSE(coarse) + MSE(full) + BSQ)/2, BSQ = commitment + "
        f"ζ·(γ0·sample entropy − γ·codebook entropy), soft-assignment inverse temperature {r.inv_temperature:g}.",
        f"* Predictor: {r.predictor.steps} steps × batch {r.predictor.batch_size}, lr {r.predictor.lr:g} "
        f"(warm-up {r.predictor.warmup}, cosine to {r.predictor.min_lr_ratio:g}×), grad clip {r.predictor.grad_clip:g}. "
        "Loss (CE(s1) + CE(s2 | true s1))/2 on next tokens; the tokenizer is frozen.",
        f"* Wall time: {o.seconds.get('train_total', 0):.0f} s training"
        + (f" ({o.seconds['train_cpu_this_call']:.0f} s CPU in the last call)" if "train_cpu_this_call" in o.seconds else "")
        + f", {o.seconds.get('evaluate', 0):.0f} s held-out evaluation; peak RSS {o.peak_rss_mb:.0f} MB.",
        "",
        "### Tokenizer losses (mean over each logging interval; val = held-out windows)",
        "",
        curve_markdown(res.history, "tokenizer"),
        "",
        "### Predictor losses",
        "",
        curve_markdown(res.history, "predictor"),
        "",
        "The full curve is in `training.json`.",
        "",
    ]
    if heldout is not None:
        lines += [
            "## Held-out forecasts",
            "",
            f"{heldout.n_forecasts} forecasts ({ev.origins_per_symbol} origins per symbol spread evenly over the "
            f"held-out range), {ev.history_bars} bars of history, horizon {ev.horizon}, {ev.n_paths} paths, "
            f"T={ev.temperature:g}, top_p={ev.top_p:g}, top_k={ev.top_k}, max_context {ev.max_context}. "
            "Scored with `kronos_assets.metrics.score_paths` on the closes, averaged over origins and steps: CRPS of "
            "log returns (lower is better; skill = 1 − CRPS / CRPS of random_walk_vol), share of realised closes "
            "inside the central 80 % / 50 % intervals, direction hit of the median path, Brier score of P(up) and "
            "of P(volatility amplification) (last step).",
            "",
            heldout.markdown(),
            "",
            f"`{o.base_label}` is the network training started from "
            f"({'the same architecture with its seeded initial weights' if r.base.kind == 'scratch' else 'before fine-tuning'}).",
            "",
        ]
    lines += [
        "## Regenerate",
        "",
        "```",
        command,
        "```",
        "",
        "Training is seeded: on a CPU with the same thread count and torch build the weights come out bit-for-bit "
        "identical (same sha256 as above); elsewhere they agree to float rounding. The run's settings are in "
        f"`{_rel(r.source_file)}` (run `{r.name}`, fingerprint `{r.fingerprint()}`).",
        "",
    ]
    path.write_text("\n".join(lines))


def _rel(p: Path | None) -> str:
    return repo_relative(p) or ""
