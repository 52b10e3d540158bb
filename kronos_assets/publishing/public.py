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


# Significant digits of a forecast's published per-step summaries (quantiles and means of its sample paths). The
# paths are published in full, and verify recomputes the summaries from them within STEP_REL_TOL. Seven digits are
# what a float32 path carries (the model draws float32), and cost a fifth fewer bytes than ten.
STEP_DIGITS = 7
STEP_REL_TOL = 10.0 ** (1 - STEP_DIGITS)  # twice the largest rounding error, 5e-7


def rounded(obj: Any, digits: int = STEP_DIGITS) -> Any:
    """``obj`` with every float to ``digits`` significant digits: a forecast's per-step summaries and the figures.
    Verdicts and scores keep every digit: verify recomputes them from their inputs and compares them exactly."""
    return _map_leaves(obj, lambda v: float(f"{v:.{digits}g}") if isinstance(v, float) else v)


def same_document(old: Any, new: Any) -> bool:
    """Whether ``old`` (a published JSON document) says what ``new`` says: equal, or a forecast file of an older
    encoding (step summaries to 10 digits, with median_close, the q50 again) whose steps round to ``new``'s and
    whose every other field is equal."""
    if old == new:
        return True
    if not (isinstance(old, dict) and isinstance(new, dict) and isinstance(old.get("forecasts"), dict)):
        return False
    if isinstance(new.get("forecasts"), dict) and old["forecasts"].keys() == new["forecasts"].keys():
        pairs = [(old["forecasts"][m], new["forecasts"][m]) for m in old["forecasts"]]
        if all(isinstance(o, dict) and isinstance(n, dict) for o, n in pairs):
            return _without_steps(old) == _without_steps(new) and all(
                _close_steps(o.get("steps"), n.get("steps")) for o, n in pairs
            )
    return False


def _without_steps(doc: dict[str, Any]) -> dict[str, Any]:
    return doc | {"forecasts": {m: {k: v for k, v in fc.items() if k != "steps"} for m, fc in doc["forecasts"].items()}}


def _close_steps(old: Any, new: Any) -> bool:
    """The same steps, ``old`` with more digits (within STEP_REL_TOL) and perhaps median_close."""
    if not (isinstance(old, list) and isinstance(new, list) and len(old) == len(new)):
        return False
    for a, b in zip(old, new):
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return False
        a = {k: v for k, v in a.items() if k != "median_close"}
        if a.keys() != b.keys():
            return False
        for k, x in a.items():
            y = b[k]
            if isinstance(x, float) and isinstance(y, (int, float)):
                if abs(x - y) > STEP_REL_TOL * abs(y):
                    return False
            elif x != y:
                return False
    return True


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
