"""Block-local attention with global tokens, for long latent sequences (seeds/000: windowed attention
plus a few global tokens/layers keeps minutes of context affordable).

Tokens after the first `n_global` are cut into blocks of `block` frames; a token in block j
attends to the global tokens and to every token of blocks j-1, j and j+1 (so it always sees at
least `block` frames to each side). Global tokens attend to everything. Cost per token is
`3 * block + n_global` keys instead of T, so it is linear in length. Written by hand because no
maintained CPU library offers this pattern through `scaled_dot_product_attention` (natten and
flash-attn's sliding window are CUDA-only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _neighbours(x: Tensor) -> Tensor:
    """`[B, H, nb, blk, D]` -> `[B, H, nb, 3 * blk, D]`: previous, own and next block."""
    p = F.pad(x, (0, 0, 0, 0, 1, 1))  # zero blocks before the first and after the last
    return torch.cat((p[:, :, :-2], p[:, :, 1:-1], p[:, :, 2:]), dim=3)


def local_mask(n: int, block: int, n_global: int, device: torch.device) -> Tensor:
    """Which keys each block may see: `[nb, n_global + 3 * block]` (False = padding / off the ends)."""
    nb = -(-n // block)
    j = torch.arange(nb, device=device)[:, None]  # [nb, 1]
    offs = torch.arange(3 * block, device=device)[None, :]  # [1, 3 blk]
    pos = (j - 1) * block + offs  # absolute frame index of each neighbour key
    valid = (pos >= 0) & (pos < n)
    return torch.cat((torch.ones(nb, n_global, dtype=torch.bool, device=device), valid), dim=1)


def block_local_attention(q: Tensor, k: Tensor, v: Tensor, block: int, n_global: int) -> Tensor:
    """`[B, H, T, D]` attention where the first `n_global` tokens are global (see module doc)."""
    b, h, t, d = q.shape
    g = n_global
    n = t - g
    nb = -(-n // block)
    pad = nb * block - n

    def blocks(x: Tensor) -> Tensor:
        return F.pad(x[:, :, g:], (0, 0, 0, pad)).view(b, h, nb, block, d)  # [B, H, nb, blk, D]

    keys, vals = _neighbours(blocks(k)), _neighbours(blocks(v))  # [B, H, nb, 3 blk, D]
    if g:
        keys = torch.cat((k[:, :, None, :g].expand(b, h, nb, g, d), keys), dim=3)
        vals = torch.cat((v[:, :, None, :g].expand(b, h, nb, g, d), vals), dim=3)
    mask = local_mask(n, block, g, q.device)[:, None, :]  # [nb, 1, g + 3 blk]
    out = F.scaled_dot_product_attention(blocks(q), keys, vals, attn_mask=mask)  # [B, H, nb, blk, D]
    out = out.reshape(b, h, nb * block, d)[:, :, :n]
    if g:
        out = torch.cat((F.scaled_dot_product_attention(q[:, :, :g], k, v), out), dim=2)
    return out


def dense_equivalent_mask(t: int, block: int, n_global: int) -> Tensor:
    """The `[T, T]` boolean mask that dense attention would need to compute the same thing (tests)."""
    g = n_global
    idx = torch.arange(t - g)
    bj = idx // block
    near = (bj[:, None] - bj[None, :]).abs() <= 1
    mask = torch.ones(t, t, dtype=torch.bool)
    mask[g:, g:] = near
    return mask
