"""Reading a candle file's bytes into a raw frame, bounded: only regular files are opened, and a file too large
on disk or once decompressed is refused before that much memory is used."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from kronos_assets.market.files.errors import CandleFileError

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
FEATHER_SUFFIXES = (".feather", ".arrow", ".ipc")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES + FEATHER_SUFFIXES
MB = 1 << 20


@dataclass(frozen=True)
class ReadLimits:
    """How much one candle file may cost to read: its size on disk and its size once decompressed."""

    max_file_bytes: int = 64 * MB
    max_decompressed_bytes: int = 64 * MB


def suffix_kind(path: Path) -> str | None:
    name = path.name.lower()
    for kind, suffixes in (("csv", CSV_SUFFIXES), ("parquet", PARQUET_SUFFIXES), ("ipc", FEATHER_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    return None


def open_regular(path: str | os.PathLike[str]) -> io.BufferedReader:
    """``path`` opened for reading, or CandleFileError (not_a_regular_file) for a FIFO, socket or device.

    Opened non-blocking, so a FIFO cannot hang the caller even if it replaced a file since the folder scan."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise CandleFileError(path, "not_a_regular_file", f"not a regular file ({file_kind(mode)}); skipped unread")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a regular file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open_regular(path) as fh:
        for chunk in iter(lambda: fh.read(MB), b""):
            h.update(chunk)
    return h.hexdigest()


def too_large(path: Path, what: str, limit: int) -> CandleFileError:
    return CandleFileError(path, "too_large", f"{what} exceeds the {limit / MB:g} MB limit (uploads.max_* settings)")


GZIP_MAGIC, ZSTD_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
ZLIB_HEADERS = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")


def _check_decompressed(path: Path, fh: io.BufferedReader, limits: ReadLimits) -> None:
    """Refuse compressed content (polars would inflate gzip, zlib or zstd in memory) that is larger than the
    limit, counting it in 1 MiB chunks that are never held; zstd, which the standard library cannot count, is
    refused outright."""
    head = fh.read(4)
    fh.seek(0)
    if head == ZSTD_MAGIC:
        raise CandleFileError(path, "unsupported_format", "zstd-compressed content; compress it with gzip instead")
    size, limit = 0, limits.max_decompressed_bytes
    if head[:2] == GZIP_MAGIC:
        with gzip.GzipFile(fileobj=fh) as stream:
            while chunk := stream.read(MB):
                size += len(chunk)
                if size > limit:
                    raise too_large(path, "the decompressed content", limit)
    elif head[:2] in ZLIB_HEADERS:
        inflate = zlib.decompressobj()
        while not inflate.eof and (src := inflate.unconsumed_tail or fh.read(MB)):
            size += len(inflate.decompress(src, MB))
            if size > limit:
                raise too_large(path, "the decompressed content", limit)
    fh.seek(0)


def read_raw(path: Path, limits: ReadLimits = ReadLimits()) -> pl.DataFrame:
    kind = suffix_kind(path)
    if kind is None:
        raise CandleFileError(
            path, "unsupported_format", f"unsupported file type; use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limits.max_file_bytes:
            raise too_large(path, f"the file ({size / MB:.1f} MB)", limits.max_file_bytes)
        try:
            if kind == "csv":
                _check_decompressed(path, fh, limits)
                data = fh.read()  # from the descriptor checked above (at most max_file_bytes)
                # every column as text: conversion errors name the row
                return pl.read_csv(data, infer_schema=False) if data.strip() else pl.DataFrame()
            table = _read_arrow(path, fh, kind, limits)
            return pl.from_arrow(table)  # type: ignore[return-value]
        except CandleFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - any reader failure is an unreadable file
            raise CandleFileError(
                path, "unreadable", f"cannot read as {kind}: {str(exc).splitlines()[0][:200]}"
            ) from exc


def _read_arrow(path: Path, fh: io.BufferedReader, kind: str, limits: ReadLimits) -> object:
    """A Parquet or Feather file as an Arrow table, refused before reading when its content is too large."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    limit = limits.max_decompressed_bytes
    if kind == "parquet":
        pf = pq.ParquetFile(fh)
        meta = pf.metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if size > limit:
            raise too_large(path, f"the uncompressed content ({size / MB:.1f} MB)", limit)
        return pf.read()
    reader = ipc.open_file(fh)
    batches, size = [], 0
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        size += batch.nbytes
        if size > limit:
            raise too_large(path, "the uncompressed content", limit)
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=reader.schema)
