"""The Dagster layer's resources are ConfigurableResources: config fields only (no secret), each building its
library object once per process, which the assets receive."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from kronos_assets.configuration.settings import ConfigError
from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.partitions import RANGE_END, RANGE_START
from kronos_assets.defs.resources import LibraryResource, build_resources, library
from kronos_assets.forecasting.registry import ForecasterRegistry
from kronos_assets.market.synthetic import SyntheticMarket
from kronos_assets.publishing.r2 import KEY_ID_VAR, SECRET_VAR
from kronos_assets.warehouse import Warehouse
from kronos_assets_tests.helpers import small_settings

D = datetime(2026, 11, 18, tzinfo=timezone.utc)


def test_resources_are_configurable_and_build_the_library_objects(tmp_path):
    settings = small_settings(tmp_path)
    resources = build_resources(settings)
    assert all(isinstance(r, dg.ConfigurableResource) for r in resources.values())
    assert resources["warehouse"].path == str(settings.warehouse_path)
    wh = resources["warehouse"].get()
    assert isinstance(wh, Warehouse) and wh.path == settings.warehouse_path and wh.config == settings.warehouse
    assert isinstance(resources["market"].get(), SyntheticMarket)
    assert isinstance(resources["forecasters"].get(), ForecasterRegistry)
    # Built once per process and config: the runs share one registry (a model is loaded once), one warehouse.
    assert build_resources(settings)["forecasters"].get() is resources["forecasters"].get()
    assert library(resources["warehouse"]) is wh and library(wh) is wh


def test_the_assets_receive_the_library_objects_across_runs(tmp_path, monkeypatch):
    settings = small_settings(tmp_path)
    resources = build_resources(settings)
    built = []
    original = LibraryResource.get

    def counting(self):
        obj = original(self)
        built.append((type(self).__name__, id(obj)))
        return obj

    monkeypatch.setattr(LibraryResource, "get", counting)
    defs = build_definitions(settings, resources)
    instance = dg.DagsterInstance.ephemeral()
    for day in (D, D + timedelta(days=1)):
        key = f"{day:%Y-%m-%d}|BTC-USDT"
        assert (
            defs.resolve_job_def("candles_1h")
            .execute_in_process(instance=instance, tags={RANGE_START: key, RANGE_END: key})
            .success
        )
    warehouses = {i for name, i in built if name == "WarehouseResource"}
    assert len(warehouses) == 1 and warehouses == {id(resources["warehouse"].get())}
    assert resources["warehouse"].get().query("SELECT count(*) AS n FROM clean_candles")["n"][0] == 48


def test_no_secret_is_a_field_and_a_bad_publish_target_fails_at_load(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ID_VAR, "key-id-value")
    monkeypatch.setenv(SECRET_VAR, "secret-value")
    monkeypatch.setenv("R2_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("R2_BUCKET", "kronos-test")
    settings = small_settings(tmp_path, publish={"backend": "auto"})
    shown = "".join(r.model_dump_json() + repr(r) for r in build_resources(settings).values())
    assert "secret-value" not in shown and "key-id-value" not in shown
    monkeypatch.delenv("R2_BUCKET")
    with pytest.raises(ConfigError, match=r"demo.yaml: publish.backend: auto: .*R2_BUCKET"):
        build_resources(settings)
