"""Ad-hoc forecasts from the launchpad: a market or an uploaded file, a model and its settings, scored on a held-out
tail.

The job ``adhoc_forecast_job`` materialises one asset whose run config is typed and documented; every field has a
default taken from the profile, so "Launch" with no edits works. A market is read at its own clock (the replay
clock for the shipped real candles of the demo profile). Nothing goes to the warehouse (an ad-hoc forecast is not
a forecast of record) and the step takes the ``adhoc`` pool, never ``duckdb_write``.

What the run page shows without a click (Dagster 1.13 renders log rows and text and table metadata as they are,
but markdown, so any image, and JSON only behind "[Show Markdown]" / "[Show JSON]"): the chart as monospace text
in a log row of its own (``publishing.text_chart``), and the scores as a table, the materialisation's first
metadata entry. The PNG chart with the table (``chart``, one click), the interactive HTML and the PNG as files,
and the provenance (checkpoints named, never a local path) follow.
"""

import base64
import json
from enum import Enum
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from kronos_assets.configuration.settings import Settings
from kronos_assets.defs.clock import market_now
from kronos_assets.defs.uploads import read_limits
from kronos_assets.forecasting import kinds
from kronos_assets.forecasting.adhoc import (
    AdhocConfigError,
    adhoc_snapshot,
    context_of,
    forecast_and_score,
    load_market,
    load_upload,
    metric_columns,
    metrics_markdown,
    metrics_note,
    metrics_rows,
    nearest_name,
    resolve_model,
    split_tail,
    takes_device,
)
from kronos_assets.forecasting.interface import Sampling
from kronos_assets.market.files import file_digest
from kronos_assets.publishing.adhoc_chart import adhoc_chart
from kronos_assets.publishing.charts import fan_chart_png
from kronos_assets.publishing.public import public_provenance
from kronos_assets.publishing.store import Artifact, LocalStore
from kronos_assets.publishing.text_chart import fan_text

ADHOC_JOB = "adhoc_forecast_job"  # not the asset's name: a job and an op may not share one
ADHOC_POOL = "adhoc"


