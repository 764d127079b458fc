"""Transformer layers of the DiT: pre-LN blocks of self-attention (RoPE), cross-attention, SwiGLU.

Names and parameter shapes follow stable-audio-tools' `ContinuousTransformer` so released
weights load unchanged (`layers.N.self_attn.to_qkv.weight`, `layers.N.pre_norm.gamma`, ...).
Attention goes through `F.scaled_dot_product_attention` (which picks flash/memory-efficient
kernels where the device has them), or flash-attn when it is installed and the tensors are on
CUDA in half precision.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .local_attention import block_local_attention

try:  # Optional CUDA extra (`longplay[cuda]`); never required.
    from flash_attn import flash_attn_func  # type: ignore[import-not-found]
except Exception:  # noqa: BLE001 - any import failure just means "not available"
    flash_attn_func = None


class LayerNorm(nn.Module):
    """LayerNorm with learned gain and a zero bias kept as a saved buffer (as the reference)."""

    def __init__(self, dim: int, bias: bool = False):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        if bias:  # `norm_kwargs: {"bias": true}` configs learn it; same key either way
            self.beta = nn.Parameter(torch.zeros(dim))
        else:
            self.register_buffer("beta", torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], weight=self.gamma, bias=self.beta)


class RotaryEmbedding(nn.Module):
    """Rotary position frequencies (Su et al. 2021) for the first `dim` dims of each head."""

    inv_freq: Tensor  # a buffer: Module.__getattr__ alone would type it Tensor | Module

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, seq_len: int) -> Tensor:
        """-> freqs `[T, dim]` in float32 (the two halves repeat, for half-split rotation)."""
        t = torch.arange(seq_len, device=self.inv_freq.device, dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq.float())
        return torch.cat((freqs, freqs), dim=-1)


def _rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(t: Tensor, freqs: Tensor) -> Tensor:
    """Rotate the first `freqs.shape[-1]` dims of `t` `[B, H, T, D]`, in float32 like the reference."""
    rot = freqs.shape[-1]
    dtype = t.dtype
    t = t.float()
    freqs = freqs[-t.shape[-2] :]
    head, tail = t[..., :rot], t[..., rot:]
    head = head * freqs.cos() + _rotate_half(head) * freqs.sin()
    return torch.cat((head, tail), dim=-1).to(dtype)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """`[B, H, T, D]` attention; k/v may have fewer heads, shared by consecutive query heads."""
    if k.shape[1] != q.shape[1]:
        # repeat_interleave: query heads 2i and 2i+1 share kv head i, as the reference.
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    if flash_attn_func is not None and mask is None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        out: Tensor = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class Attention(nn.Module):
    """Multi-head attention; self-attention with fused qkv, or cross-attention from `dim_context`."""

    def __init__(self, dim: int, dim_heads: int, dim_context: int | None = None, qk_norm: str = "none"):
        super().__init__()
        self.num_heads = dim // dim_heads
        dim_kv = dim_context if dim_context is not None else dim
        self.kv_heads = dim_kv // dim_heads
        if dim_context is not None:
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_kv = nn.Linear(dim_kv, dim_kv * 2, bias=False)
        else:
            self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        self.qk_norm = qk_norm
        if qk_norm == "ln":
            self.q_norm = nn.LayerNorm(dim_heads, elementwise_affine=True, eps=1.0e-6)
            self.k_norm = nn.LayerNorm(dim_heads, elementwise_affine=True, eps=1.0e-6)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        freqs: Tensor | None = None,
        mask: Tensor | None = None,
        local: tuple[int, int] | None = None,
    ) -> Tensor:
        """`local=(block, n_global)` switches self-attention to block-local attention."""
        b, n, _ = x.shape
        if context is not None:
            q = self.to_q(x).view(b, n, self.num_heads, -1).transpose(1, 2)  # [B, H, T, D]
            k, v = self.to_kv(context).chunk(2, dim=-1)
            k = k.view(b, context.shape[1], self.kv_heads, -1).transpose(1, 2)  # [B, Hkv, S, D]
            v = v.view(b, context.shape[1], self.kv_heads, -1).transpose(1, 2)
        else:
            q, k, v = self.to_qkv(x).view(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # 3 x [B, H, T, D]
        if self.qk_norm == "ln":
            q, k = self.q_norm(q), self.k_norm(k)
        elif self.qk_norm == "l2":
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        if freqs is not None and context is None:
            q, k = apply_rotary(q, freqs), apply_rotary(k, freqs)
        if local is not None and context is None:
            out = block_local_attention(q, k, v, *local)
        else:
            out = attention(q, k, v, mask)
        out = out.transpose(1, 2).reshape(b, n, -1)  # [B, T, H*D]
        return cast(Tensor, self.to_out(out))


class GLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.silu(gate)


class FeedForward(nn.Module):
    """SwiGLU MLP with biases; keys `ff.0.proj.*` and `ff.2.*` as the reference."""

    def __init__(self, dim: int, mult: float = 4.0):
        super().__init__()
        inner = int(dim * mult)
        self.ff = nn.Sequential(GLU(dim, inner), nn.Identity(), nn.Linear(inner, dim), nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return cast(Tensor, self.ff(x))


class TransformerBlock(nn.Module):
    def __init__(
        self, dim: int, dim_heads: int, dim_context: int | None, qk_norm: str, ff_mult: float, norm_bias: bool = False
    ):
        super().__init__()
        self.pre_norm = LayerNorm(dim, norm_bias)
        self.self_attn = Attention(dim, dim_heads, qk_norm=qk_norm)
        self.cross_attend = dim_context is not None
        if dim_context is not None:
            self.cross_attend_norm = LayerNorm(dim, norm_bias)
            self.cross_attn = Attention(dim, dim_heads, dim_context=dim_context, qk_norm=qk_norm)
        self.ff_norm = LayerNorm(dim, norm_bias)
        self.ff = FeedForward(dim, ff_mult)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None,
        freqs: Tensor | None,
        mask: Tensor | None = None,
        local: tuple[int, int] | None = None,
    ) -> Tensor:
        x = x + self.self_attn(self.pre_norm(x), freqs=freqs, mask=mask, local=local)
        if context is not None and self.cross_attend:
            x = x + self.cross_attn(self.cross_attend_norm(x), context=context)
        return x + cast(Tensor, self.ff(self.ff_norm(x)))


class ContinuousTransformer(nn.Module):
    """project_in -> [prepend tokens] -> N blocks -> project_out (no final norm)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        dim_heads: int,
        dim_in: int,
        dim_out: int,
        cond_token_dim: int | None,
        qk_norm: str = "none",
        ff_mult: float = 4.0,
        attn_window: int = 0,
        global_layers: tuple[int, ...] = (),
        norm_bias: bool = False,
    ):
        super().__init__()
        self.project_in = nn.Linear(dim_in, dim, bias=False)
        self.project_out = nn.Linear(dim, dim_out, bias=False)
        self.rotary_pos_emb = RotaryEmbedding(max(dim_heads // 2, 32))
        self.layers = nn.ModuleList(
            TransformerBlock(dim, dim_heads, cond_token_dim, qk_norm, ff_mult, norm_bias) for _ in range(depth)
        )
        self.attn_window = attn_window
        self.global_layers = frozenset(global_layers)

    def forward(
        self, x: Tensor, prepend: Tensor | None = None, context: Tensor | None = None, add: Tensor | None = None
    ) -> Tensor:
        """x `[B, T, dim_in]`, prepend `[B, P, dim]`, context `[B, S, Dc]`, add `[B, T, dim]` (summed
        onto the projected tokens) -> `[B, P + T, dim_out]`."""
        x = self.project_in(x)  # [B, T, dim]
        if add is not None:
            x = x + add.to(x.dtype)
        n_pre = 0
        if prepend is not None:
            n_pre = prepend.shape[1]
            x = torch.cat((prepend.to(x.dtype), x), dim=1)  # [B, P + T, dim]
        freqs = self.rotary_pos_emb(x.shape[1])
        local = None
        if self.attn_window > 0 and x.shape[1] - n_pre > 3 * self.attn_window:
            local = (self.attn_window, n_pre)
        for i, layer in enumerate(self.layers):
            x = layer(x, context, freqs, local=None if i in self.global_layers else local)
        return cast(Tensor, self.project_out(x))
