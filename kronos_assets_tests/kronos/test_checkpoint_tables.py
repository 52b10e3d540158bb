"""State-dict names, shapes and dtypes of the five released configs against spec Appendix A, and config.json
bytes against the published sha256 (spec §1-§2). Big configs are only instantiated on the meta device."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from kronos_assets.kronos.config import (
    KRONOS_BASE,
    KRONOS_MINI,
    KRONOS_SMALL,
    OFFICIAL,
    TOKENIZER_2K,
    TOKENIZER_BASE,
    config_from_json,
)
from kronos_assets.kronos.hub import build_module, save_checkpoint

F32, I64 = torch.float32, torch.int64


def _block(prefix: str, d: int, ff: int, head_dim: int) -> dict[str, tuple[list[int], torch.dtype]]:
    out = {f"{prefix}.norm1.weight": ([d], F32), f"{prefix}.norm2.weight": ([d], F32)}
    for p in ("q", "k", "v", "out"):
        out[f"{prefix}.self_attn.{p}_proj.weight"] = ([d, d], F32)
        out[f"{prefix}.self_attn.{p}_proj.bias"] = ([d], F32)
    out[f"{prefix}.self_attn.rotary.inv_freq"] = ([head_dim // 2], F32)
    out[f"{prefix}.ffn.w1.weight"] = ([ff, d], F32)
    out[f"{prefix}.ffn.w3.weight"] = ([ff, d], F32)
    out[f"{prefix}.ffn.w2.weight"] = ([d, ff], F32)
    return out


def tokenizer_table(group_size: int) -> dict[str, tuple[list[int], torch.dtype]]:
    t = {
        "embed.weight": ([256, 6], F32),
        "embed.bias": ([256], F32),
        "head.weight": ([6, 256], F32),
        "head.bias": ([6], F32),
        "quant_embed.weight": ([20, 256], F32),
        "quant_embed.bias": ([20], F32),
        "post_quant_embed_pre.weight": ([256, 10], F32),
        "post_quant_embed_pre.bias": ([256], F32),
        "post_quant_embed.weight": ([256, 20], F32),
        "post_quant_embed.bias": ([256], F32),
        "tokenizer.bsq.basis": ([20], I64),
        "tokenizer.bsq.group_basis": ([group_size], I64),
    }
    for i in range(3):
        t |= _block(f"encoder.{i}", 256, 512, 64) | _block(f"decoder.{i}", 256, 512, 64)
    return t


def model_table(d: int, layers: int, heads: int, ff: int) -> dict[str, tuple[list[int], torch.dtype]]:
    t = {
        "embedding.emb_s1.weight": ([1024, d], F32),
        "embedding.emb_s2.weight": ([1024, d], F32),
        "embedding.fusion_proj.weight": ([d, 2 * d], F32),
        "embedding.fusion_proj.bias": ([d], F32),
        "time_emb.minute_embed.weight": ([60, d], F32),
        "time_emb.hour_embed.weight": ([24, d], F32),
        "time_emb.weekday_embed.weight": ([7, d], F32),
        "time_emb.day_embed.weight": ([32, d], F32),
        "time_emb.month_embed.weight": ([13, d], F32),
        "norm.weight": ([d], F32),
        "dep_layer.cross_attn.rotary.inv_freq": ([d // 8], F32),
        "dep_layer.norm.weight": ([d], F32),
        "head.proj_s1.weight": ([1024, d], F32),
        "head.proj_s1.bias": ([1024], F32),
        "head.proj_s2.weight": ([1024, d], F32),
        "head.proj_s2.bias": ([1024], F32),
    }
    for p in ("q", "k", "v", "out"):
        t[f"dep_layer.cross_attn.{p}_proj.weight"] = ([d, d], F32)
        t[f"dep_layer.cross_attn.{p}_proj.bias"] = ([d], F32)
    for i in range(layers):
        t |= _block(f"transformer.{i}", d, ff, d // heads)
    return t


CASES = {
    # name: (config, expected table, entries, learned params, tensor bytes)  -- spec §2 and Appendix A
    "Tokenizer-base": (TOKENIZER_BASE, tokenizer_table(4), 96, 3_958_042, 15_833_128),
    "Tokenizer-2k": (TOKENIZER_2K, tokenizer_table(5), 96, 3_958_042, 15_833_136),
    "Kronos-mini": (KRONOS_MINI, model_table(256, 4, 4, 512), 80, 4_108_032, 16_432_768),
    "Kronos-small": (KRONOS_SMALL, model_table(512, 8, 8, 1024), 136, 24_741_376, 98_966_784),
    "Kronos-base": (KRONOS_BASE, model_table(832, 12, 16, 2048), 192, 102_310_592, 409_244_032),
}


@pytest.mark.parametrize("name", CASES)
def test_state_dict_matches_appendix_a(name: str) -> None:
    config, table, entries, params, nbytes = CASES[name]
    with torch.device("meta"):
        module = build_module(config)
    sd = module.state_dict()
    got = {k: (list(v.shape), v.dtype) for k, v in sd.items()}
    assert got == table
    assert len(sd) == entries
    assert sum(p.numel() for p in module.parameters()) == params
    assert sum(v.numel() * v.element_size() for v in sd.values()) == nbytes


def test_spot_values_from_the_spec() -> None:
    with torch.device("meta"):
        base = build_module(KRONOS_BASE)
    sd = base.state_dict()
    assert sd["transformer.0.self_attn.rotary.inv_freq"].shape == (26,)  # head_dim 52
    assert sd["dep_layer.cross_attn.rotary.inv_freq"].shape == (104,)  # 4 heads of 208
    tok = build_module(TOKENIZER_2K)
    assert tok.tokenizer.bsq.basis.tolist() == [2**i for i in range(19, -1, -1)]
    assert tok.tokenizer.bsq.group_basis.tolist() == [16, 8, 4, 2, 1]
    assert len(tok.encoder) == len(tok.decoder) == 3  # n_*_layers - 1
    inv = build_module(KRONOS_MINI).transformer[0].self_attn.rotary.inv_freq
    assert torch.allclose(inv, 10000 ** (-2 * torch.arange(32, dtype=torch.float64) / 64).float())


@pytest.mark.parametrize("repo", sorted(OFFICIAL))
def test_config_json_bytes_match_published_sha256(repo: str) -> None:
    ck = OFFICIAL[repo]
    text = ck.config.to_json().encode()
    assert len(text) == ck.files["config.json"].size
    assert hashlib.sha256(text).hexdigest() == ck.files["config.json"].sha256
    assert config_from_json(text.decode()) == ck.config


@pytest.mark.parametrize(
    "repo", ["NeoQuasar/Kronos-mini", "NeoQuasar/Kronos-Tokenizer-base", "NeoQuasar/Kronos-Tokenizer-2k"]
)
def test_saved_random_checkpoint_has_the_published_file_size(repo: str, tmp_path: Path) -> None:
    # Same size as the published file <=> same header (names, shapes, dtypes) and the complete state_dict.
    ck = OFFICIAL[repo]
    folder = save_checkpoint(build_module(ck.config), tmp_path / "ck")  # type: ignore[arg-type]
    assert (folder / "model.safetensors").stat().st_size == ck.files["model.safetensors"].size
    assert (folder / "config.json").read_bytes() == ck.config.to_json().encode()
