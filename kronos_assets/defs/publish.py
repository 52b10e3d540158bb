"""Publish: per-series JSON, Parquet paths, charts, the dashboard and the scoreboard, with a manifest written last.

The store is the local folder or the R2 bucket (``kronos_assets.defs.resources.StoreResource``); the asset
does not know which. What is published is ``publishing.bars.publish_bars``; the asset wires its partitions in.
"""

import dagster as dg

from kronos_assets.configuration.settings import Settings, TimeframeSettings
from kronos_assets.defs.automation import bar_chain_condition
from kronos_assets.defs.evaluate import evaluations_key
from kronos_assets.defs.forecast import forecasts_key
from kronos_assets.defs.partitions import BAR_FMT, bar_partitions, times_by_symbol
from kronos_assets.orchestration.incremental import publish_inputs
from kronos_assets.publishing.bars import NothingToPublish, PublishConfig, publish_bars
from kronos_assets.publishing.manifest import ManifestError
from kronos_assets.publishing.site import series_keys
from kronos_assets.publishing.store import Store
from kronos_assets.warehouse import Warehouse


def published_key(tf: str) -> dg.AssetKey:
    return dg.AssetKey([tf, "published"])


def publish_config(settings: Settings) -> PublishConfig:
    """The profile's part that publishing reads, as the plain values publishing.bars takes."""
    public = settings.public_symbols
    return PublishConfig(
        profile=settings.profile,
        symbols=settings.symbols,
        timeframes=tuple(t.name for t in settings.timeframes),
        primary_model=settings.primary_model,
        synthetic=settings.synthetic,
        replay_exchange=settings.replay_exchange.capitalize() if settings.replay else None,
        public_symbols=None if public is None else tuple(public),
    )


def build_published(settings: Settings, tf: TimeframeSettings) -> dg.AssetsDefinition:
    @dg.asset(
        key=published_key(tf.name),
        partitions_def=bar_partitions(settings, tf),
        deps=[forecasts_key(tf.name), evaluations_key(tf.name)],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=168),
        automation_condition=bar_chain_condition(settings),
        group_name="publish",
        kinds={"s3", "plotly", "html", "parquet"},
        pool="publish",
        owners=["team:data"],
        description=(
            f"The {tf.name} series as published (local folder or R2 bucket): latest forecast JSON, one immutable "
            "JSON and one Parquet of every model's sample paths per origin, an interactive chart and its PNG, the "
            "scoreboard and the dashboard, then the manifest (written last, so readers never see a half-published "
            "state)."
        ),
    )
    def published(
        context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[Warehouse], store: dg.ResourceParam[Store]
    ) -> dg.MaterializeResult:
        bars = times_by_symbol(context.partition_keys, "bar", BAR_FMT)
        # What the site is made of, taken before the reads and kept in the manifest: a tick whose digest equals
        # the manifest's has nothing to publish (main_job.py skips the run).
        inputs = publish_inputs(warehouse, tf.name, settings.public_symbols)
        try:
            report = publish_bars(publish_config(settings), warehouse, store, bars, tf.name, context.log, inputs=inputs)
        except (NothingToPublish, ManifestError) as exc:
            raise dg.Failure(description=str(exc)) from None
        if report.rebuilt:
            context.log.warning(f"manifest rebuilt from the published objects: {report.rebuilt}")
        if report.changed_immutable:
            context.log.warning(
                f"{len(report.changed_immutable)} immutable object(s) were recomputed with different content and "
                f"replaced, e.g. {report.changed_immutable[0]}"
            )
        index = store.location("index.html")
        links = {
            f"{symbol} chart": _link(store.location(series_keys(symbol, tf.name)["chart.html"])) for symbol in bars
        }
        return dg.MaterializeResult(
            metadata={
                "dashboard": _link(index),
                **links,
                "series": ", ".join(f"{s} {tf.name}" for s in bars),
                "origins_published": sum(len(v) for v in bars.values()),
                "objects_in_manifest": report.listed,  # the head's and its index parts'
                "objects_written": len(report.written),
                "objects_unchanged": len(report.skipped),
                "manifest_written": report.manifest_written,
                "manifest_rebuilt": report.rebuilt or "no",
                "generated_at": report.manifest.get("generated_at"),
            }
        )

    return published


def _link(location: str) -> dg.MetadataValue:
    return dg.MetadataValue.url(location) if "://" in location else dg.MetadataValue.path(location)
