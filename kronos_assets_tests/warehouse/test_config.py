"""The warehouse setting and the packaged extensions, without servers."""

from __future__ import annotations

import duckdb
import pytest
from pydantic import ValidationError

from kronos_assets.warehouse import Warehouse, WarehouseConfig, extensions

LAKE = {"backend": "ducklake", "catalog": {"host": "db", "dbname": "lake", "user": "kronos"}, "data_path": "/srv/lake"}


def test_default_is_the_embedded_file_with_one_writer(tmp_path):
    cfg = WarehouseConfig()
    assert (cfg.backend, cfg.pool_limit) == ("embedded", 1)
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    assert wh.query("SELECT count(*) AS n FROM raw_candles")["n"].to_list() == [0]
    assert (tmp_path / "warehouse.duckdb").is_file()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({**LAKE, "password": "x"}, "Extra inputs are not permitted"),
        ({**LAKE, "catalog": {**LAKE["catalog"], "password": "x"}}, "Extra inputs are not permitted"),
        ({"backend": "ducklake", "data_path": "/srv/lake"}, "needs catalog"),
        ({**LAKE, "data_path": None}, "needs data_path"),
        ({**LAKE, "data_path": "s3://bucket/lake/"}, "is on S3: add s3"),
        ({**LAKE, "s3": {"endpoint": "r2.example"}}, "not an s3:// path"),
        ({"backend": "embedded", "data_path": "/srv/lake"}, "apply only to backend: ducklake"),
        ({"backend": "lake"}, "Input should be 'embedded' or 'ducklake'"),
        ({**LAKE, "write_pool_limit": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_settings_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        WarehouseConfig.model_validate(fields)


def test_ducklake_pool_limit_is_the_configured_one():
    assert WarehouseConfig.model_validate({**LAKE, "write_pool_limit": 6}).pool_limit == 6
    assert "kronos@db:5432/lake" in WarehouseConfig.model_validate(LAKE).describe()


def test_extensions_come_from_the_packages_offline(tmp_path):
    con = duckdb.connect(config=extensions.connection_config(tmp_path / "ext"))
    extensions.load(con, ("ducklake", "postgres", "httpfs"), tmp_path / "ext")
    rows = con.execute(
        "SELECT extension_name, loaded, install_path FROM duckdb_extensions() "
        "WHERE extension_name IN ('ducklake', 'postgres_scanner', 'httpfs')"
    ).fetchall()
    assert len(rows) == 3 and all(loaded and path.startswith(str(tmp_path / "ext")) for _, loaded, path in rows)


def test_a_missing_extension_package_is_named(monkeypatch):
    monkeypatch.setattr(extensions.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        extensions.ExtensionMissing, match=f"pip install duckdb-extension-ducklake=={duckdb.__version__}"
    ):
        extensions.extension_file("ducklake")


def test_read_only_view_of_the_embedded_file(tmp_path):
    from datetime import datetime, timezone

    from kronos_assets.warehouse.readonly import ReadOnlyWarehouse
    from kronos_assets_tests.warehouse.lake_writer import write

    path = tmp_path / "warehouse.duckdb"
    view = ReadOnlyWarehouse(path)
    assert view.open()[0] == "WARN" and view.problem and "does not exist yet" in view.problem[1]
    assert not path.exists()  # never created by a look
    write(Warehouse(path), "BTC/USDT", "v", 5)
    view = ReadOnlyWarehouse(path)
    status, detail = view.open()
    assert status == "OK" and "opened read-only; 11 tables" in detail, detail
    assert view.newest("raw_candles", "ts", "1h") == {"BTC/USDT": datetime(2025, 1, 1, 4, tzinfo=timezone.utc)}
    view.close()
