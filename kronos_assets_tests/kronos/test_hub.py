"""Save/load round trips through a folder and through a huggingface_hub cache used offline."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import huggingface_hub
import pytest
import torch

from kronos_assets.kronos import config as kconfig
from kronos_assets.kronos import hub
from kronos_assets.kronos.config import OFFICIAL, OfficialCheckpoint, OfficialFile
from kronos_assets.kronos.errors import (
    CheckpointError,
    CheckpointShapeError,
    ChecksumMismatchError,
    WeightsNotAvailableError,
)
from kronos_assets.kronos.hub import install_into_cache, load_checkpoint, predownload, sha256_file

from .conftest import TINY_MODEL, TINY_TOKENIZER

COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = ("config.json", "model.safetensors")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_folder_round_trip(checkpoints: dict[str, Path], networks: tuple) -> None:
    model, tokenizer = networks
    m = load_checkpoint(checkpoints["model"])
    t = load_checkpoint(checkpoints["tokenizer"], kind="tokenizer")
    assert _same_weights(m.module, model) and _same_weights(t.module, tokenizer)
    assert not m.module.training and not any(p.requires_grad for p in m.module.parameters())
    info = m.info
    assert info.kind == "model" and info.repo_id is None and info.official is None
    assert info.sha256["model.safetensors"] == sha256_file(checkpoints["model"] / "model.safetensors")
    assert info.parameter_count == sum(p.numel() for p in model.parameters())
    assert info.size_bytes == sum((checkpoints["model"] / n).stat().st_size for n in FILES)
    assert info.config == json.loads((checkpoints["model"] / "config.json").read_text())
    x = torch.randn(1, 7, 6)
    assert torch.equal(t.module.encode(x)[0], tokenizer.encode(x)[0])


def test_offline_cache_by_commit_and_by_ref(checkpoints: dict[str, Path], tmp_path: Path, offline: None) -> None:
    cache = tmp_path / "hub"
    install_into_cache(checkpoints["model"], "acme/tiny-kronos", COMMIT, cache)
    for rev in (COMMIT, "main"):
        loaded = load_checkpoint("acme/tiny-kronos", revision=rev, cache_dir=cache)
        assert loaded.info.repo_id == "acme/tiny-kronos" and loaded.info.revision == COMMIT
        assert Path(loaded.info.path).parent.name == "snapshots"
    info = predownload("acme/tiny-kronos", COMMIT, cache_dir=cache)
    assert (info.repo_id, info.revision, info.kind) == ("acme/tiny-kronos", COMMIT, "model")
    assert info.sha256["model.safetensors"] == sha256_file(checkpoints["model"] / "model.safetensors")
    assert info.parameter_count == loaded.info.parameter_count > 0
    assert info.size_bytes > info.parameter_count * 4


def test_offline_without_cache_names_repo_revision_and_command(tmp_path: Path, offline: None) -> None:
    rev = OFFICIAL["NeoQuasar/Kronos-mini"].revision
    with pytest.raises(WeightsNotAvailableError) as err:
        predownload("NeoQuasar/Kronos-mini", cache_dir=tmp_path)
    msg = str(err.value)
    assert "NeoQuasar/Kronos-mini" in msg and rev in msg
    assert f"kronos-forecast download NeoQuasar/Kronos-mini --revision {rev}" in msg
    assert f"hf download NeoQuasar/Kronos-mini config.json model.safetensors --revision {rev}" in msg
    with pytest.raises(WeightsNotAvailableError, match="Kronos-mini"):
        load_checkpoint("NeoQuasar/Kronos-mini", cache_dir=tmp_path)


def test_official_revision_is_checked_against_published_sha256(
    checkpoints: dict[str, Path], tmp_path: Path, offline: None
) -> None:
    # Our tiny file placed under the official repo/revision must be rejected: its hash is not the published one.
    repo, rev = "NeoQuasar/Kronos-mini", OFFICIAL["NeoQuasar/Kronos-mini"].revision
    install_into_cache(checkpoints["model"], repo, rev, tmp_path)
    with pytest.raises(ChecksumMismatchError, match="model.safetensors|config.json"):
        load_checkpoint(repo, cache_dir=tmp_path)
    with pytest.raises(ChecksumMismatchError):
        predownload(repo, cache_dir=tmp_path)


def test_matching_sha256_marks_official(
    checkpoints: dict[str, Path], tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = checkpoints["model"]
    files = {n: OfficialFile((folder / n).stat().st_size, sha256_file(folder / n)) for n in FILES}
    monkeypatch.setitem(kconfig.OFFICIAL, "acme/pinned", OfficialCheckpoint("acme/pinned", COMMIT, TINY_MODEL, files))
    install_into_cache(folder, "acme/pinned", COMMIT, tmp_path)
    loaded = load_checkpoint("acme/pinned", cache_dir=tmp_path)  # revision defaults to the pinned one
    assert loaded.info.revision == COMMIT and loaded.info.official == f"acme/pinned@{COMMIT}"


def test_shape_mismatch_and_wrong_kind(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(checkpoints["model"], bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["ff_dim"] = 96
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointShapeError, match=r"ffn\.w1\.weight"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_checkpoint(checkpoints["tokenizer"], kind="model")
    assert issubclass(CheckpointShapeError, ValueError)


def test_missing_files_and_no_pickle(tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(TINY_TOKENIZER.to_json())
    (folder / "pytorch_model.bin").write_bytes(b"not loaded, ever")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(folder)
    with pytest.raises(WeightsNotAvailableError, match="neither"):
        load_checkpoint(tmp_path / "nope")


def _with_config(src: Path, dst: Path, **changes: object) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**cfg, **changes}))
    return dst


@pytest.mark.parametrize(
    "kind,changes,error,match",
    [
        ("model", {"n_layers": 1_000_000}, CheckpointError, r"'n_layers' = 1000000 is outside the sane range 1\.\.128"),
        ("model", {"n_layers": 3}, CheckpointShapeError, "n_layers = 3 implies 3 transformer blocks, the file holds 2"),
        ("model", {"d_model": 32.5}, CheckpointError, "'d_model' must be a whole number, got 32.5"),
        ("model", {"ff_dim": -64}, CheckpointError, "'ff_dim' = -64 is outside"),
        ("model", {"n_heads": True}, CheckpointError, "'n_heads' must be a whole number"),
        ("model", {"s1_bits": 8}, CheckpointShapeError, r"s1_bits implies size 256 for embedding\.emb_s1\.weight"),
        ("model", {"resid_dropout_p": "0.1"}, CheckpointError, "'resid_dropout_p' must be a finite number"),
        ("tokenizer", {"n_dec_layers": 5}, CheckpointShapeError, "n_dec_layers = 5 implies 4 decoder blocks"),
        ("tokenizer", {"group_size": 2}, CheckpointShapeError, r"group_size implies size 2 for tokenizer\.bsq"),
        ("tokenizer", {"d_in": 7}, CheckpointError, "'d_in' = 7 is outside the sane range 6..6"),
    ],
)
def test_configs_are_checked_against_bounds_and_the_weight_header_before_building(
    checkpoints: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    changes: dict[str, object],
    error: type[Exception],
    match: str,
) -> None:
    folder = _with_config(checkpoints[kind], tmp_path / "ck", **changes)
    built: list[object] = []
    monkeypatch.setattr(hub, "build_module", lambda config: built.append(config))
    t = time.perf_counter()
    for load in (lambda: load_checkpoint(folder), lambda: predownload_folder(folder)):
        with pytest.raises(error, match=match) as exc:
            load()
        assert str(folder / "config.json") in str(exc.value) and type(exc.value).__name__ != "TypeError"
    assert built == [] and time.perf_counter() - t < 2  # nothing was built


def predownload_folder(folder: Path) -> object:
    """The config check of ``predownload`` (hub cache snapshot) is the same as the folder load's."""
    return hub._read_config(folder, None)


def test_a_damaged_weight_header_is_a_checkpoint_error(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    shutil.copytree(checkpoints["model"], folder)
    weights = folder / "model.safetensors"
    for raw in (b"\x00" * 4, (10**12).to_bytes(8, "little") + b"{}", (12).to_bytes(8, "little") + b"not json at"):
        weights.write_bytes(raw)
        with pytest.raises(CheckpointError, match="not a readable safetensors file"):
            load_checkpoint(folder)
