"""Building blocks shared by the tokenizer and the predictor (spec §3), with their window pass.

Module and parameter names mirror the official state_dict (Appendix A). Dropout is left out entirely: dropout is
the identity in eval mode, and training (training/losses.py) runs these same forwards.

The forwards here are window passes: causal attention over whole windows [B, T, d] with positions from 0,
exactly the original's computation, run by the reference mode and the training losses. The fast mode runs the
same blocks on packed weights instead (cached.py: its prefills and its cached passes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in float32 and cast back before the weight, as the original does.
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU without biases: w2(silu(w1 x) * w3 x)."""

    def __init__(self, d_model: int, ff_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, ff_dim, bias=False)
        self.w3 = nn.Linear(d_model, ff_dim, bias=False)
        self.w2 = nn.Linear(ff_dim, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def rope_inv_freq(head_dim: int) -> Tensor:
    return 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))


class RotaryEmbedding(nn.Module):
    """NeoX (half-split) RoPE. Positions restart at 0 at the first token of the current window."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.register_buffer("inv_freq", rope_inv_freq(head_dim))  # persistent: it is in the checkpoints

    def cos_sin(self, start: int, length: int) -> tuple[Tensor, Tensor]:
        # An elementwise outer product of float32 positions, so any slice equals the full-window table bitwise.
        t = torch.arange(start, start + length, device=self.inv_freq.device, dtype=self.inv_freq.dtype)
        freqs = torch.outer(t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def apply(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin


# -- attention and the block -----------------------------------------------------------------------------------
class AttentionProjections(nn.Module):
    """The parameters every Kronos attention shares (state-dict names q_proj/k_proj/v_proj/out_proj/rotary, all
    projections with biases) and the head split/merge around them."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rotary = RotaryEmbedding(self.head_dim)

    def split(self, x: Tensor) -> Tensor:
        """[B, T, heads*hd] -> [B, heads, T, hd]."""
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def merge(self, x: Tensor) -> Tensor:
        """[B, heads, T, hd] -> [B, T, heads*hd]."""
        b, _, t, _ = x.shape
        return x.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)


class SelfAttention(AttentionProjections):
    """Causal multi-head self-attention with RoPE."""

    def forward(self, x: Tensor) -> Tensor:
        """Window pass over x [B, T, d], positions from 0."""
        q, k, v = self.split(self.q_proj(x)), self.split(self.k_proj(x)), self.split(self.v_proj(x))
        cos, sin = self.rotary.cos_sin(0, x.shape[1])
        q, k = RotaryEmbedding.apply(q, cos, sin), RotaryEmbedding.apply(k, cos, sin)
        # Contiguous heads: the CPU flash kernel runs 1.3-1.5x faster on them, with bitwise the same result.
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        return self.out_proj(self.merge(F.scaled_dot_product_attention(q, k, v, is_causal=True)))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Attn(RMSNorm(x)), then x + FFN(RMSNorm(x))."""

    def __init__(self, d_model: int, n_heads: int, ff_dim: int) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.self_attn = SelfAttention(d_model, n_heads)
        self.norm2 = RMSNorm(d_model)
        self.ffn = FeedForward(d_model, ff_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.self_attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))
