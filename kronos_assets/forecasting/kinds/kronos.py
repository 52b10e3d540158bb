"""The ``kronos`` kind: a Kronos checkpoint from the hub (repo at a pinned revision, with its tokenizer) or from a
local folder holding ``model/`` and ``tokenizer/`` (each config.json + model.safetensors). It has weights to fetch
and verify, and hub revisions to watch."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo, field_validator

from kronos_assets.base import environment
from kronos_assets.base.config_files import Device, Schema, Whole, problem
from kronos_assets.forecasting.kinds.base import Kind, register


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


Commit = Annotated[str, BeforeValidator(lambda v: _commit(v))]


def _commit(value: Any) -> str:
    if not (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40}", value)):
        raise problem(f"pin a 40-hex commit hash, not {value!r}")
    return value


class HubCheckpoint(Schema):
    """A checkpoint on the hub, model and tokenizer each at a pinned commit."""

    repo: str
    revision: Commit
    tokenizer_repo: str
    tokenizer_revision: Commit
    max_context: Whole(1)  # type: ignore[valid-type]
    device: Device = "auto"


class LocalCheckpoint(Schema):
    """A folder holding model/ and tokenizer/ (each config.json + model.safetensors), relative to the repository."""

    local_dir: Path
    max_context: Whole(1)  # type: ignore[valid-type]
    device: Device = "auto"

    @field_validator("local_dir", mode="before")
    @classmethod
    def _folder(cls, value: Any, info: ValidationInfo) -> Path:
        if not isinstance(value, str):
            raise problem(f"must be a folder path, got {value!r}")
        local = (Path((info.context or {}).get("root", ".")) / value).resolve()
        for part in ("model", "tokenizer"):
            for name in ("config.json", "model.safetensors"):
                if not (local / part / name).is_file():
                    raise problem(f"{local / part / name} not found")
        return local


def _settle(key: str, o: HubCheckpoint | LocalCheckpoint) -> KronosSettings:
    if isinstance(o, LocalCheckpoint):
        return KronosSettings(key, None, None, None, None, o.max_context, local_dir=o.local_dir, device=o.device)
    return KronosSettings(
        key, o.repo, o.revision, o.tokenizer_repo, o.tokenizer_revision, o.max_context, device=o.device
    )


def build(key: str, m: KronosSettings) -> Any:
    from kronos_assets.forecasting.kronos_forecaster import KronosForecaster  # torch: loaded when first asked for

    return KronosForecaster(
        m.model_source,
        m.tokenizer_source,
        model_revision=m.revision,
        tokenizer_revision=m.tokenizer_revision,
        device=None if m.device == "auto" else m.device,
        max_context=m.max_context,
        cache_dir=environment.hf_cache(),
        name=key,
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
    cache = environment.hf_cache()  # else huggingface_hub's own (HF_HOME / HF_HUB_CACHE)
    return {
        "model": predownload(m.repo, m.revision, kind="model", cache_dir=cache),
        "tokenizer": predownload(m.tokenizer_repo, m.tokenizer_revision, kind="tokenizer", cache_dir=cache),
    }


def revisions(m: KronosSettings) -> dict[str, tuple[str, str]]:
    """The hub repos to watch (none for a local folder) with their pinned revisions."""
    if not m.repo:
        return {}
    return {"model": (m.repo, m.revision or ""), "tokenizer": (m.tokenizer_repo or "", m.tokenizer_revision or "")}


def repin(m: KronosSettings, revs: dict[str, str]) -> KronosSettings:
    return dataclasses.replace(
        m, revision=revs.get("model") or m.revision, tokenizer_revision=revs.get("tokenizer") or m.tokenizer_revision
    )


KIND = register(
    Kind(
        "kronos",
        lambda entry: LocalCheckpoint if "local_dir" in entry else HubCheckpoint,
        build,
        describe,
        weights=weights,
        revisions=revisions,
        repin=repin,
        settle=_settle,
        options=KronosSettings,
    )
)
