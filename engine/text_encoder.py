"""Longplay's own small text encoder: a byte-level tokenizer and a few transformer layers.

T5 weights cannot be fetched here, so models we train ourselves carry a text encoder trained from
scratch jointly with the DiT (as the paper trained its CLAP text encoder from scratch). Bytes as
tokens need no downloaded vocabulary and handle any language or spelling. Unlike T5, its weights
live in the model checkpoint (`conditioner.conditioners.prompt.*`), so a model folder is complete.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .transformer import LayerNorm, TransformerBlock

PAD, BOS, EOS = 0, 1, 2
VOCAB = 256 + 3  # UTF-8 bytes shifted by 3, after the three specials


def tokenize(texts: Sequence[str], max_length: int) -> tuple[Tensor, Tensor]:
    """-> ids `[B, max_length]` (BOS bytes EOS, padded/truncated), mask `[B, max_length]` bool."""
    ids = torch.full((len(texts), max_length), PAD, dtype=torch.long)
    for i, text in enumerate(texts):
        seq = [BOS] + [b + 3 for b in str(text).encode("utf-8")][: max_length - 2] + [EOS]
        ids[i, : len(seq)] = torch.tensor(seq)
    return ids, ids != PAD


class LongplayTextConditioner(nn.Module):
    """Prompt -> `[B, max_length, output_dim]` tokens (pads zeroed) and mask `[B, max_length]`."""

    def __init__(self, output_dim: int, max_length: int = 64, width: int = 256, depth: int = 2, num_heads: int = 4):
        super().__init__()
        self.max_length = max_length
        self.token_embed = nn.Embedding(VOCAB, width)
        self.pos_embed = nn.Parameter(torch.randn(max_length, width) * 0.02)
        self.layers = nn.ModuleList(
            TransformerBlock(width, width // num_heads, None, "none", 4.0) for _ in range(depth)
        )
        self.final_norm = LayerNorm(width)
        self.proj_out = nn.Linear(width, output_dim)

    def forward(self, texts: Sequence[str], device: torch.device | str) -> tuple[Tensor, Tensor]:
        ids, mask = tokenize(texts, self.max_length)
        ids, mask = ids.to(device), mask.to(device)
        h = self.token_embed(ids) + self.pos_embed[None]  # [B, L, W]
        attn_mask = mask[:, None, None, :]  # [B, 1, 1, L]: pads are never attended to
        for layer in self.layers:
            h = layer(h, None, None, attn_mask)
        h = self.proj_out(self.final_norm(h))  # [B, L, D]
        return h * mask[..., None].to(h.dtype), mask
