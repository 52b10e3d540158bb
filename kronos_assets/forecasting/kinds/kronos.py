"""The ``kronos`` kind: a Kronos checkpoint from the hub (repo at a pinned revision, with its tokenizer) or from a
local folder holding ``model/`` and ``tokenizer/`` (each config.json + model.safetensors). It has weights to fetch
and verify, and hub revisions to watch."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kronos_assets.forecasting.kinds.base import Kind, Options

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class KronosSettings:
    key: str
    repo: str | None
    revision: str | None
    tokenizer_repo: str | None
    tokenizer_revision: str | None
    max_context: int
    local_dir: Path | None = None
    device: str = "auto"

    @property
    def model_source(self) -> str:
        return str(self.local_dir / "model") if self.local_dir else str(self.repo)

    @property
    def tokenizer_source(self) -> str:
        return str(self.local_dir / "tokenizer") if self.local_dir else str(self.tokenizer_repo)


def parse(o: Options) -> KronosSettings:
    device = o.mapping.get("device", "auto")
    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise o.fail("device", f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    if o.has("local_dir"):
        local = (o.root / o.text("local_dir")).resolve()
        for part in ("model", "tokenizer"):
            for name in ("config.json", "model.safetensors"):
                if not (local / part / name).is_file():
                    raise o.fail("local_dir", f"{local / part / name} not found")
        return KronosSettings(o.key, None, None, None, None, o.whole("max_context", 1), local_dir=local, device=device)
    revision = o.text("revision")
    tok_revision = o.text("tokenizer_revision")
    for name, rev in (("revision", revision), ("tokenizer_revision", tok_revision)):
        if not re.fullmatch(r"[0-9a-f]{40}", rev):
            raise o.fail(name, f"pin a 40-hex commit hash, not {rev!r}")
    return KronosSettings(key=o.key, repo=o.text("repo"), revision=revision, tokenizer_repo=o.text("tokenizer_repo"),
                          tokenizer_revision=tok_revision, max_context=o.whole("max_context", 1), device=device)


def build(key: str, m: KronosSettings) -> Any:
    from kronos_assets.forecasting.kronos_forecaster import KronosForecaster  # torch: loaded when first asked for

    return KronosForecaster(
        m.model_source, m.tokenizer_source, model_revision=m.revision, tokenizer_revision=m.tokenizer_revision,
        device=None if m.device == "auto" else m.device, max_context=m.max_context,
        cache_dir=os.environ.get("KRONOS_HF_CACHE"), name=key,
    )


def describe(m: KronosSettings) -> str:
    """Where the weights come from: a local folder or a hub repo at a revision."""
    if m.local_dir is not None:
        return f"local folder {m.local_dir}"
    if m.revision:
        return f"{m.repo}@{m.revision[:12]}"
    return f"{m.repo} (no pinned revision)"


def weights(m: KronosSettings) -> dict[str, Any]:
    """Fetches (into the Hugging Face cache) and verifies the model and tokenizer; offline it needs a filled cache."""
    from kronos_assets.kronos.hub import load_checkpoint, predownload

    if m.local_dir:
        return {part: load_checkpoint(m.local_dir / part, kind=part).info for part in ("model", "tokenizer")}
    cache = os.environ.get("KRONOS_HF_CACHE")  # else huggingface_hub's own (HF_HOME / HF_HUB_CACHE)
    return {"model": predownload(m.repo, m.revision, kind="model", cache_dir=cache),
            "tokenizer": predownload(m.tokenizer_repo, m.tokenizer_revision, kind="tokenizer", cache_dir=cache)}


def revisions(m: KronosSettings) -> dict[str, tuple[str, str]]:
    """The hub repos to watch (none for a local folder) with their pinned revisions."""
    if not m.repo:
        return {}
    return {"model": (m.repo, m.revision or ""), "tokenizer": (m.tokenizer_repo or "", m.tokenizer_revision or "")}


def repin(m: KronosSettings, revs: dict[str, str]) -> KronosSettings:
    return dataclasses.replace(m, revision=revs.get("model") or m.revision,
                               tokenizer_revision=revs.get("tokenizer") or m.tokenizer_revision)


KIND = Kind("kronos", parse, build, describe, weights=weights, revisions=revisions, repin=repin)
