"""Bad things dropped into the uploads folder: the sensor never hangs, never starves a file, never reads a file
still being written, never takes more memory than the limits allow, and refuses non-numeric prices."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import zlib
from datetime import datetime, timedelta, timezone

import dagster as dg
import polars as pl
import pytest

from kronos_assets.defs.factory import build_definitions
from kronos_assets.defs.resources import build_resources
from kronos_assets.defs.uploads import MAX_FILES_PER_TICK
from kronos_assets.market.files import MB, CandleFileError, ReadLimits, file_digest, load_candle_file
from kronos_assets.market.synthetic import SyntheticMarket
from kronos_assets_tests.helpers import small_settings

UTC = timezone.utc
START = datetime(2025, 3, 1, tzinfo=UTC)
LINE = "2025-03-01T00:00:00Z,1.0,1.0,1.0,1.0,1.0\n"


def candles(days: int = 3, seed: int = 5) -> pl.DataFrame:
    return SyntheticMarket(seed=seed).fetch(
        "MY/COIN", "1h", START, START + timedelta(days=days), datetime(2026, 1, 1, tzinfo=UTC)
    )


def csv_text(df: pl.DataFrame) -> str:
    return df.select(
        pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("timestamp"), "open", "high", "low", "close", "volume"
    ).write_csv()


@pytest.fixture
def env(tmp_path):
    settings = small_settings(tmp_path)
    defs = build_definitions(settings, build_resources(settings))
    settings.uploads_dir.mkdir(parents=True)
    return settings, defs, dg.DagsterInstance.ephemeral()


def tick(env, cursor=None, limit_s: float = 60):
    """One sensor evaluation in a thread, so a hang fails the test instead of stalling it."""
    settings, defs, instance = env
    out: dict = {}

    def run():
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def())
        out["result"] = defs.resolve_sensor_def("uploaded_candles").evaluate_tick(ctx)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit_s)
    assert not t.is_alive(), f"the sensor tick did not end within {limit_s}s"
    return out["result"]


def test_a_fifo_is_reported_and_skipped_never_opened(env):
    settings = env[0]
    os.mkfifo(settings.uploads_dir / "x.csv")
    (settings.uploads_dir / "good_1h.csv").write_text(csv_text(candles()))
    first = tick(env, limit_s=30)
    second = tick(env, first.cursor, limit_s=30)
    assert [r.tags["kronos/symbol"] for r in second.run_requests] == ["good_1h"]
    assert "x.csv: not a regular file (a FIFO); skipped unread" in first.skip_message
    with pytest.raises(CandleFileError, match="not a regular file \\(a FIFO\\)"):
        load_candle_file(settings.uploads_dir / "x.csv")  # opened non-blocking: refused, not hung


def test_every_file_gets_its_turn_across_ticks(env):
    settings = env[0]
    n = MAX_FILES_PER_TICK + 5
    text = csv_text(candles(days=2))
    for i in range(n):
        (settings.uploads_dir / f"coin{i:02d}_1h.csv").write_text(text)
    seen: list[str] = []
    cursor = tick(env).cursor  # first look at all of them
    for _ in range(3):
        result = tick(env, cursor)
        cursor = result.cursor
        seen += [r.tags["kronos/symbol"] for r in result.run_requests]
    assert sorted(seen) == [f"coin{i:02d}_1h" for i in range(n)] and len(seen) == n  # each once, none starved
    assert not tick(env, cursor).run_requests


def test_a_file_still_being_written_waits_until_it_is_stable(env):
    settings = env[0]
    df = candles(days=4)
    text = csv_text(df)
    lines = text.splitlines(keepends=True)
    path = settings.uploads_dir / "growing_1h.csv"
    path.write_text("".join(lines[:30]))  # cut at a line boundary: it parses as a complete, shorter file
    first = tick(env)
    with path.open("a") as fh:
        fh.write("".join(lines[30:]))
    second = tick(env, first.cursor)
    assert not second.run_requests and "growing_1h: waiting until its size and modification time" in second.skip_message
    third = tick(env, second.cursor)
    (req,) = third.run_requests
    assert req.tags["kronos/bar"] == df["ts"][-1].strftime("%Y-%m-%d-%H:%M")
    assert json.loads(req.tags["kronos/upload_profile"])["rows"] == df.height
    assert not tick(env, third.cursor).run_requests  # taken once


def test_boolean_prices_are_refused_naming_the_column(tmp_path):
    df = candles().with_columns(pl.lit(True).alias("close")).select("ts", "open", "high", "low", "close", "volume")
    df.write_parquet(tmp_path / "bools_1h.parquet")
    with pytest.raises(CandleFileError, match="column 'close' has type Boolean, not numbers") as info:
        load_candle_file(tmp_path / "bools_1h.parquet")
    assert info.value.problem == "not_a_number"
    (tmp_path / "text_1h.csv").write_text("timestamp,open,high,low,close\n2025-03-01T00:00:00Z,1,2,1,true\n")
    with pytest.raises(CandleFileError, match="row 1: close 'true' is not a number"):
        load_candle_file(tmp_path / "text_1h.csv")


def test_size_limits_are_reported(tmp_path):
    path = tmp_path / "big_1h.csv"
    path.write_text(csv_text(candles(days=30)))
    with pytest.raises(CandleFileError, match=r"big_1h.csv: the file \(0.1 MB\) exceeds the 0.0625 MB limit") as info:
        load_candle_file(path, limits=ReadLimits(max_file_bytes=MB // 16))
    assert info.value.problem == "too_large"
    gz = tmp_path / "big_1h.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(CandleFileError, match="the decompressed content exceeds the 0.0625 MB limit"):
        load_candle_file(gz, limits=ReadLimits(max_decompressed_bytes=MB // 16))
    pq = tmp_path / "big_1h.parquet"
    load_candle_file(path).candles.write_parquet(pq)
    with pytest.raises(CandleFileError, match="the uncompressed content .* exceeds the 0.015625 MB limit"):
        load_candle_file(pq, limits=ReadLimits(max_decompressed_bytes=MB // 64))
    assert load_candle_file(gz).profile.rows == 30 * 24  # within the default limits
    deflated = tmp_path / "deflated_1h.csv"  # zlib content: polars would inflate it too
    deflated.write_bytes(zlib.compress(path.read_bytes()))
    with pytest.raises(CandleFileError, match="the decompressed content exceeds the 0.0625 MB limit"):
        load_candle_file(deflated, limits=ReadLimits(max_decompressed_bytes=MB // 16))
    assert load_candle_file(deflated).profile.rows == 30 * 24
    (tmp_path / "zstd_1h.csv").write_bytes(b"\x28\xb5\x2f\xfd" + bytes(64))
    with pytest.raises(CandleFileError, match="zstd-compressed content; compress it with gzip instead"):
        load_candle_file(tmp_path / "zstd_1h.csv")


def gzip_bomb(path, gz_mb: float = 6.6) -> int:
    """A valid multi-member .csv.gz of ``gz_mb`` MB that decompresses to about a thousand times that."""
    block = (LINE * (16 * MB // len(LINE))).encode()
    member = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = member.compress(block) + member.flush()
    with open(path, "wb") as fh:
        fh.write(gzip.compress(("timestamp,open,high,low,close,volume\n").encode()))
        for _ in range(int(gz_mb * MB / len(member))):
            fh.write(member)
    return path.stat().st_size


PEAK_RSS = """
import resource, sys
from kronos_assets.market.files import CandleFileError, load_candle_file
try:
    cf = load_candle_file(sys.argv[1])
    print("rows", cf.profile.rows)
