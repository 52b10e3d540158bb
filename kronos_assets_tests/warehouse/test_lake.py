"""The DuckLake back end against a real PostgreSQL catalog and a loopback S3 API server: the same rows as the
embedded file, concurrent writers, one whole version per partition, bounded conflict retries, kill -9 at commit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kronos_assets.warehouse import Warehouse, WarehouseConfig, WarehouseConflict, core
from kronos_assets.warehouse.config import PG_PASSWORD_VAR
from kronos_assets_tests.warehouse.conftest import S3_SECRET, LakeServers, data_files
from kronos_assets_tests.warehouse.lake_writer import candles, write

# PostgreSQL, an S3 server and writer subprocesses: slow, so conftest hands the module out early, not last.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
ROWS = 300


def _writer(cfg: WarehouseConfig, home: Path, symbol: str, tag: str, rows: int, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kronos_assets_tests.warehouse.lake_writer",
            cfg.model_dump_json(),
            symbol,
            tag,
            str(rows),
            str(home),
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def _versions(wh: Warehouse) -> dict[str, tuple[int, list[str]]]:
    """Per symbol: row count and the writer tags its rows carry."""
    df = wh.query(
        "SELECT symbol, count(*) AS n, list(DISTINCT exchange ORDER BY exchange) AS tags FROM raw_candles "
        "GROUP BY symbol ORDER BY symbol"
    )
    return {r["symbol"]: (r["n"], tuple(r["tags"])) for r in df.iter_rows(named=True)}


def test_same_rows_as_embedded_and_parquet_in_the_bucket(lake: LakeServers, tmp_path: Path):
    cfg = lake.config()
    embedded = Warehouse(tmp_path / "a" / "warehouse.duckdb")
    ducklake = Warehouse(tmp_path / "b" / "wh.duckdb", config=cfg)
    for wh in (embedded, ducklake):
        write(wh, "BTC/USDT", "v1", ROWS)
        write(wh, "ETH/USDT", "v1", ROWS)
        write(wh, "BTC/USDT", "v2", ROWS // 2)  # a re-run replaces the partition, the other stays
        # merge keeps stored bars the answer lacks and replaces the ones it has
        wh.merge("raw_candles", candles("ETH/USDT", "m", 10), ["symbol", "timeframe", "ts"])
    sql = "SELECT * FROM raw_candles ORDER BY symbol, ts"
    assert ducklake.query(sql).equals(embedded.query(sql))
    assert _versions(ducklake) == {"BTC/USDT": (ROWS // 2, ("v2",)), "ETH/USDT": (ROWS, ("m", "v1"))}
    assert not (tmp_path / "b" / "wh.duckdb").exists()  # nothing written to a local file
    assert lake.parquet_keys(cfg.data_path.removeprefix("s3://kronos-lake/")), "no Parquet files in the bucket"
    ducklake.close()


def test_four_processes_write_different_partitions_at_once(lake: LakeServers, tmp_path: Path):
    cfg = lake.config()
    Warehouse(tmp_path / "wh.duckdb", config=cfg).query("SELECT 1")  # tables exist; the writers still race on commit
    symbols = [f"S{i}/USDT" for i in range(4)]
    procs = [_writer(cfg, tmp_path, s, f"w{i}", ROWS + i) for i, s in enumerate(symbols)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [o[1][-2000:] for o in outs]
    wh = Warehouse(tmp_path / "wh.duckdb", config=cfg)
    assert _versions(wh) == {s: (ROWS + i, (f"w{i}",)) for i, s in enumerate(symbols)}


def test_two_writers_of_one_partition_leave_one_whole_version(lake: LakeServers, tmp_path: Path):
    cfg = lake.config()
    wh = Warehouse(tmp_path / "wh.duckdb", config=cfg)
    write(wh, "BTC/USDT", "old", ROWS)
    for round_ in range(1):
        procs = [
            _writer(cfg, tmp_path, "BTC/USDT", f"r{round_}-{tag}", n) for tag, n in (("a", ROWS + 7), ("b", ROWS + 13))
        ]
        outs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
        n, tags = _versions(wh)["BTC/USDT"]
        # exactly one writer's rows, all of them: never both, never the old, never a mix
        assert (n, tags) in {(ROWS + 7, (f"r{round_}-a",)), (ROWS + 13, (f"r{round_}-b",))}


def test_two_merges_of_the_same_bars_store_each_bar_once(lake: LakeServers, tmp_path: Path):
    """raw candles' write: two runs merging the same bars at once leave every bar once, from one writer."""
    cfg = lake.config()
    wh = Warehouse(tmp_path / "wh.duckdb", config=cfg)
    write(wh, "BTC/USDT", "old", ROWS)
    procs = [_writer(cfg, tmp_path, "BTC/USDT", tag, ROWS, "--merge") for tag in ("a", "b")]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert _versions(wh)["BTC/USDT"] in {(ROWS, ("a",)), (ROWS, ("b",))}
    assert wh.query("SELECT count(DISTINCT ts) AS n FROM raw_candles")["n"][0] == ROWS


