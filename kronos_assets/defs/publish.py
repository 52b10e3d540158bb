"""Publish: per-series JSON, charts, the dashboard and the scoreboard, with a manifest written last."""

import json
from datetime import datetime

import dagster as dg

from kronos_assets.defs.evaluate import evaluations_key
from kronos_assets.defs.forecast import forecasts_key
from kronos_assets.defs.partitions import BAR_FMT, bar_partitions, times_by_symbol
from kronos_assets.market.timeframes import timeframe_delta
from kronos_assets.publishing.site import publish_site, series_prefix
from kronos_assets.publishing.snapshots import forecast_records, scoreboard, series_snapshot
from kronos_assets.publishing.store import Store
from kronos_assets.settings import Settings, TimeframeSettings
from kronos_assets.warehouse import Warehouse


def published_key(tf: str) -> dg.AssetKey:
    return dg.AssetKey(f"published_{tf}")


def build_published(settings: Settings, tf: TimeframeSettings) -> dg.AssetsDefinition:
    step = timeframe_delta(tf.name)

    @dg.asset(
        key=published_key(tf.name),
        partitions_def=bar_partitions(settings, tf),
        deps=[forecasts_key(tf.name), evaluations_key(tf.name)],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=168),
        group_name="publish",
        kinds={"s3", "plotly", "html"},
        pool="publish",
        owners=["team:data"],
        description=(
            f"The {tf.name} series as published: latest forecast JSON, one immutable JSON per origin, an interactive "
            "chart, the dashboard and the scoreboard, then the manifest (written last, so readers never see a "
            "half-published state)."
        ),
    )
    def published(context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[Warehouse],
                  store: dg.ResourceParam[Store]) -> dg.MaterializeResult:
        series, newest = [], None
        for symbol, bars in times_by_symbol(context.partition_keys, "bar", BAR_FMT).items():
            origins = [b + step for b in bars]
            history = forecast_records(warehouse, symbol, tf.name, origins)
            if not history:
                raise dg.Failure(description=f"{symbol} {tf.name}: no forecasts stored for these bars to publish")
            latest = max(h["origin"] for h in history)
            snap = series_snapshot(warehouse, symbol, tf.name, datetime.fromisoformat(latest), step,
                                   settings.primary_model, settings.synthetic)
            if snap is None:
                raise dg.Failure(description=f"{symbol} {tf.name}: no {settings.primary_model} forecast at {latest}")
            series.append((snap, history))
            newest = max(newest or latest, latest)
        # The dashboard shows every configured series: the ones published now and the latest of the others.
        current = {(s["symbol"], s["timeframe"]): s for s, _ in series}
        all_snaps = []
        for t in settings.timeframes:
            for symbol in settings.symbols:
                snap = current.get((symbol, t.name)) or _stored_latest(store, symbol, t.name)
                if snap:
                    all_snaps.append(snap)
        board = [row for t in settings.timeframes for row in scoreboard(warehouse, t.name)]
        manifest = publish_site(store, series, all_snaps, board, settings.synthetic, settings.profile,
                                now=datetime.fromisoformat(max(s["origin"] for s in all_snaps)))
        index = store.location("index.html")
        return dg.MaterializeResult(
            metadata={
                "dashboard": dg.MetadataValue.path(index) if "://" not in index else dg.MetadataValue.url(index),
                "series": ", ".join(f"{s['symbol']} {s['timeframe']}" for s, _ in series),
                "origins_published": sum(len(h) for _, h in series),
                "objects_in_manifest": len(manifest["objects"]),
                "newest_origin": newest,
            }
        )

    return published


def _stored_latest(store: Store, symbol: str, timeframe: str):
    body = store.get(f"{series_prefix(symbol, timeframe)}/latest.json")
    return json.loads(body) if body else None
