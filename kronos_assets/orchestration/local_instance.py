"""The local Dagster instance of a profile: <home>/<profile>/dagster, with the settings unattended runs need."""

from __future__ import annotations

import json
import os
import warnings

import dagster as dg

from kronos_assets.base import environment
from kronos_assets.configuration.settings import Settings
from kronos_assets.warehouse import WRITE_POOL

MARKER = "# Written by kronos-assets"

# One warehouse writer (duckdb_write; DuckLake raises it, sync_write_pool) and one publisher at a time (pools), runs
# watched by the daemon when one runs (`DAGSTER_HOME=<home>/<profile>/dagster dg dev`): a run that never starts is
# failed, slots of ended runs are freed; sensors in threads so a slow webhook never delays the others; the full
# event log in a file, not on the terminal; schedule and sensor ticks purged by the daemon after the profile's
# retention.run_days (runs themselves are pruned by orchestration/retention.py: Dagster's settings cover ticks only).
INSTANCE_YAML = """\
{marker} for profile {profile}; it is rewritten when it differs. Use your own instance with DAGSTER_HOME.
concurrency:
  pools:
    default_limit: 1
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  poll_interval_seconds: 30
  free_slots_after_run_end_seconds: 30
sensors:
  use_threads: true
  num_workers: 4
python_logs:
  dagster_handler_config:
    handlers:
      kronos_file:
        class: logging.FileHandler
        level: DEBUG
        filename: {log}
        formatter: kronos
    formatters:
      kronos:
        format: "%(asctime)s %(levelname)s %(message)s"
retention:
  schedule:
    purge_after_days: {days}
  sensor:
    purge_after_days: {days}
  auto_materialize:
    purge_after_days: {days}
telemetry:
  enabled: false
"""


# The file handler above is the documented python_logs setting; Dagster flags it beta on every run.
warnings.filterwarnings("ignore", message="Handling yaml-defined logging configuration", category=dg.BetaWarning)


def instance_yaml(settings: Settings) -> str:
    return INSTANCE_YAML.format(
        marker=MARKER,
        profile=settings.profile,
        log=json.dumps(str(settings.log_path)),
        days=settings.retention_run_days,
    )


def instance_for(settings: Settings) -> dg.DagsterInstance:
    """$DAGSTER_HOME's instance when set, else the profile's own under the project home. Our dagster.yaml is
    kept up to date; one a person wrote (without the marker line) is left alone."""
    if environment.dagster_home():
        return dg.DagsterInstance.get()
    path = settings.dagster_home
    path.mkdir(parents=True, exist_ok=True)
    settings.log_path.parent.mkdir(parents=True, exist_ok=True)
    yaml_path = path / "dagster.yaml"
    wanted = instance_yaml(settings)
    current = yaml_path.read_text() if yaml_path.exists() else None
    if current is None or (current.startswith(MARKER) and current != wanted):
        tmp = yaml_path.with_suffix(".yaml.tmp")
        tmp.write_text(wanted)
        os.replace(tmp, yaml_path)
    instance = dg.DagsterInstance.local_temp(tempdir=str(path))
    sync_write_pool(instance, settings)
    return instance


def sync_write_pool(instance: dg.DagsterInstance, settings: Settings) -> None:
    """The warehouse writers' pool at the back end's limit (1 for the embedded file, write_pool_limit for DuckLake).
    The YAML has no per-pool limit, so it is set in the instance's storage, and only when it differs."""
    wanted = settings.warehouse.pool_limit
    limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
    if limits.get(WRITE_POOL, 1) != wanted:  # unset: default_limit, 1
        instance.event_log_storage.set_concurrency_slots(WRITE_POOL, wanted)
