"""Load, save and verify checkpoints: config.json + model.safetensors, from a folder or the Hugging Face hub.

Weights are read with safetensors only (never pickle / torch.load). Files of an official repo at its pinned
revision (spec §1) are checked against the published sha256 before use.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from huggingface_hub import errors as hf_errors
from huggingface_hub import hf_hub_download, snapshot_download
from safetensors.torch import load_file, save_file
from torch import nn

from kronos_assets.base import environment

from .config import OFFICIAL, AnyConfig, Kind, KronosConfig, TokenizerConfig, config_from_json, header_mismatches
from .errors import CheckpointError, CheckpointShapeError, ChecksumMismatchError, WeightsNotAvailableError
from .model import Kronos
from .tokenizer import KronosTokenizer

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CHECKPOINT_FILES = (CONFIG_NAME, WEIGHTS_NAME)


@dataclass(frozen=True)
class CheckpointInfo:
    """Identity of a checkpoint, recorded as provenance with every forecast."""

    kind: Kind
    source: str  # what was asked for: a repo id or a folder
    repo_id: str | None  # hub repo id (None for a plain folder)
    revision: str | None  # resolved commit hash for hub loads
    path: str  # folder holding config.json and model.safetensors
    sha256: dict[str, str]  # file name -> sha256
    size_bytes: int  # both files together
    parameter_count: int  # learned parameters (buffers excluded)
    official: str | None  # "repo@revision" of the published checkpoint these files are, if any
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedCheckpoint:
    module: nn.Module
    info: CheckpointInfo


def build_module(config: AnyConfig) -> nn.Module:
    return KronosTokenizer(config) if isinstance(config, TokenizerConfig) else Kronos(config)


# -- hashing -------------------------------------------------------------------------------------------------
_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, memoised per (real path, size, mtime) so a process hashes a 400 MB file once."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        h = hashlib.sha256()
        with open(real, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _SHA_MEMO[key] = h.hexdigest()
    return _SHA_MEMO[key]


def _identify_official(sha: dict[str, str]) -> str | None:
    for ck in OFFICIAL.values():
        if ck.files[WEIGHTS_NAME].sha256 == sha.get(WEIGHTS_NAME):
            return f"{ck.repo_id}@{ck.revision}"
    return None


def _verify_official(repo_id: str, revision: str, folder: Path) -> None:
    """Raise ChecksumMismatchError if a pinned official revision's files differ from the published ones."""
    ck = OFFICIAL.get(repo_id)
    if ck is None or ck.revision != revision:
        return
    for name, want in ck.files.items():
        path = folder / name
        size = path.stat().st_size
        got = sha256_file(path) if size == want.size else f"(size {size} instead of {want.size})"
        if got != want.sha256:
            raise ChecksumMismatchError(
                f"{repo_id}@{revision}: {name} has sha256 {got}, the published file has {want.sha256}. "
                f"The cached copy is corrupt or stale; re-fetch it with "
                f"`hf download {repo_id} {name} --revision {revision} --force-download`."
            )


# -- resolving a source --------------------------------------------------------------------------------------
def default_revision(repo_id: str) -> str:
    """The pinned revision of an official repo, else "main"."""
    ck = OFFICIAL.get(repo_id)
    return ck.revision if ck else "main"


def download_command(repo_id: str, revision: str) -> str:
    return f"kronos-forecast download {repo_id} --revision {revision}"


def _not_available(
    repo_id: str, revision: str, cache_dir: str | os.PathLike[str] | None, exc: BaseException
) -> WeightsNotAvailableError:
    from huggingface_hub import constants

    where = cache_dir or constants.HF_HUB_CACHE
    offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
    return WeightsNotAvailableError(  # the cause comes last: the line a user reads first
        f"Pre-download it where the hub is reachable, into the same cache, then run with HF_HUB_OFFLINE=1:\n"
        f"  {download_command(repo_id, revision)}\n"
        f"  (or: hf download {repo_id} {' '.join(CHECKPOINT_FILES)} --revision {revision})\n"
        f"Kronos checkpoint {repo_id} at revision {revision} is not in the Hugging Face cache {where} and "
        f"could not be fetched from the hub{offline}: {type(exc).__name__}: {exc}"
    )


_HUB_MISSING = (
    hf_errors.LocalEntryNotFoundError,
    hf_errors.OfflineModeIsEnabled,
    hf_errors.RepositoryNotFoundError,
    hf_errors.RevisionNotFoundError,
    hf_errors.EntryNotFoundError,
    hf_errors.HfHubHTTPError,
)


