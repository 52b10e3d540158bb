"""KronosTokenizer: a causal Transformer autoencoder with Binary Spherical Quantization (spec §4).

Each normalised bar (6 features) becomes two 10-bit ids: s1 from quantiser dims 0-9 and s2 from dims 10-19,
both LSB-first. The training losses (training/losses.py) run the same ``latent`` and ``decode_hidden``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cached import KVCache, run_blocks
from .config import TokenizerConfig
from .layers import TransformerBlock


class BinarySphericalQuantizer(nn.Module):
    """Parameter-free; holds only the two int64 basis buffers the checkpoints carry (used by training metrics)."""

    def __init__(self, codebook_dim: int, group_size: int) -> None:
        super().__init__()
        self.codebook_dim, self.group_size = codebook_dim, group_size
        self.register_buffer("basis", _msb_first_powers(codebook_dim))
        self.register_buffer("group_basis", _msb_first_powers(group_size))


def _msb_first_powers(n: int) -> torch.Tensor:
    return 2 ** torch.arange(n - 1, -1, -1, dtype=torch.int64)


class _QuantizerHolder(nn.Module):
    # Exists only so the buffers are named ``tokenizer.bsq.*`` as in the official state_dict.
    def __init__(self, codebook_dim: int, group_size: int) -> None:
        super().__init__()
        self.bsq = BinarySphericalQuantizer(codebook_dim, group_size)


class KronosTokenizer(nn.Module):
    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.embed = nn.Linear(c.d_in, c.d_model)
        self.encoder = nn.ModuleList(
            TransformerBlock(c.d_model, c.n_heads, c.ff_dim) for _ in range(c.n_encoder_blocks)
        )
        self.quant_embed = nn.Linear(c.d_model, c.codebook_dim)
        self.tokenizer = _QuantizerHolder(c.codebook_dim, c.group_size)
        self.post_quant_embed_pre = nn.Linear(c.s1_bits, c.d_model)
        self.post_quant_embed = nn.Linear(c.codebook_dim, c.d_model)
        self.decoder = nn.ModuleList(
            TransformerBlock(c.d_model, c.n_heads, c.ff_dim) for _ in range(c.n_decoder_blocks)
        )
        self.head = nn.Linear(c.d_model, c.d_in)
        self.q_scale = 1.0 / (c.codebook_dim**0.5)
        self.register_buffer("_bit_weights", self._lsb_first_powers(), persistent=False)

    def _lsb_first_powers(self) -> Tensor:
        return 2 ** torch.arange(self.config.s1_bits, dtype=torch.int64)

    # -- ids <-> codes -----------------------------------------------------------------------------------------
    def _bits_to_ids(self, bits: Tensor) -> Tensor:
        return (bits.to(torch.int64) * self._bit_weights).sum(-1)

    def _ids_to_code(self, ids: Tensor) -> Tensor:
        bits = (ids.unsqueeze(-1) >> torch.arange(self.config.s1_bits, device=ids.device)) & 1
        return (bits.to(torch.float32) * 2 - 1) * self.q_scale

    def ids_to_code(self, s1: Tensor, s2: Tensor) -> Tensor:
        """The 20-dim quantised vector (±1/√20) the decoder reads: s1 bits first, then s2 bits, LSB-first."""
        return torch.cat((self._ids_to_code(s1), self._ids_to_code(s2)), dim=-1)

    # -- encode ------------------------------------------------------------------------------------------------
    def latent(self, x: Tensor) -> Tensor:
        """x [B, T, 6] normalised bars -> the unit-norm code z [B, T, codebook_dim] before quantisation."""
        return F.normalize(self.quant_embed(run_blocks(self.encoder, self.embed(x))), dim=-1)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, T, 6] normalised bars -> (s1, s2) int64 [B, T]. Causal: row t depends on bars 0..t."""
        z = self.latent(x)  # the normalisation cannot change a sign; kept for exact zero handling
        bits = z > 0  # sign quantisation, exact 0 -> -1 -> bit 0
        k = self.config.s1_bits
        return self._bits_to_ids(bits[..., :k]), self._bits_to_ids(bits[..., k:])

    # -- decode ------------------------------------------------------------------------------------------------
    def decode_hidden(self, h: Tensor, caches: Sequence[KVCache] | None = None) -> Tensor:
        """Decoder blocks and head over embedded codes h [B, T, d] -> bars [B, T, 6]: a window pass, or with one
        ``KVCache`` per decoder block the fast mode's passes (cached.run_blocks)."""
        return self.head(run_blocks(self.decoder, h, caches))

    def decoder_caches(self, series: int, paths: int, capacity: int, prefill: bool = True) -> list[KVCache]:
        """One empty ``KVCache`` per decoder block for G series x ``paths`` rows of up to ``capacity`` tokens;
        with ``prefill`` the next ``decode_hidden`` over G windows becomes each series' shared prefix."""
        return [KVCache(series, paths, capacity, prefill) for _ in self.decoder]

    def decode(self, s1: Tensor, s2: Tensor) -> Tensor:
        """(s1, s2) [B, T] -> bars [B, T, 6] in normalised space, one causal pass (positions from 0)."""
        return self.decode_hidden(self.post_quant_embed(self.ids_to_code(s1, s2)))

    def decode_coarse(self, s1: Tensor) -> Tensor:
        """s1-only reconstruction of the training forward (§4.4): scale 1/√20, through post_quant_embed_pre."""
        return self.decode_hidden(self.post_quant_embed_pre(self._ids_to_code(s1)))