def _interfering_commit(monkeypatch: pytest.MonkeyPatch, other: Warehouse, times: int) -> list[int]:
    """Before each of the first ``times`` commits, another process-like writer commits the same partition."""
    real, done, busy = core._commit, [], []

    def commit(con):
        if len(done) < times and not busy:  # the other writer's own commit goes straight through
            done.append(1)
            busy.append(1)
            try:
                write(other, "BTC/USDT", f"other{len(done)}", ROWS)
            finally:
                busy.clear()
        real(con)

    monkeypatch.setattr(core, "_commit", commit)
    return done


def test_conflict_is_retried_then_the_whole_write_lands(lake: LakeServers, tmp_path: Path, monkeypatch):
    cfg = lake.config()
    mine, other = Warehouse(tmp_path / "a.duckdb", config=cfg), Warehouse(tmp_path / "b.duckdb", config=cfg)
    write(mine, "BTC/USDT", "first", ROWS)
    done = _interfering_commit(monkeypatch, other, times=2)
    write(mine, "BTC/USDT", "mine", ROWS - 1)
    assert len(done) == 2
    assert _versions(other)["BTC/USDT"] == (ROWS - 1, ("mine",))


def test_conflicts_past_the_bound_fail_naming_table_and_partition(lake: LakeServers, tmp_path: Path, monkeypatch):
    cfg = lake.config(conflict_retries=2)
    mine, other = Warehouse(tmp_path / "a.duckdb", config=cfg), Warehouse(tmp_path / "b.duckdb", config=cfg)
    write(mine, "BTC/USDT", "first", ROWS)
    done = _interfering_commit(monkeypatch, other, times=100)
    with pytest.raises(WarehouseConflict) as err:
        write(mine, "BTC/USDT", "mine", ROWS - 1)
    msg = str(err.value)
    assert "raw_candles" in msg and "symbol = ?" in msg and "BTC/USDT" in msg and "after 3 attempt(s)" in msg, msg
    assert len(done) == 3
    assert _versions(other)["BTC/USDT"] == (ROWS, ("other3",))  # the winner's whole version, nothing of mine