HUB_PROBE_TIMEOUT_S = 3.0
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def hub_unreachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the hub endpoint cannot be reached (one TCP connection, name lookup included, within ``timeout``), or
    None. huggingface_hub itself retries an unreachable hub 5 times with backoff (about 25 s) before it gives up."""
    from huggingface_hub import constants

    if environment.proxy_configured():
        return None  # only the proxy knows; leave it to huggingface_hub
    url = urlsplit(constants.ENDPOINT)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=probe, daemon=True, name="hub-probe")  # the name lookup has no timeout
    worker.start()
    worker.join(timeout)
    reason = outcome[0] if outcome else f"no connection within {timeout:g} s"
    return None if reason is None else f"cannot reach the hub at {constants.ENDPOINT} ({reason})"


def _offline(local_files_only: bool) -> bool:
    from huggingface_hub import constants

    return local_files_only or bool(constants.HF_HUB_OFFLINE)


def _fetch_files(repo_id: str, revision: str, cache_dir: str | os.PathLike[str] | None, local_files_only: bool) -> Path:
    def fetch(cache_only: bool) -> Path:
        paths = [
            Path(hf_hub_download(repo_id, name, revision=revision, cache_dir=cache_dir, local_files_only=cache_only))
            for name in CHECKPOINT_FILES
        ]
        return paths[0].parent  # snapshots/<commit>/

    try:
        if not _offline(local_files_only):
            if _COMMIT.match(revision):  # a commit never changes: a cached copy needs no network
                try:
                    return fetch(cache_only=True)
                except _HUB_MISSING:
                    pass
            reason = hub_unreachable()
            if reason:
                raise _not_available(repo_id, revision, cache_dir, ConnectionError(reason))
        return fetch(cache_only=local_files_only)
    except _HUB_MISSING as exc:
        raise _not_available(repo_id, revision, cache_dir, exc) from exc


def _resolve(
    source: str | os.PathLike[str],
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
) -> tuple[Path, str | None, str | None]:
    """-> (folder, repo_id, resolved revision). A folder wins over a repo id of the same spelling."""
    path = Path(source).expanduser()
    if path.is_dir():
        missing = [n for n in CHECKPOINT_FILES if not (path / n).is_file()]
        if missing:
            raise CheckpointError(f"checkpoint folder {path} lacks {missing} (needs {list(CHECKPOINT_FILES)})")
        return path, None, None
    repo_id = str(source)
    if repo_id.count("/") != 1 or path.exists():
        raise WeightsNotAvailableError(f"{source!r} is neither a checkpoint folder nor a hub repo id (owner/name)")
    rev = revision or default_revision(repo_id)
    folder = _fetch_files(repo_id, rev, cache_dir, local_files_only)
    return folder, repo_id, folder.name


# -- reading -------------------------------------------------------------------------------------------------
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit


def read_header_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors file's JSON header alone (no tensor data is read)."""
    try:
        with open(weights, "rb") as fh:
            raw = fh.read(8)
            n = int.from_bytes(raw, "little") if len(raw) == 8 else -1
            if not 0 < n <= min(MAX_HEADER_BYTES, weights.stat().st_size - 8):
                raise ValueError(f"header length {n} does not fit the file ({weights.stat().st_size} bytes)")
            header = json.loads(fh.read(n))
        return {k: tuple(int(d) for d in v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{weights} is not a readable safetensors file: {exc}") from exc


def _read_config(folder: Path, kind: Kind | None) -> tuple[AnyConfig, dict[str, tuple[int, ...]]]:
    """config.json, checked for types and sane bounds, then against the weight file's tensor shapes, before any
    module is built (a config.json with n_layers 1000000 would otherwise build for minutes)."""
    path = folder / CONFIG_NAME
    config = config_from_json(path.read_bytes(), kind, source=str(path))  # bytes: bad UTF-8 is its error
    shapes = read_header_shapes(folder / WEIGHTS_NAME)
    problems = header_mismatches(config, shapes)
    if problems:
        raise CheckpointShapeError(f"{path} does not match {folder / WEIGHTS_NAME}: " + "; ".join(problems[:6]))
    return config, shapes


def _check_header(module: nn.Module, weights: Path, config: AnyConfig, found: dict[str, tuple[int, ...]]) -> int:
    """Compare tensor names/shapes in the file header with the module; returns the learned parameter count."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    params = {k for k, _ in module.named_parameters()}
    problems = [f"{k}: file {found[k]} vs config {s}" for k, s in expected.items() if k in found and found[k] != s]
    problems += [f"{k}: missing from the file" for k in sorted(params - set(found))]
    problems += [f"{k}: not part of this model" for k in sorted(set(found) - set(expected))]
    if problems:
        name = type(module).__name__
        shown = "; ".join(problems[:6]) + (f"; ... ({len(problems)} problems)" if len(problems) > 6 else "")
        raise CheckpointShapeError(f"{weights} does not match its config.json ({name} {config}): {shown}")
    return sum(int(torch.Size(found[k]).numel()) for k in params)


def _info(
    kind: Kind, source: str, repo_id: str | None, revision: str | None, folder: Path, params: int, config: AnyConfig
) -> CheckpointInfo:
    sha = {n: sha256_file(folder / n) for n in CHECKPOINT_FILES}
    size = sum((folder / n).stat().st_size for n in CHECKPOINT_FILES)
    return CheckpointInfo(
        kind, source, repo_id, revision, str(folder), sha, size, params, _identify_official(sha), asdict(config)
    )


def load_checkpoint(
    source: str | os.PathLike[str],
    *,
    kind: Kind | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    device: str | torch.device = "cpu",
) -> LoadedCheckpoint:
    """Load a tokenizer or model from a folder, or from a hub repo id at a revision (pinned one by default).

    With HF_HUB_OFFLINE=1 (or local_files_only) hub loads come from the cache only; a miss raises
    WeightsNotAvailableError naming the repo, the revision and the command that pre-downloads it.
    """
    folder, repo_id, resolved = _resolve(source, revision, cache_dir, local_files_only)
    if repo_id is not None and resolved is not None:
        _verify_official(repo_id, resolved, folder)
    config, shapes = _read_config(folder, kind)
    # Built on the CPU: the config was bounded and checked against the file above, and random init of even
    # Kronos-base costs less than torch's first use of the meta device (1.4 s).
    module = build_module(config)
    weights = folder / WEIGHTS_NAME
    params = _check_header(module, weights, config, shapes)
    state = load_file(str(weights), device="cpu")
    own = module.state_dict()
    for k, v in state.items():
        if v.dtype != own[k].dtype:
            if not (v.is_floating_point() and own[k].is_floating_point()):
                raise CheckpointShapeError(f"{weights}: {k} has dtype {v.dtype}, expected {own[k].dtype}")
            state[k] = v.to(own[k].dtype)
    module.load_state_dict(state, strict=False)
    module.eval().requires_grad_(False).to(device)
    info = _info(config.kind, str(source), repo_id, resolved, folder, params, config)  # type: ignore[arg-type]
    return LoadedCheckpoint(module, info)


def load_tokenizer(source: str | os.PathLike[str], **kwargs: Any) -> LoadedCheckpoint:
    return load_checkpoint(source, kind="tokenizer", **kwargs)


def load_model(source: str | os.PathLike[str], **kwargs: Any) -> LoadedCheckpoint:
    return load_checkpoint(source, kind="model", **kwargs)


def predownload(
    repo_id: str,
    revision: str | None = None,
    *,
    kind: Kind | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
) -> CheckpointInfo:
    """Snapshot config.json + model.safetensors of a repo at a revision into the hub cache, then verify them:
    published sha256 for pinned official revisions, tensor names/shapes against config.json for every repo.
    Returns repo, resolved revision, file sha256s, parameter count and size. Offline without a cached copy it
    raises WeightsNotAvailableError naming the repo, the revision and the command to run.
    """
    rev = revision or default_revision(repo_id)
    reason = None if _offline(local_files_only) else hub_unreachable()
    if reason:
        raise _not_available(repo_id, rev, cache_dir, ConnectionError(reason))
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=rev,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                allow_patterns=list(CHECKPOINT_FILES),
            )
        )
    except _HUB_MISSING as exc:
        raise _not_available(repo_id, rev, cache_dir, exc) from exc
    missing = [n for n in CHECKPOINT_FILES if not (folder / n).is_file()]
    if missing:
        raise _not_available(repo_id, rev, cache_dir, FileNotFoundError(f"{missing} missing in {folder}"))
    _verify_official(repo_id, folder.name, folder)
    config, shapes = _read_config(folder, kind)
    params = _check_header(build_module(config), folder / WEIGHTS_NAME, config, shapes)
    return _info(config.kind, repo_id, repo_id, folder.name, folder, params, config)  # type: ignore[arg-type]


# -- writing -------------------------------------------------------------------------------------------------
def save_checkpoint(module: KronosTokenizer | Kronos, folder: str | os.PathLike[str]) -> Path:
    """Write config.json + model.safetensors (complete state_dict, buffers included, no metadata): the layout
    of the published checkpoints, loadable back with ``load_checkpoint`` and by the hub."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    config: KronosConfig | TokenizerConfig = module.config
    (out / CONFIG_NAME).write_text(config.to_json())
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME))
    return out


