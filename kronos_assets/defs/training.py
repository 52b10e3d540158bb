"""Fine-tuned weights: one asset per run of configs/training.yaml that the profile's markets can feed.

Each asset starts from the run's base (an official checkpoint from the Hugging Face cache, local folders or fresh
networks), trains on the warehouse's clean candles of the run's symbols, timeframe and training range, holds out a
later range, and writes an ordinary checkpoint folder ``<KRONOS_HOME>/checkpoints/<run>/{model,tokenizer}`` that a
models.yaml entry with ``local_dir`` selects. The loss curve and the held-out scores against the base networks and
the baselines are recorded as metadata. Interrupted runs resume from ``<KRONOS_HOME>/training/<run>/state``.
"""

import math
from dataclasses import replace
from typing import Any

import dagster as dg

from kronos_assets.configuration.settings import Settings
from kronos_assets.defs.ingest import clean_candles_key
from kronos_assets.defs.model import weighted_models, weights_key
from kronos_assets.training.config import RunSettings, load_training_config
from kronos_assets.warehouse import Warehouse

TRAINING_CONFIG = "training.yaml"


def finetuned_key(run: str) -> dg.AssetKey:
    return dg.AssetKey(f"kronos_finetuned_{run.replace('-', '_')}")


def training_runs(settings: Settings) -> dict[str, RunSettings]:
    """The runs of <config_dir>/training.yaml (none when the file is absent); ConfigError names file and field."""
    path = settings.config_dir / TRAINING_CONFIG
    if not path.is_file():
        return {}
    return load_training_config(path, settings.models)


def trainable(settings: Settings, run: RunSettings) -> bool:
    """Whether the profile ingests what the run trains on (its timeframe and every one of its symbols)."""
    return run.data.timeframe in {tf.name for tf in settings.timeframes} and set(run.data.symbols) <= set(
        settings.symbols
    )


def build_training_assets(settings: Settings, runs: dict[str, RunSettings] | None = None) -> list[dg.AssetsDefinition]:
    """One fine-tuned-weights asset per configured run the profile's markets can feed."""
    runs = training_runs(settings) if runs is None else runs
    return [build_finetuned(settings, run) for run in runs.values() if trainable(settings, run)]