def test_kill_9_during_commit_leaves_no_partial_partition(lake: LakeServers, tmp_path: Path):
    cfg = lake.config()
    wh = Warehouse(tmp_path / "wh.duckdb", config=cfg)
    write(wh, "BTC/USDT", "before", ROWS)
    for i, delay_s in enumerate((0.0, 0.01)):
        proc = _writer(cfg, tmp_path, "BTC/USDT", f"killed{i}", 2 * ROWS, "--announce-commit")
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "COMMIT", line + proc.stderr.read()[-2000:]
        time.sleep(delay_s)
        proc.kill()
        proc.wait(30)
        n, tags = _versions(wh)["BTC/USDT"]
        # the old version whole, or (commit already through) the new one whole
        assert (n, tags) in {(ROWS, ("before",)), (2 * ROWS, (f"killed{i}",))}, (n, tags)
        if tags != ["before"]:
            write(wh, "BTC/USDT", "before", ROWS)
    # the next writer succeeds
    proc = _writer(cfg, tmp_path, "BTC/USDT", "after", ROWS + 1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert _versions(wh)["BTC/USDT"] == (ROWS + 1, ("after",))


def test_credentials_only_from_the_environment(lake: LakeServers, tmp_path: Path, monkeypatch):
    cfg = lake.config()
    wh = Warehouse(tmp_path / "wh.duckdb", config=cfg)
    text = repr(wh) + cfg.describe() + cfg.model_dump_json()
    assert lake.pg.password not in text and S3_SECRET not in text
    monkeypatch.delenv(PG_PASSWORD_VAR)
    with pytest.raises(RuntimeError, match=f"\\${PG_PASSWORD_VAR} is not set"):
        wh.query("SELECT 1")
    monkeypatch.setenv(PG_PASSWORD_VAR, "wrong-password-123")
    with pytest.raises(RuntimeError) as err:
        Warehouse(tmp_path / "wh.duckdb", config=cfg).query("SELECT 1")
    assert "password authentication failed" in str(err.value) and "wrong-password-123" not in str(err.value)


def test_maintenance_merges_small_files_and_expires_snapshots(lake: LakeServers, tmp_path: Path):
    from datetime import timedelta

    cfg = lake.config()
    wh = Warehouse(tmp_path / "wh.duckdb", config=cfg)
    for i in range(4):  # four partitions, one small file each, one snapshot each
        write(wh, f"S{i}/USDT", "v", 50)
    before = wh.query("SELECT * FROM raw_candles ORDER BY symbol, ts")
    snapshots = lambda: wh.query("SELECT count(*) AS n FROM ducklake_snapshots('lake')")["n"][0]  # noqa: E731
    n_files, n_snaps = data_files(wh), snapshots()
    assert n_files == 4
    counts = wh.maintain(keep_snapshots=timedelta(0), keep_files=timedelta(0))
    assert data_files(wh) == 1 and snapshots() < n_snaps, (counts, data_files(wh), snapshots())
    assert counts["old_files_deleted"] >= 4
    assert wh.query("SELECT * FROM raw_candles ORDER BY symbol, ts").equals(before)  # the same rows, fewer files
    with pytest.raises(ValueError, match="embedded file needs none"):
        Warehouse(tmp_path / "embedded.duckdb").maintain(timedelta(days=7), timedelta(days=1))


def test_read_only_view_for_health(lake: LakeServers, tmp_path: Path, monkeypatch):
    from kronos_assets.warehouse.readonly import ReadOnlyWarehouse

    cfg = lake.config()
    fresh = ReadOnlyWarehouse(tmp_path / "wh.duckdb", cfg)
    status, detail = fresh.open()  # a catalog nobody wrote yet: reported, and left uncreated
    fresh.close()
    assert status in {"WARN", "FAIL"} and cfg.catalog.dbname in detail, detail
    assert not lake.parquet_keys(cfg.data_path.removeprefix("s3://kronos-lake/"))
    write(Warehouse(tmp_path / "wh.duckdb", config=cfg), "BTC/USDT", "v", 30)
    view = ReadOnlyWarehouse(tmp_path / "wh.duckdb", cfg)
    status, detail = view.open()
    assert status == "OK" and "attached read-only; 11 tables" in detail, detail
    assert view.newest("raw_candles", "ts", "1h") == {"BTC/USDT": candles("BTC/USDT", "v", 30)["ts"][-1]}
    with pytest.raises(Exception, match="read-only|read only|READ_ONLY"):
        view.con.execute("DELETE FROM raw_candles")
    view.close()
    monkeypatch.setenv(PG_PASSWORD_VAR, "wrong-password-456")
    status, detail = (bad := ReadOnlyWarehouse(tmp_path / "wh.duckdb", cfg)).open()
    assert status == "FAIL" and "password authentication failed" in detail and "wrong-password-456" not in detail
    assert bad.newest("raw_candles", "ts", "1h") == {}
