"""The watched folder: safe market names from file names, paths that cannot escape it, and its usable files.

File names are bytes to the operating system; Python hands back the bytes that are not UTF-8 as lone surrogates,
which no UTF-8 writer (a log, a database, gRPC) accepts. Such a name is skipped with its reason and shown with
``printable`` (``bad\\xff.csv``), so nothing downstream ever sees a surrogate."""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kronos_assets.market.files.errors import PathEscapeError
from kronos_assets.market.files.reading import SUPPORTED_SUFFIXES, file_kind, suffix_kind

MARKET_NAME_MAX = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")


def is_utf8(name: str) -> bool:
    """Whether ``name`` came from valid UTF-8 bytes (no surrogate escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """``text`` safe to write anywhere as UTF-8: undecodable bytes of a file name (surrogate escapes) as ``\\xNN``."""
    if is_utf8(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name byte gives: shown as \udNNN
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def market_name_from_filename(filename: str) -> str:
    """A market name safe as a Dagster dynamic partition key: ``[A-Za-z0-9._-]``, no leading/trailing ``._-``.

    ``"BTC-USDT 1h.csv.gz"`` -> ``"BTC-USDT_1h"``. Directory parts and the file type suffix are dropped,
    non-ASCII letters are transliterated where possible, runs of other characters become one ``_``.
    Raises ValueError when nothing usable is left.
    """
    base = re.split(r"[\\/]", str(filename))[-1]
    lower = base.lower()
    for suffix in _COMPRESSION:
        if lower.endswith(suffix):
            base, lower = base[: -len(suffix)], lower[: -len(suffix)]
            break
    for suffix in SUPPORTED_SUFFIXES:
        if lower.endswith(suffix):
            base = base[: -len(suffix)]
            break
    ascii_ = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    name = _UNSAFE.sub("_", ascii_)
    name = re.sub(r"_{2,}", "_", name).strip("._-")[:MARKET_NAME_MAX].strip("._-")
    if not name:
        raise ValueError(f"file name {filename!r} gives no usable market name")
    return name


def resolve_in_folder(folder: str | os.PathLike[str], name: str | os.PathLike[str]) -> Path:
    """The real path of ``name`` inside ``folder``; PathEscapeError if it would lead outside.

    Refused: empty names, NUL bytes, backslashes, absolute paths, ``~``, any ``..`` part, and paths (symlinks
    included, at any level) whose real location is not inside the folder's real location. A missing file raises
    FileNotFoundError, a directory IsADirectoryError.
    """
    text = os.fspath(name)
    if not text or "\x00" in text or "\\" in text:
        raise PathEscapeError(f"refusing file name {text!r}")
    rel = PurePosixPath(text)
    if rel.is_absolute() or text.startswith("~"):
        raise PathEscapeError(f"refusing absolute path {text!r}; give a name inside the watched folder")
    if any(part == ".." for part in rel.parts):
        raise PathEscapeError(f"refusing {text!r}: '..' leads out of the watched folder")
    root = Path(folder).resolve(strict=True)
    target = (root / rel).resolve(strict=False)
    if target != root and root not in target.parents:
        raise PathEscapeError(f"refusing {text!r}: it resolves to {target}, outside {root}")
    if not target.exists():
        raise FileNotFoundError(f"{text!r} not found in {root}")
    if target.is_dir():
        raise IsADirectoryError(f"{text!r} is a folder, not a candle file")
    return target


@dataclass
class FolderScan:
    files: dict[str, Path]  # market name -> resolved path
    skipped: list[tuple[str, str]]  # (file name, reason)


def scan_folder(folder: str | os.PathLike[str]) -> FolderScan:
    """Candle files directly inside ``folder`` by market name. Hidden files, other types, anything but a regular
    file, links out of the folder, names that are not valid UTF-8 and names that collide (both files) are
    skipped with the reason; skipped names are ``printable``."""
    root = Path(folder)
    found: dict[str, list[tuple[str, Path]]] = {}
    skipped: list[tuple[str, str]] = []
    for entry in sorted(os.listdir(root)):
        if entry.startswith("."):
            continue
        if not is_utf8(entry):
            if not (root / entry).is_dir():
                skipped.append(
                    (
                        printable(entry),
                        "the file name is not valid UTF-8; rename the file to have it read (skipped unread)",
                    )
                )
            continue
        if suffix_kind(Path(entry)) is None:
            if not (root / entry).is_dir():
                skipped.append((entry, "unsupported file type"))
            continue
        try:
            path = resolve_in_folder(root, entry)
            market = market_name_from_filename(entry)
            mode = os.stat(path).st_mode  # stat never opens: a FIFO cannot block it
        except (PathEscapeError, ValueError, OSError) as exc:
            skipped.append((entry, str(exc)))
            continue
        if not stat.S_ISREG(mode):
            skipped.append((entry, f"not a regular file ({file_kind(mode)}); skipped unread"))
            continue
        found.setdefault(market, []).append((entry, path))
    files: dict[str, Path] = {}
    for market, entries in found.items():
        if len(entries) > 1:
            names = ", ".join(e for e, _ in entries)
            skipped.extend((e, f"market name {market!r} is shared by {names}") for e, _ in entries)
        else:
            files[market] = entries[0][1]
    return FolderScan(files, skipped)
