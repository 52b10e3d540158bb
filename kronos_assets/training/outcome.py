"""What a training run produced (RunOutcome: its settings, result, checkpoint files, held-out scores and costs), as
training.json and the model card read it; apart from run.py so that the card needs nothing of the run's code."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from kronos_assets.base.environment import REPO_ROOT
from kronos_assets.kronos.hub import CheckpointInfo
from kronos_assets.training.config import RunSettings
from kronos_assets.training.evaluate import HeldOut
from kronos_assets.training.trainer import TrainResult, param_count


@dataclass
class RunOutcome:
    run: RunSettings
    result: TrainResult
    output: Path | None  # None while the run is unfinished (stopped by max_steps)
    data: dict[str, Any]
    base_label: str
    heldout: HeldOut | None = None
    infos: dict[str, CheckpointInfo] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    device: str = "cpu"
    threads: int = 1
    command: str | None = None

    @property
    def finished(self) -> bool:
        return self.result.finished

    def summary(self) -> dict[str, Any]:
        """Everything about the run as JSON-able data (training.json)."""
        r = self.run
        return {
            "run": r.name,
            "description": r.description,
            "fingerprint": r.fingerprint(),
            "base": self.base_label,
            "settings": _settings_dict(r),
            "data": self.data,
            "device": self.device,
            "threads": self.threads,
            "torch": torch.__version__,
            "machine": platform.machine(),
            "seconds": self.seconds,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "parameters": {"tokenizer": param_count(self.result.tokenizer), "model": param_count(self.result.model)},
            "checkpoint": {p: {"sha256": i.sha256, "size_bytes": i.size_bytes} for p, i in self.infos.items()},
            "history": self.result.history,
            "heldout": self.heldout.to_dict() if self.heldout else None,
            "output": repo_relative(self.output),
            "command": self.command,
        }


def repo_relative(p: str | os.PathLike[str] | None) -> str | None:
    """A path inside the repository relative to its root (so committed files name no machine's folders)."""
    if p is None:
        return None
    try:
        return str(Path(p).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(p)


def _settings_dict(r: RunSettings) -> dict[str, Any]:
    d = asdict(r)
    d["base"] = {"kind": r.base.kind, "value": repo_relative(r.base.value) if r.base.kind == "folder" else r.base.value}
    for k in ("output", "source_file"):
        d[k] = repo_relative(d[k])
    d["data"]["files"] = {s: repo_relative(f) for s, f in r.data.files.items()}
    d["evaluation"] |= d["evaluation"].pop("sampling")  # recorded flat, as training.yaml writes it
    return json.loads(json.dumps(d, default=str))
