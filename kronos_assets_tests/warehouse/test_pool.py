"""The profile's own Dagster instance gives the duckdb_write pool the back end's limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kronos_assets.orchestration.local_instance import instance_for
from kronos_assets.warehouse import WRITE_POOL
from kronos_assets_tests.helpers import small_settings

LAKE = {"backend": "ducklake", "catalog": {"host": "db", "dbname": "lake", "user": "kronos"}, "data_path": "/srv/lake"}


def _limits(instance) -> dict[str, int]:
    return {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}


def test_write_pool_follows_the_back_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for k in [k for k in os.environ if k.startswith("DAGSTER_HOME")]:
        monkeypatch.delenv(k)
    embedded = instance_for(small_settings(tmp_path))
    assert _limits(embedded).get(WRITE_POOL, 1) == 1  # default_limit: one writer of the file
    lake = instance_for(small_settings(tmp_path, warehouse={**LAKE, "write_pool_limit": 6}))
    assert _limits(lake)[WRITE_POOL] == 6
    back = instance_for(small_settings(tmp_path))  # the same home back on the file: one writer again
    assert _limits(back)[WRITE_POOL] == 1