def install_into_cache(
    folder: str | os.PathLike[str],
    repo_id: str,
    revision: str,
    cache_dir: str | os.PathLike[str] | None = None,
    ref: str | None = "main",
) -> Path:
    """Place a checkpoint folder into a hub cache as ``repo_id`` at commit ``revision`` (40 hex digits), the
    layout huggingface_hub itself writes, so offline loads (HF_HUB_OFFLINE=1) find it. For tests and for
    machines that receive weights out of band. Returns the snapshot folder."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import REGEX_COMMIT_HASH, repo_folder_name

    if not REGEX_COMMIT_HASH.fullmatch(revision):
        raise ValueError(f"revision must be a 40-hex commit hash, got {revision!r}")
    root = Path(cache_dir or constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")
    snap = root / "snapshots" / revision
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINT_FILES:
        src = Path(folder) / name
        blob = root / "blobs" / sha256_file(src)
        if not blob.exists():
            shutil.copyfile(src, blob)
        link = snap / name
        if link.exists() or link.is_symlink():
            link.unlink()
        try:
            link.symlink_to(os.path.relpath(blob, snap))
        except OSError:  # no symlinks (e.g. some Windows setups): the hub falls back to copies too
            shutil.copyfile(blob, link)
    if ref:
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / ref).write_text(revision)
    return snap
