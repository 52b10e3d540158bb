"""What a published file may say about the machine and the models that made it.

Published files go to a public bucket: they name a checkpoint by name, revision and sha256, never by a path on
the machine that ran it (``public_provenance``; ``without_local_paths`` replaces any absolute path left anywhere
in a document, as a last guard). And a number the page shows as "n/a" is null in the JSON, never 0: a point
forecast (every sample path the same, as the plain random walk's) makes no probability forecast, so its P(up)
and P(volatility amplification) are null (``public_forecast``); the warehouse keeps what was computed.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Callable, Sequence

CHECKPOINT_PARTS = ("model", "tokenizer")  # the provenance prefixes of a Kronos forecaster's two checkpoints
_ABSOLUTE = re.compile(r"^(?:file://|~[/\\]|/|[A-Za-z]:[\\/]|\\\\)")


def is_local_path(text: str) -> bool:
    """An absolute path (POSIX, Windows or UNC), a home-relative one or a file:// URL."""
    return bool(_ABSOLUTE.match(text))


def local_name(path: str) -> str:
    """The last two parts of a path: a checkpoint folder's name as its maker called it ('demo/model')."""
    pure = PureWindowsPath(path) if "\\" in path else PurePosixPath(path.removeprefix("file://"))
    return "/".join(p for p in pure.parts[-2:] if p not in ("/", "\\", "~") and not p.endswith(("\\", ":")))


def public_provenance(provenance: dict[str, Any]) -> dict[str, Any]:
    """The provenance with each checkpoint named by its hub repo (with the revision and sha256 beside it) or, for
    a local folder, by the folder's name: ``<part>_path`` becomes ``<part>_checkpoint``."""
    out = dict(provenance)
    for part in CHECKPOINT_PARTS:
        path = out.pop(f"{part}_path", None)
        if path is not None:
            out[f"{part}_checkpoint"] = out.get(f"{part}_repo") or local_name(str(path))
    return without_local_paths(out)


def rounded(obj: Any, digits: int = 10) -> Any:
    """``obj`` with every float to ``digits`` significant digits: a forecast's per-step summaries (quantiles and
    means of its sample paths, which are published in full: verify recomputes them within 1e-9, and 10 digits err
    by 5e-11 at most) and the figures, in a third fewer bytes. Verdicts and scores keep every digit: verify
    recomputes them from their inputs and compares exactly."""
    return _map_leaves(obj, lambda v: float(f"{v:.{digits}g}") if isinstance(v, float) else v)


def _map_leaves(obj: Any, leaf: Callable[[Any], Any]) -> Any:
    """``obj`` with ``leaf`` applied to every value inside its dicts, lists and tuples (tuples become lists)."""
    if isinstance(obj, dict):
        return {k: _map_leaves(v, leaf) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_map_leaves(v, leaf) for v in obj]
    return leaf(obj)


def is_point_forecast(steps: Sequence[dict[str, Any]]) -> bool:
    """Every step's 5 % and 95 % quantiles equal: one path repeated, no distribution to take a probability from."""
    return bool(steps) and all(s.get("q05") == s.get("q95") for s in steps)


def public_forecast(head: dict[str, Any]) -> dict[str, Any]:
    """One model's forecast as published: public provenance, and null where a point forecast says nothing."""
    out = dict(head)
    if isinstance(out.get("provenance"), dict):
        out["provenance"] = public_provenance(out["provenance"])
    if is_point_forecast(out.get("steps") or []):
        out["p_up"] = out["p_vol_amp"] = None
    return out


def without_local_paths(obj: Any) -> Any:
    """``obj`` with every string that is a local path replaced by its last two parts (see ``local_name``)."""
    return _map_leaves(obj, lambda v: local_name(v) if isinstance(v, str) and is_local_path(v) else v)
