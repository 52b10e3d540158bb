"""New model revisions on the hub are proposed, never switched to silently: a sensor notices a new commit of a
repo of a configured model whose kind has revisions (Kronos) and requests a run that scores the candidate next to
the pinned revision on recent realised bars. Changing the pin in configs/models.yaml stays a human decision."""

import json

import dagster as dg
import numpy as np
import polars as pl

from kronos_assets.configuration.settings import Settings
from kronos_assets.defs.metadata import md_table
from kronos_assets.forecasting.interface import run_forecaster
from kronos_assets.forecasting.kinds import Kind, ModelSpec, kind_of
from kronos_assets.forecasting.requests import HISTORY_COLUMNS, build_requests
from kronos_assets.metrics import score_paths
from kronos_assets.warehouse import Warehouse

COMPARE_JOB = "compare_model_revision"


class RevisionComparison(dg.Config):
    model: str  # key in configs/models.yaml
    candidate_model_revision: str | None = None
    candidate_tokenizer_revision: str | None = None
    timeframe: str = "1h"
    origins: int = 48  # most recent fully realised origins per symbol


def _score(forecasts, wh: Warehouse, step) -> dict[str, float]:
    rows = []
    for fc in forecasts:
        req = fc.request
        realised = wh.query(
            "SELECT ts, close FROM clean_candles WHERE symbol = ? AND timeframe = ? AND ts >= ? AND ts < ? ORDER BY ts",
            [req.symbol, req.timeframe, req.origin, req.origin + len(req.future_ts) * step],
        )
        if realised.height != len(req.future_ts):
            continue
        last = float(req.history["close"][-1])
        rows.append(score_paths(fc.paths[..., 3], realised["close"].to_numpy(), last)[-1])
    if not rows:
        return {"n": 0}
    return {
        "n": len(rows),
        **{
            k: float(np.mean([r[k] for r in rows]))
            for k in ("crps", "abs_error", "direction_hit", "covered_80", "brier_up")
        },
    }


def _head_pin(kind: Kind, options) -> str:
    """repo@revision of the kind's first part (Kronos: the model; its tokenizer's is in the run's log)."""
    repo, revision = next(iter(kind.revisions(options).values()))
    return f"{repo}@{revision}"


def build_revision_comparison(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey("model_revision_comparison"),
        group_name="model",
        kinds={"pytorch"},
        owners=["team:ml"],
        description=(
            "Scores a candidate revision of a configured Kronos model next to the pinned one on the most "
            "recent realised origins (same seeds, same data). Requested by the hub revision sensor; it never "
            "changes the pinned revision."
        ),
    )
    def model_revision_comparison(
        context: dg.AssetExecutionContext, config: RevisionComparison, warehouse: dg.ResourceParam[Warehouse]
    ) -> dg.MaterializeResult:
        spec = settings.model_specs.get(config.model)
        kind = kind_of(spec) if spec else None
        if kind is None or kind.repin is None or kind.revisions is None or not kind.revisions(spec.options):
            raise dg.Failure(description=f"{config.model!r} is not a configured model whose kind has revisions")
        pinned = spec.options
        candidate = kind.repin(
            pinned,
            {"model": config.candidate_model_revision or "", "tokenizer": config.candidate_tokenizer_revision or ""},
        )
        tf = settings.timeframe(config.timeframe)
        step = tf.bar.delta
        newest = warehouse.query("SELECT max(ts) AS t FROM clean_candles WHERE timeframe = ?", [tf.name])["t"][0]
        if newest is None:
            raise dg.Failure(description=f"no {tf.name} candles in the warehouse to compare on")
        last_origin_bar = newest - tf.horizon * step  # every horizon bar of the newest origin is realised
        bars = [last_origin_bar - i * step for i in reversed(range(config.origins))]
        sampling = settings.sampling_for(tf.name)
        results = {}
        for label, options in (("pinned", pinned), ("candidate", candidate)):
            forecaster = kind.build(config.model, options)
            forecasts = []
            for symbol in settings.symbols:
                candles = warehouse.query(
                    "SELECT * FROM clean_candles WHERE symbol = ? AND timeframe = ? AND ts >= ? AND ts <= ? "
                    "ORDER BY ts",
                    [symbol, tf.name, bars[0] - tf.history_bars * step, bars[-1]],
                ).select(HISTORY_COLUMNS)
                requests, _ = build_requests(candles, symbol, tf, bars, config.model, sampling.seed)
                forecasts += run_forecaster(forecaster, requests, sampling)
            results[label] = _score(forecasts, warehouse, step)
            context.log.info(f"{label} {kind.describe(options)}: {results[label]}")
        table = pl.DataFrame([{"revision": k, **v} for k, v in results.items()])
        better = results["candidate"].get("crps", np.inf) < results["pinned"].get("crps", -np.inf)
        return dg.MaterializeResult(
            metadata={
                "model": config.model,
                "pinned": _head_pin(kind, pinned),
                "candidate": _head_pin(kind, candidate),
                "scores_at_horizon_end": dg.MetadataValue.md(md_table(table)),
                "candidate_has_lower_crps": better,
                "next_step": (
                    "review, then pin the candidate in configs/models.yaml" if better else "keep the pinned revision"
                ),
            }
        )

    return model_revision_comparison


def build_revision_sensor(settings: Settings, job) -> dg.SensorDefinition:
    watched: list[tuple[ModelSpec, dict[str, tuple[str, str]]]] = []  # (model, part -> (repo, pinned revision))
    for name in settings.forecasters:
        spec = settings.model_specs[name]
        revisions = kind_of(spec).revisions
        if revisions and (pins := revisions(spec.options)):  # a kind with revisions; a local folder has none
            watched.append((spec, pins))

    @dg.sensor(
        name="kronos_hub_revisions",
        job=job,
        minimum_interval_seconds=6 * 3600,
        default_status=dg.DefaultSensorStatus.RUNNING if watched else dg.DefaultSensorStatus.STOPPED,
        description=(
            "Every 6 hours, looks up the newest commit of each Kronos repo the profile forecasts with; a "
            "revision other than the pinned one is proposed as a side-by-side comparison run."
        ),
    )
    def kronos_hub_revisions(context: dg.SensorEvaluationContext):
        from huggingface_hub import HfApi

        if not watched:
            return dg.SkipReason("the profile forecasts with no hub-hosted Kronos model")
        seen = json.loads(context.cursor) if context.cursor else {}
        requests, notes = [], []
        api = HfApi()
        for m, pins in watched:
            revs = {}
            for part, (repo, pinned) in pins.items():
                try:
                    head = api.model_info(repo, revision="main").sha
                except Exception as exc:  # offline, rate-limited, repo gone: say so, try again next time
                    notes.append(f"{repo}: {type(exc).__name__}")
                    continue
                if head != pinned and seen.get(repo) != head:
                    revs[f"candidate_{part}_revision"] = head
                    seen[repo] = head
            if revs:
                requests.append(
                    dg.RunRequest(
                        run_key=f"{m.key}|{revs}",
                        run_config={"ops": {"model_revision_comparison": {"config": {"model": m.key, **revs}}}},
                        tags={"kronos/model": m.key},
                    )
                )
        context.update_cursor(json.dumps(seen, sort_keys=True))
        if not requests:
            return dg.SkipReason(
                "pinned revisions are current" + (f"; not reachable: {', '.join(notes)}" if notes else "")
            )
        return requests

    return kronos_hub_revisions
