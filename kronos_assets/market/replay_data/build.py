"""Rebuild the shipped replay dataset from the real candles of ../shared/data/candles.

    .venv/bin/python -m kronos_assets.market.replay_data.build [--source DIR]

Each output file holds the source file's rows from FIRST_DAY on, byte for byte (header included: same columns,
same number formatting, gaps left as gaps), gzip-compressed with mtime 0 and no file name in the header, so a
rebuild gives the same bytes. SOURCES.md beside them records each source file's sha256 and each output's.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
from pathlib import Path

from kronos_assets.base import environment
from kronos_assets.market.replay_data import DATA_DIR

FIRST_DAY = "2024-01-01"
HEADER = b"timestamp,open,high,low,close,volume"
# source file in ../shared/data/candles -> shipped file (named like the sources: first and last candle dates)
FILES = {
    "binance_BTCUSDT_1h_20210601_20260620.csv.gz": "binance_BTCUSDT_1h_20240101_20260620.csv.gz",
    "binance_ETHUSDT_1h_20240101_20260331.csv.gz": "binance_ETHUSDT_1h_20240101_20260331.csv.gz",
}


def default_source() -> Path:
    return environment.shared_dir() / "data" / "candles"


def cut(raw: bytes, first_day: str = FIRST_DAY) -> bytes:
    """The header and the rows whose open time is on or after ``first_day`` (ISO timestamps sort as text)."""
    lines = raw.splitlines(keepends=True)
    if not lines or lines[0].rstrip(b"\r\n") != HEADER:
        raise ValueError(f"expected the header {HEADER.decode()!r}, got {lines[0][:80]!r}" if lines else "empty file")
    return lines[0] + b"".join(line for line in lines[1:] if line[:10].decode() >= first_day)


def gzip_bytes(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=out, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(source: Path, dest: Path = DATA_DIR) -> list[dict[str, str | int]]:
    rows = []
    for src_name, out_name in FILES.items():
        src = source / src_name
        if not src.is_file():
            raise FileNotFoundError(f"{src}: source file missing (set KRONOS_SHARED_DIR or --source)")
        src_bytes = src.read_bytes()
        body = cut(gzip.decompress(src_bytes))
        packed = gzip_bytes(body)
        tmp = dest / f".{out_name}.tmp"
        tmp.write_bytes(packed)
        os.replace(tmp, dest / out_name)  # never a half-written data file
        lines = body.splitlines()
        rows.append(
            {
                "source": src_name,
                "source_sha256": sha256(src_bytes),
                "file": out_name,
                "sha256": sha256(packed),
                "rows": len(lines) - 1,
                "first": lines[1][:16].decode(),
                "last": lines[-1][:16].decode(),
                "bytes": len(packed),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="folder of the source candles (default $KRONOS_SHARED_DIR/data/candles or ../shared/data/candles)",
    )
    args = parser.parse_args(argv)
    try:
        rows = build(args.source or default_source())
    except (OSError, ValueError) as exc:
        print(f"replay data: {exc}", file=sys.stderr)
        return 1
    for r in rows:
        print(
            f"{r['file']}: {r['rows']} rows {r['first']} .. {r['last']} UTC, {r['bytes']} bytes, sha256 {r['sha256']}"
            f" (from {r['source']}, sha256 {r['source_sha256']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
