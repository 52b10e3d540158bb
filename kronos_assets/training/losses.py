"""Training forwards and losses of the two networks (spec §4.5 and §5.6), on top of the inference modules.

Tokenizer: encode -> L2-normalise -> binary spherical quantisation with a straight-through estimator; the 20-dim
code is decoded twice by the shared decoder: from its first s1_bits dims (coarse, ``post_quant_embed_pre``) and from
all dims (full, ``post_quant_embed``). Loss = (MSE(coarse, x) + MSE(full, x) + bsq) / 2 with
bsq = beta * mean ||zq - z||^2 + zeta * (gamma0 * per-sample entropy - gamma * codebook entropy). The entropies use
soft code assignments: the softmax over the codes of one group of ``group_size`` bits factorises into one sigmoid per
bit (logit 4 * inv_temperature * q_scale * z_j), so the per-sample entropy is a sum of binary entropies and the
codebook entropy is the entropy of the batch-averaged joint distribution of each group's 2^group_size codes.

Predictor: inputs tokens[:, :-1] with their stamps, targets tokens[:, 1:]; loss = (CE_s1 + CE_s2) / 2 with the s2
head conditioned on the true next s1 (teacher forcing). The dependency layer is trained the way inference runs it
(spec §5.5): the raw ``emb_s1`` row of the next s1 queries the normed context of positions 0..t (causal), without
RoPE rotation, and the residual is the context row t. Both run the inference modules' own forwards
(``KronosTokenizer.latent``/``decode_hidden``, ``Kronos.context``/``s2_logits``), so row t of the training logits
equals what ``Kronos.s2_logits`` computes at inference for a window ending at t (the original trains with RoPE on the
query
positions instead, which inference never sees).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from kronos_assets.kronos.model import Kronos
from kronos_assets.kronos.tokenizer import KronosTokenizer

DEFAULT_INV_TEMPERATURE = 100.0


@dataclass
class TokenizerLosses:
    loss: Tensor
    recon_coarse: Tensor
    recon_full: Tensor
    commit: Tensor
    sample_entropy: Tensor
    codebook_entropy: Tensor
    bsq: Tensor

    def parts(self) -> dict[str, float]:
        return {
            k: float(getattr(self, k).detach())
            for k in ("recon_coarse", "recon_full", "commit", "sample_entropy", "codebook_entropy", "bsq")
        }


@dataclass
class PredictorLosses:
    loss: Tensor
    ce_s1: Tensor
    ce_s2: Tensor
    acc_s1: Tensor

    def parts(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("ce_s1", "ce_s2", "acc_s1")}


def _group_bits(group_size: int, device: torch.device) -> Tensor:
    codes = torch.arange(2**group_size, device=device)
    return ((codes.unsqueeze(-1) >> torch.arange(group_size, device=device)) & 1).float()  # [2^g, g]


def soft_entropies(z: Tensor, q_scale: float, group_size: int, inv_temperature: float) -> tuple[Tensor, Tensor]:
    """(mean per-sample entropy, codebook entropy) in nats, summed over the groups of a unit-norm code z [N, D]."""
    n, d = z.shape
    if d % group_size:
        raise ValueError(f"codebook dim {d} is not a multiple of group_size {group_size}")
    a = (4.0 * inv_temperature * q_scale) * z.float()  # per-bit logit of "+1"
    logp_pos, logp_neg = F.logsigmoid(a), F.logsigmoid(-a)
    p_pos = logp_pos.exp()
    per_bit = -(p_pos * logp_pos + (1 - p_pos) * logp_neg)
    sample_entropy = per_bit.sum(-1).mean()
    bits = _group_bits(group_size, z.device)  # [C, g]
    g = d // group_size
    lp = logp_pos.view(n, g, group_size)
    ln = logp_neg.view(n, g, group_size)
    log_code = lp @ bits.T + ln @ (1 - bits).T  # [N, G, C]: log prob of each code of each group
    avg = log_code.exp().mean(0)  # [G, C]
    codebook_entropy = -(avg * torch.log(avg.clamp_min(1e-12))).sum()
    return sample_entropy, codebook_entropy


def tokenizer_losses(
    tok: KronosTokenizer, x: Tensor, inv_temperature: float = DEFAULT_INV_TEMPERATURE
) -> TokenizerLosses:
    """Training forward of the tokenizer on normalised bars x [B, T, 6]."""
    c = tok.config
    z = tok.latent(x)
    zq = torch.where(z > 0, 1.0, -1.0).to(z.dtype) * tok.q_scale  # exact 0 -> -1, as encode()
    zhat = z + (zq - z).detach()  # straight-through
    coarse = tok.decode_hidden(tok.post_quant_embed_pre(zhat[..., : c.s1_bits]))
    full = tok.decode_hidden(tok.post_quant_embed(zhat))
    recon_coarse = F.mse_loss(coarse, x)
    recon_full = F.mse_loss(full, x)
    commit = c.beta * ((zq.detach() - z) ** 2).sum(-1).mean()
    flat = z.reshape(-1, c.codebook_dim)
    sample_entropy, codebook_entropy = soft_entropies(flat, tok.q_scale, c.group_size, inv_temperature)
    bsq = commit + c.zeta * (c.gamma0 * sample_entropy - c.gamma * codebook_entropy)
    loss = (recon_coarse + recon_full + bsq) / 2
    return TokenizerLosses(loss, recon_coarse, recon_full, commit, sample_entropy, codebook_entropy, bsq)


def predictor_losses(model: Kronos, s1: Tensor, s2: Tensor, stamp: Tensor) -> PredictorLosses:
    """Next-token losses on token sequences s1, s2 [B, T] with stamps [B, T, 5]."""
    ctx = model.context(s1[:, :-1], s2[:, :-1], stamp[:, :-1])
    t1, t2 = s1[:, 1:], s2[:, 1:]
    logits1 = model.s1_logits(ctx)
    ce1 = F.cross_entropy(logits1.flatten(0, 1), t1.flatten())
    logits2 = model.s2_logits(ctx, t1)  # teacher forcing: row t conditioned on the true next s1
    ce2 = F.cross_entropy(logits2.flatten(0, 1), t2.flatten())
    acc1 = (logits1.detach().argmax(-1) == t1).float().mean()
    return PredictorLosses((ce1 + ce2) / 2, ce1, ce2, acc1)