except CandleFileError as exc:
    print("refused", exc.problem, exc)
print("peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
BASELINE = (
    "import resource, kronos_assets.market.files; print('peak_mb', "
    "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
)


def run_peak(*args: str) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, timeout=300, check=True).stdout
    return out, float(out.rsplit("peak_mb", 1)[1])


def test_memory_stays_bounded_for_a_6_6_mb_gzip(tmp_path):
    _, base = run_peak(BASELINE)
    bomb = tmp_path / "bomb_1h.csv.gz"
    size = gzip_bomb(bomb)
    assert 6 * MB < size < 7 * MB
    out, peak = run_peak(PEAK_RSS, str(bomb))
    assert "refused too_large" in out and "the decompressed content exceeds the 64 MB limit" in out
    assert peak - base < 300, (peak, base)  # was 5.1 GB before reading was bounded
    print(f"6.6 MB gzip bomb: refused, peak RSS above the interpreter {peak - base:.0f} MB")

    real = tmp_path / "real_15m.csv.gz"  # 6-7 MB of random-walk candles, about 18 MB decompressed
    df = SyntheticMarket(seed=3).fetch(
        "MY/COIN",
        "15m",
        datetime(2021, 7, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    real.write_bytes(gzip.compress(csv_text(df).encode(), 6))
    assert 6 * MB < real.stat().st_size < 7 * MB
    out, peak = run_peak(PEAK_RSS, str(real))
    assert f"rows {df.height}" in out
    assert peak - base < 300, (peak, base)
    print(
        f"{real.stat().st_size / MB:.1f} MB csv.gz, {df.height} rows: peak RSS above the interpreter "
        f"{peak - base:.0f} MB"
    )


def test_a_cursor_of_the_earlier_form_does_not_rerun_unchanged_files(env):
    settings = env[0]
    path = settings.uploads_dir / "old_1h.csv"
    path.write_text(csv_text(candles()))
    old_cursor = json.dumps({"old_1h": file_digest(path)})  # market -> sha256, as the sensor kept it before
    first = tick(env, old_cursor)
    second = tick(env, first.cursor)
    assert not first.run_requests and not second.run_requests
    path.write_text(csv_text(candles(days=4)))  # a real change is taken after two looks
    assert len(tick(env, tick(env, second.cursor).cursor).run_requests) == 1


def _utf8(text: str) -> str:
    text.encode("utf-8")  # what SQLite, gRPC and log files do with it: a surrogate raises UnicodeEncodeError
    return text


def test_a_file_name_that_is_not_utf8_is_reported_once_and_the_rest_is_ingested(env, capfd):
    settings = env[0]
    fd = os.open(os.fsencode(settings.uploads_dir) + b"/bad\xff_1h.csv", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, csv_text(candles()).encode())
    os.close(fd)
    (settings.uploads_dir / "good_1h.csv").write_text(csv_text(candles()))
    ticks = [tick(env)]
    for _ in range(2):
        ticks.append(tick(env, ticks[-1].cursor))

    assert [r.tags["kronos/symbol"] for t in ticks for r in t.run_requests] == ["good_1h"]
    why = r"bad\xff_1h.csv: the file name is not valid UTF-8; rename the file to have it read (skipped unread)"
    assert why in ticks[0].skip_message
    assert why not in ticks[2].skip_message and "1 skipped file(s) reported earlier" in ticks[2].skip_message
    log = capfd.readouterr().err  # the sensor's log (Dagster's console logger)
    assert log.count("upload refused: bad") == 1 and f"upload refused: {why}" in log
    # Nothing the daemon stores or sends (tick, cursor, run keys, tags, partition keys, log) holds a surrogate.
    for t in ticks:
        _utf8(t.cursor or "")
        _utf8(t.skip_message or "")
        for r in t.run_requests:
            [_utf8(s) for s in (r.run_key, *r.tags, *r.tags.values(), *(r.partition_key or "",))]
        for request in t.dynamic_partitions_requests:
            [_utf8(k) for k in request.partition_keys]
    _utf8(log)


def test_a_file_gone_between_the_scan_and_its_look_is_left_for_the_next_tick(tmp_path):
    from kronos_assets.defs.uploads import UploadsCursor, due_files

    cursor = UploadsCursor(looks={"gone_1h": [10, 1, 1]})
    (tmp_path / "kept_1h.csv").write_text("x")
    files = {"gone_1h": tmp_path / "gone_1h.csv", "kept_1h": tmp_path / "kept_1h.csv"}  # gone: deleted meanwhile
    assert due_files(cursor, files, stable_looks=1) == ["kept_1h"]  # was FileNotFoundError, failing the tick
    assert "gone_1h" not in cursor.looks