class Device(Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


def build_adhoc(settings: Settings) -> tuple[dg.AssetsDefinition, Any]:
    """The asset and its job, with the launchpad's defaults taken from the profile."""
    tf = settings.timeframes[0]
    context = context_of(settings.model_specs[settings.primary_model]) or tf.history_bars
    models = ", ".join(settings.model_specs)
    baselines = ", ".join(kinds.BUILTIN)

    class AdhocForecastConfig(dg.Config):
        symbol: str = Field(
            default=settings.symbols[0],
            description=(
                f"Market to forecast, one of the profile's: {', '.join(settings.symbols)}. Ignored when file is set."
            ),
        )
        timeframe: str = Field(
            default=tf.name,
            description=(
                f"Bar size of the market: {', '.join(t.name for t in settings.timeframes)}. Ignored when file is set "
                "(a file's timeframe is read from its timestamps)."
            ),
        )
        file: str = Field(
            default="",
            description=(
                f"Name of a candle file (CSV, CSV.gz, Parquet, Feather) in the uploads folder {settings.uploads_dir}; "
                "validated as the uploads sensor does. Empty: use symbol and timeframe."
            ),
        )
        model: str = Field(
            default=settings.primary_model,
            description=(
                f"Forecaster: one of {models}, or a folder holding a Kronos checkpoint (model/ and tokenizer/). "
                f"The baselines ({baselines}) are always scored next to it."
            ),
        )
        device: Device = Field(default=Device.auto, description="auto (cuda, then mps, then cpu), cpu, cuda or mps.")
        lookback: int = Field(
            default=min(tf.history_bars, context),
            description=("History bars the model sees, at most a Kronos model's context (kronos-mini/small 512)."),
        )
        horizon: int = Field(default=tf.horizon, description="Bars to forecast after the last history bar.")
        holdout: Optional[int] = Field(
            default=None, description=("Bars held out at the end and scored against the forecast; empty: the horizon.")
        )
        temperature: float = Field(default=settings.sampling.temperature, gt=0, description="Sampling temperature.")
        top_p: float = Field(
            default=settings.sampling.top_p, gt=0, le=1, description="Nucleus sampling: 0 < top_p <= 1."
        )
        n_paths: int = Field(default=settings.sampling.n_paths, ge=1, le=1000, description="Sample paths to draw.")
        seed: int = Field(
            default=settings.sampling.seed, ge=0, description="Seed: the same settings give the same paths."
        )

    @dg.asset(
        key="adhoc_forecast",
        group_name="adhoc",
        pool=ADHOC_POOL,
        kinds={"pytorch", "plotly"},
        owners=["team:ml"],
        description=(
            "An ad-hoc forecast launched by hand: forecasts a market or an uploaded file from the bars "
            f"before a held-out tail and scores it on that tail next to the baselines ({baselines}). Its "
            "chart, metrics and provenance are the metadata; it writes nothing to the track record."
        ),
    )
    def adhoc_forecast(
        context: dg.AssetExecutionContext, config: AdhocForecastConfig, market: dg.ResourceParam[Any]
    ) -> dg.MaterializeResult:
        try:
            return _run(context, config, market)
        except AdhocConfigError as exc:
            raise dg.Failure(description=f"ad-hoc forecast: {exc}") from None

    def _run(context: dg.AssetExecutionContext, config: AdhocForecastConfig, market: Any) -> dg.MaterializeResult:
        spec = resolve_model(settings.model_specs, config.model, config.device.value)
        holdout = config.horizon if config.holdout is None else config.holdout
        bars = config.lookback + holdout
        if config.file:
            upload = load_upload(settings.uploads_dir, config.file, read_limits(settings))
            candles, symbol, timeframe = upload.candles, upload.market, upload.profile.timeframe
            source = {"kind": "file", "file": config.file, "sha256": file_digest(upload.path), "rows": candles.height}
            where = f"file {config.file!r}"
        else:
            if config.symbol not in settings.symbols:
                raise nearest_name(config.symbol, settings.symbols, "symbol")
            if config.timeframe not in {t.name for t in settings.timeframes}:
                raise nearest_name(config.timeframe, [t.name for t in settings.timeframes], "timeframe")
            symbol, timeframe = config.symbol, config.timeframe
            now = market_now(market, start_clock=False)  # a look by hand never starts the schedules' replay walk
            candles = load_market(market, symbol, timeframe, bars, now)
            source = {"kind": settings.market, "symbol": symbol, "timeframe": timeframe}
            if settings.replay:
                source |= {"exchange": settings.replay_exchange, "as_of": now.isoformat(timespec="seconds")}
            where = f"the {bars} newest {timeframe} bars of {symbol} ({candles.height} fetched)"
        split = split_tail(candles, timeframe, config.lookback, config.horizon, holdout, context_of(spec), where)
        forecaster = kinds.build(spec)
        sampling = Sampling(
            n_paths=config.n_paths,
            horizon=config.horizon,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=settings.sampling.top_k,
            seed=config.seed,
        )
        results = forecast_and_score(forecaster, split, sampling, symbol, timeframe)
        replay = settings.replay_exchange.capitalize() if settings.replay and not config.file else None
        snapshot = adhoc_snapshot(results[0], split, symbol, timeframe, settings.synthetic and not config.file, replay)
        png = fan_chart_png(snapshot)
        folder = settings.profile_home / "adhoc" / context.run.run_id
        store = LocalStore(folder)
        store.put(
            Artifact.of("forecast.html", adhoc_chart(snapshot).to_html(include_plotlyjs=True).encode(), "no-cache")
        )
        store.put(Artifact.of("forecast.png", png, "no-cache"))
        first, table = results[0], metrics_markdown(results)
        provenance = {
            "model": first.model,
            "model_kind": spec.kind,
            **public_provenance(json.loads(json.dumps(first.provenance, default=str))),  # checkpoints by name
            "device": config.device.value if takes_device(spec) else None,  # None: the kind takes no device
            "sampling": sampling.as_dict(),
            "source": source,
            "history": [split.history["ts"][0].isoformat(), split.history["ts"][-1].isoformat(), split.history.height],
            "held_out": [split.tail["ts"][0].isoformat(), split.tail["ts"][-1].isoformat(), split.tail.height],
        }
        context.log.info(
            f"ad-hoc {first.model} on {symbol} {timeframe}: MAE {first.metrics['mae']:.6g}, "
            f"CRPS {first.metrics['crps']:.5f}; files in {folder}"
        )
        context.log.info(fan_text(snapshot))  # the chart the run page shows as it is (see the module docstring)
        return dg.MaterializeResult(
            metadata={
                "metrics": dg.MetadataValue.table(
                    [dg.TableRecord(row) for row in metrics_rows(results)],
                    dg.TableSchema([dg.TableColumn(c, "string") for c in metric_columns()]),
                ),
                "metrics_note": dg.MetadataValue.text(metrics_note(results)),
                # The PNG as markdown: a click on [Show Markdown] (the UI runs no script in metadata).
                "chart": dg.MetadataValue.md(
                    f"![forecast](data:image/png;base64,{base64.b64encode(png).decode()})\n\n{table}"
                ),
                "chart_html": dg.MetadataValue.path(str(folder / "forecast.html")),
                "chart_png": dg.MetadataValue.path(str(folder / "forecast.png")),
                "provenance": dg.MetadataValue.json(provenance),
                "model": first.model,
                "series": f"{symbol} {timeframe}",
                **{
                    k: dg.MetadataValue.null() if v is None else dg.MetadataValue.float(float(v))
                    for k, v in first.metrics.items()
                    if k != "scored_steps"
                },
                "scores": dg.MetadataValue.json({r.model: r.metrics for r in results}),
            }
        )

    job = dg.define_asset_job(
        ADHOC_JOB,
        selection=[adhoc_forecast],
        description=(
            "Launch from the launchpad: a market or an uploaded file, a model and its settings; the forecast is "
            f"scored on a held-out tail next to the baselines ({baselines}). Not a forecast of record."
        ),
    )
    return adhoc_forecast, job
