"""health's ``configured`` rows: what the profile says, read from the settings (no network, no file opened)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kronos_assets.base import environment
from kronos_assets.cli.health.rows import FAIL, OK, Row
from kronos_assets.cli.ui import ui_command
from kronos_assets.configuration.settings import BASELINES, Settings
from kronos_assets.forecasting.kinds import kind_of
from kronos_assets.forecasting.kinds import kronos as kronos_kind


def publish_target(settings: Settings) -> tuple[str, str, Any]:
    """(status, detail, store or None) for the profile's publish backend, without any network call."""
    from kronos_assets.publishing.backend import resolve_backend

    try:
        backend = resolve_backend(settings.publish_backend)
    except ValueError as exc:
        return FAIL, str(exc), None
    if backend == "local":
        return OK, f"{settings.publish_backend} -> local folder {settings.publish_dir}", None
    from kronos_assets.publishing.r2 import R2ConfigError, r2_config_from_env

    try:
        cfg = r2_config_from_env()
    except R2ConfigError as exc:
        return FAIL, f"{settings.publish_backend} -> R2, but {exc}", None
    where = f"bucket {cfg.bucket} at {cfg.endpoint_url}" + (f", public at {cfg.public_base}" if cfg.public_base else "")
    return OK, f"{settings.publish_backend} -> R2 {where}", cfg


model_source = kronos_kind.describe  # where a Kronos checkpoint's weights come from (folder or hub revision)


def configured(settings: Settings, replay_now: datetime | None = None) -> list[Row]:
    s = settings
    rows = [Row("configured", "profile", OK, f"{s.profile}: {s.description} (configs in {s.config_dir})")]
    if s.replay:
        files = ", ".join(f"{sym} {tf} {f.name}" for sym, tf, f in s.replay_files)
        as_of = f" as of {replay_now:%Y-%m-%d %H:%M} UTC" if replay_now else ""
        rows.append(
            Row(
                "configured",
                "market",
                OK,
                f"replay of real {s.replay_exchange.capitalize()} spot candles{as_of} (the "
                f"replay clock; files, no exchange, no network): {files}",
            )
        )
    elif s.synthetic:
        rows.append(Row("configured", "market", OK, "synthetic demo market (no exchange, no network)"))
    else:
        chain = " -> ".join(e.id + (f" ({e.base_url})" if e.base_url else "") for e in s.exchanges)
        rows.append(Row("configured", "market", OK, f"ccxt, exchanges tried in order: {chain}"))
    rows.append(Row("configured", "symbols", OK, f"{len(s.symbols)}: {', '.join(s.symbols)}"))
    rows.append(
        Row(
            "configured",
            "timeframes",
            OK,
            "; ".join(
                f"{tf.name} (from {tf.start}, history {tf.history_bars} bars, horizon {tf.horizon})"
                for tf in s.timeframes
            ),
        )
    )
    models = []
    for name in s.forecasters:
        spec = s.model_specs[name]
        models.append(f"{name} (baseline)" if name in BASELINES else f"{name} ({kind_of(spec).describe(spec.options)})")
    rows.append(Row("configured", "forecasters", OK, f"{', '.join(models)}; primary {s.primary_model}"))
    status, detail, _ = publish_target(s)
    rows.append(Row("configured", "publish", status, detail))
    rows.append(
        Row(
            "configured",
            "home",
            OK,
            f"{s.home}; this profile's data in {s.profile_home} (warehouse "
            f"{s.warehouse_path.name}, uploads {s.uploads_dir})",
        )
    )
    if environment.dagster_home():
        rows.append(Row("configured", "dagster instance", OK, f"$DAGSTER_HOME = {environment.dagster_home()}"))
    else:
        rows.append(Row("configured", "dagster instance", OK, f"{s.dagster_home} (set DAGSTER_HOME for another)"))
    rows.append(Row("configured", "ui", OK, ui_command(s.profile, s.home)))  # the exact command, copyable
    return rows