def _f(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def curve_table(history: list[dict[str, Any]]) -> dg.TableMetadataValue:
    cols = [
        dg.TableColumn("stage", "string"),
        dg.TableColumn("step", "int"),
        dg.TableColumn("loss", "float"),
        dg.TableColumn("val_loss", "float"),
        dg.TableColumn("lr", "float"),
        dg.TableColumn("elapsed_s", "float"),
    ]
    records = [
        dg.TableRecord(
            {
                "stage": h["stage"],
                "step": int(h["step"]),
                "loss": round(h["loss"], 5),
                "val_loss": None if h.get("val_loss") is None else round(h["val_loss"], 5),
                "lr": float(h["lr"]),
                "elapsed_s": float(h["elapsed_s"]),
            }
        )
        for h in history
    ]
    return dg.MetadataValue.table(records, dg.TableSchema(columns=cols))


def build_finetuned(settings: Settings, run: RunSettings) -> dg.AssetsDefinition:
    d = run.data
    out = settings.home / "checkpoints" / run.name
    state = settings.home / "training" / run.name / "state"
    deps: list[dg.AssetKey] = [clean_candles_key(d.timeframe)]
    if run.base.kind == "model" and run.base.value in {m.key for m in weighted_models(settings)}:
        deps.append(weights_key(run.base.value))
    run = replace(run, output=out)

    @dg.asset(
        key=finetuned_key(run.name),
        group_name="model",
        kinds={"pytorch"},
        owners=["team:ml"],
        deps=deps,
        description=(
            f"Kronos fine-tuned as run '{run.name}' of {TRAINING_CONFIG}: from {run.base.label()}, trained on "
            f"{', '.join(d.symbols)} {d.timeframe} clean candles in [{d.train_start.date()}, {d.train_end.date()}), "
            f"scored on the held-out [{d.heldout_start.date()}, {d.heldout_end.date()}) against the base networks and "
            f"the baselines. Writes {out}/{{model,tokenizer}}; select it with a models.yaml entry "
            f"`local_dir: {out}`. {run.tokenizer.steps} tokenizer + {run.predictor.steps} predictor steps on "
            f"{run.device}."
        ),
    )
    def finetuned(context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[Warehouse]) -> dg.MaterializeResult:
        from kronos_assets.training.run import train_run

        def progress(ev: Any) -> None:
            val = "" if ev.val_loss is None else f", held-out {ev.val_loss:.4f}"
            context.log.info(f"{ev.stage} step {ev.step}/{ev.steps}: loss {ev.loss:.4f}{val} ({ev.elapsed_s:.0f} s)")

        outcome = train_run(
            run,
            source="warehouse",
            warehouse=warehouse,
            output=out,
            state_dir=state,
            resume="auto",
            callback=progress,
            command=f"materialize {finetuned_key(run.name).to_user_string()}",
        )
        res = outcome.result
        meta: dict[str, Any] = {
            "checkpoint": dg.MetadataValue.path(str(out)),
            "models_yaml_entry": dg.MetadataValue.md(
                f"```yaml\nkronos-{run.name}:\n  local_dir: {out}\n  max_context: {d.lookback + d.horizon}\n```"
            ),
            "base": outcome.base_label,
            "training_curve": curve_table(res.history),
            "train_seconds": dg.MetadataValue.float(outcome.seconds.get("train_total", 0.0)),
            "train_windows": dg.MetadataValue.int(sum(outcome.data["train_windows"].values())),
            "peak_rss_mb": dg.MetadataValue.float(round(outcome.peak_rss_mb, 1)),
            "device": outcome.device,
        }
        if outcome.result.resumed_from:
            meta["resumed_from"] = f"{res.resumed_from['stage']} step {res.resumed_from['step']}"  # type: ignore[index]
        for stage in ("tokenizer", "predictor"):
            last = res.final(stage)  # type: ignore[arg-type]
            if last:
                meta[f"{stage}_final_loss"] = dg.MetadataValue.float(round(last["loss"], 5))
                if last.get("val_loss") is not None:
                    meta[f"{stage}_final_heldout_loss"] = dg.MetadataValue.float(round(last["val_loss"], 5))
        for part, info in outcome.infos.items():
            meta[f"{part}_sha256"] = info.sha256["model.safetensors"]
            meta[f"{part}_parameters"] = dg.MetadataValue.int(info.parameter_count)
        h = outcome.heldout
        if h is not None:
            meta["heldout_scores"] = dg.MetadataValue.md(h.markdown())
            meta["heldout_forecasts"] = dg.MetadataValue.int(h.n_forecasts)
            mine = h.scores[run.name]
            for key, name in (
                ("crps", "crps"),
                ("covered_80", "coverage_80"),
                ("covered_50", "coverage_50"),
                ("direction_hit", "direction_hit"),
                ("brier_up", "brier_up"),
                ("brier_vol_amp", "brier_vol_amp"),
            ):
                meta[f"heldout_{name}"] = dg.MetadataValue.float(_f(mine[key]))
            for model, s in h.scores.items():
                if model != run.name:
                    meta[f"heldout_crps_{model.replace(':', '_').replace('-', '_')}"] = dg.MetadataValue.float(
                        s["crps"]
                    )
            skill = h.skill(run.name)
            meta["heldout_crps_skill_vs_rw_vol"] = dg.MetadataValue.float(
                skill if math.isfinite(skill) else float("nan")
            )
        context.log.info(f"{run.name}: checkpoint written to {out}")
        return dg.MaterializeResult(metadata=meta)

    return finetuned
