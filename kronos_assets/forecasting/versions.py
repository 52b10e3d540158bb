"""What makes a stored forecast current: its version key, one short digest per (model, timeframe).

A forecast is recomputed when its key differs from the one stored with it (``forecast_version`` in the
provenance JSON), and only then. The key covers everything that changes the numbers of a forecast:

* the model's identity: a hub checkpoint's repos and pinned revisions (a commit pins its files' sha256), a local
  checkpoint's file sha256 (a retrained folder is a new model), a baseline's or GARCH's options;
* the sampling settings (paths, horizon, temperature, top-p/k, seed) and the history a request sees;
* the code that makes forecasts: ``CODE_VERSION`` of the shared forecasting code and ``KIND_CODE_VERSIONS`` of
  each kind. Bump the one whose output changes (a new summary, a fixed sampler), in the commit that changes it.

Deliberately not in the key: where the checkpoint lives on disk, the device, thread counts (same seed, same
numbers), the partition it is stored in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from kronos_assets.forecasting.interface import Sampling
from kronos_assets.forecasting.kinds.base import ModelSpec

VERSION_FIELD = "forecast_version"  # the provenance key holding the version a forecast was made at
CODE_VERSION = "1"  # requests, summaries, the stored record (forecasting/requests.py, summary.py, records.py)
KIND_CODE_VERSIONS = {"kronos": "1", "garch": "1", "random_walk": "1", "random_walk_vol": "1"}
_IGNORED_OPTIONS = {"key", "local_dir", "device"}  # placement, not identity
_sha_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) so a tick hashes a checkpoint only when it changed."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _sha_cache:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _sha_cache[key] = digest.hexdigest()
    return _sha_cache[key]


def _options(options: Any) -> Any:
    if dataclasses.is_dataclass(options):
        return {k: v for k, v in dataclasses.asdict(options).items() if k not in _IGNORED_OPTIONS}
    if hasattr(options, "model_dump"):
        return {k: v for k, v in options.model_dump().items() if k not in _IGNORED_OPTIONS}
    return options


def model_identity(spec: ModelSpec) -> dict[str, Any]:
    """The model part of the key: kind, its code version, its options and, for a local checkpoint folder, the
    sha256 of every file of its model/ and tokenizer/ parts."""
    out: dict[str, Any] = {
        "kind": spec.kind,
        "kind_code": KIND_CODE_VERSIONS.get(spec.kind, "0"),
        "options": _options(spec.options),
    }
    local = getattr(spec.options, "local_dir", None)
    if local is not None:
        out["files"] = {
            f"{part}/{name}": file_sha256(Path(local) / part / name)
            for part in ("model", "tokenizer")
            for name in ("config.json", "model.safetensors")
        }
    return out


def forecast_version(spec: ModelSpec, sampling: Sampling, history_bars: int) -> str:
    """The version key of ``spec``'s forecasts made with ``sampling`` on ``history_bars`` bars of history."""
    parts = {
        "code": CODE_VERSION,
        "model": model_identity(spec),
        "sampling": sampling.as_dict(),
        "history_bars": history_bars,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def forecast_versions(
    specs: dict[str, ModelSpec], names: list[str], sampling: Sampling, history_bars: int
) -> dict[str, str]:
    """Model name -> version key, for the forecasters ``names`` of one timeframe."""
    return {name: forecast_version(specs[name], sampling, history_bars) for name in names}
