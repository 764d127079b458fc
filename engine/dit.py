"""The diffusion transformer (Stable Audio 2, section 2.2 and Figure 2) and classifier-free guidance.

Conditioning: text and timing tokens by cross-attention; timing (global) + timestep embedding
summed and prepended as ONE token. Layout equals stable-audio-tools' `DiffusionTransformer`
(`to_timestep_embed`, `to_cond_embed`, `to_global_embed`, `preprocess_conv`, `transformer.*`,
`postprocess_conv`), wrapped as `model.model.*` by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor, nn

from .config import DiTConfig
from .transformer import ContinuousTransformer


class FourierFeatures(nn.Module):
    """Learned Fourier features of the timestep: weight `[out/2, in]`, output `[cos, sin]`."""

    def __init__(self, in_features: int, out_features: int, std: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features // 2, in_features) * std)

    def forward(self, x: Tensor) -> Tensor:  # x: [B, in]
        f = 2 * math.pi * x @ self.weight.T
        return torch.cat((f.cos(), f.sin()), dim=-1)


# Periods of the tempo grid, in beats: 16th, 8th, beat, bar of 4/4, 4-bar phrase.
BEAT_PERIODS = (0.25, 0.5, 1.0, 4.0, 16.0)
BEAT_FEATURES = 2 + 2 * len(BEAT_PERIODS)  # present flag, tempo, then sin/cos per period


def swing_positions(beats: Tensor, swing: Tensor) -> Tensor:
    """Beat positions `[B, T]` warped so the off-beat eighth sits at `swing [B, 1]` of the beat
    (2/3: triplet swing) where a straight grid has it at 0.5: a swung source's grid (engine/groove.py)."""
    s = torch.where(swing > 0, swing, torch.full_like(swing, 0.5)).clamp(0.05, 0.95).expand_as(beats)
    whole = torch.floor(beats)
    f = beats - whole
    return whole + torch.where(f < s, f * 0.5 / s, 0.5 + (f - s) * 0.5 / (1 - s))


def beat_features(tempo: Tensor, frames: int) -> Tensor:
    """Tempo-grid features per latent frame: `tempo [B, 2]` = (beats per frame, beat position of
    frame 0), or `[B, 3]` with the beat count the positions wrap at (a loop's), or `[B, 4]` with where
    the off-beat eighth falls too (`swing_positions`) -> `[B, frames, BEAT_FEATURES]`. A row whose beats-per-frame is NaN has no tempo: its
    features are all zero (which the bias-free projection maps to nothing added).

    Positions are computed in float64 (on the CPU) and wrapped to the longest period before the sine, so a
    285 s render at 180 BPM (855 beats) keeps its phase exact in any compute dtype.
    """
    t = tempo.detach().cpu().double()  # on the CPU: MPS has no float64
    present = torch.isfinite(t[:, 0])
    t = torch.nan_to_num(t, nan=0.0)
    beats = t[:, 1:2] + t[:, 0:1] * torch.arange(frames, dtype=torch.float64)  # [B, T]
    if t.shape[1] > 2:  # a third column: the beat count the grid wraps at (a loop's length; 0: none)
        wrap = t[:, 2:3].expand_as(beats)
        beats = torch.where(wrap > 0, torch.remainder(beats, wrap.clamp(min=1e-9)), beats)
    if t.shape[1] > 3:  # a fourth: where the off-beat eighth falls in the beat (0 or 0.5: straight)
        beats = swing_positions(beats, t[:, 3:4])
    feats = [torch.ones_like(beats), t[:, 0:1].expand_as(beats) * 10.0]  # ~0.5-1.5 for 60-180 BPM
    for period in BEAT_PERIODS:
        angle = torch.remainder(beats, period) * (2 * math.pi / period)
        feats += [angle.sin(), angle.cos()]
    out = torch.stack(feats, dim=-1) * present[:, None, None]
    return out.float().to(tempo.device)


def _patch(x: Tensor, p: int) -> Tensor:
    """`[B, T, F]` -> `[B, T/p, F*p]` as "b (t p) f -> b t (f p)" (the DiT's token layout)."""
    if p == 1:
        return x
    b, frames, f = x.shape
    return x.reshape(b, frames // p, p, f).transpose(2, 3).reshape(b, frames // p, f * p)


class DiffusionTransformer(nn.Module):
    """Network `(x [B, C, T], t [B], cross-attn tokens [B, S, Dc], global [B, Dg]) -> [B, C, T]`."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.timestep_features = FourierFeatures(1, cfg.timestep_features_dim)
        self.to_timestep_embed = nn.Sequential(
            nn.Linear(cfg.timestep_features_dim, dim, bias=True), nn.SiLU(), nn.Linear(dim, dim, bias=True)
        )
        cond_embed_dim = None
        if cfg.cond_token_dim > 0:
            cond_embed_dim = dim if cfg.project_cond_tokens else cfg.cond_token_dim
            self.to_cond_embed = nn.Sequential(
                nn.Linear(cfg.cond_token_dim, cond_embed_dim, bias=False),
                nn.SiLU(),
                nn.Linear(cond_embed_dim, cond_embed_dim, bias=False),
            )
        if cfg.global_cond_dim > 0:
            g = dim if cfg.project_global_cond else cfg.global_cond_dim
            self.to_global_embed = nn.Sequential(
                nn.Linear(cfg.global_cond_dim, g, bias=False), nn.SiLU(), nn.Linear(g, g, bias=False)
            )
        self.transformer = ContinuousTransformer(
            dim,
            cfg.depth,
            cfg.dim_heads,
            dim_in=cfg.io_channels * cfg.patch_size,
            dim_out=cfg.io_channels * cfg.patch_size,
            cond_token_dim=cond_embed_dim,
            qk_norm=cfg.qk_norm,
            ff_mult=cfg.ff_mult,
            attn_window=cfg.attn_window,
            global_layers=cfg.global_layers,
            norm_bias=cfg.norm_bias,
        )
        if cfg.beat_phase:
            # Zero-init, so a model trained without the grid starts unchanged when it is added.
            self.to_beat_embed = nn.Linear(BEAT_FEATURES * cfg.patch_size, dim, bias=False)
            nn.init.zeros_(self.to_beat_embed.weight)
        if cfg.add_last_cond_token:
            # Zero-init as the grid's: a model that grows this path starts as it was.
            self.to_last_token_add = nn.Linear(cfg.cond_token_dim, dim, bias=False)
            nn.init.zeros_(self.to_last_token_add.weight)
        self.preprocess_conv = nn.Conv1d(cfg.io_channels, cfg.io_channels, 1, bias=False)
        self.postprocess_conv = nn.Conv1d(cfg.io_channels, cfg.io_channels, 1, bias=False)
        # Zero-init residual convs: the reference's init, so a fresh model starts as identity there.
        nn.init.zeros_(self.preprocess_conv.weight)
        nn.init.zeros_(self.postprocess_conv.weight)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        cross_attn_cond: Tensor | None = None,
        global_cond: Tensor | None = None,
        tempo: Tensor | None = None,
        key_add: Tensor | None = None,
    ) -> Tensor:
        """`tempo [B, 2]` (beats per latent frame, beat at frame 0; NaN rows: none) is used by
        `beat_phase` models and ignored by others. `key_add [B, 1, cond_token_dim]` is the token an
        `add_last_cond_token` model adds to every token (default: the last cross-attention token;
        `guided_forward` gives the unconditional branch part of the key through it)."""
        context = self.to_cond_embed(cross_attn_cond) if cross_attn_cond is not None else None
        t_embed = self.to_timestep_embed(
            self.timestep_features(t[:, None].to(self.timestep_features.weight.dtype))
        )  # [B, dim]
        g = t_embed if global_cond is None else self.to_global_embed(global_cond) + t_embed
        x = self.preprocess_conv(x) + x  # [B, C, T]
        b, c, frames = x.shape
        p = self.cfg.patch_size
        if frames % p:
            raise ValueError(f"{frames} latent frames are not a multiple of the DiT's patch_size {p}")
        tokens = _patch(x.transpose(1, 2), p)  # [B, T/p, C*p]
        add = None
        if self.cfg.beat_phase and tempo is not None:
            add = self.to_beat_embed(_patch(beat_features(tempo, frames), p).to(self.to_beat_embed.weight.dtype))
        if self.cfg.add_last_cond_token and cross_attn_cond is not None:
            token = cross_attn_cond[:, -1:, :] if key_add is None else key_add
            last = self.to_last_token_add(token)  # [B, 1, dim]; CFG's null token adds 0
            add = last if add is None else add + last
        out: Tensor = self.transformer(tokens, prepend=g[:, None, :], context=context, add=add)  # [B, 1 + T/p, C*p]
        out = out.transpose(1, 2)[:, :, 1:]  # [B, C*p, T/p]: drop the prepended token
        if p > 1:  # "b (c p) t -> b c (t p)"
            out = out.reshape(b, c, p, frames // p).transpose(2, 3).reshape(b, c, frames)
        return cast(Tensor, self.postprocess_conv(out)) + out


class DiTWrapper(nn.Module):
    """Holds the network as `.model` so keys read `model.model.transformer...` under the top model."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.model = DiffusionTransformer(cfg)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        cross_attn_cond: Tensor | None = None,
        global_cond: Tensor | None = None,
        tempo: Tensor | None = None,
        key_add: Tensor | None = None,
    ) -> Tensor:
        return cast(Tensor, self.model(x, t, cross_attn_cond, global_cond, tempo, key_add))


def guided_forward(
    net: Callable[..., Tensor],
    x: Tensor,
    t: Tensor,
    cross_attn_cond: Tensor | None,
    global_cond: Tensor | None,
    cfg_scale: float = 1.0,
    negative_cross_attn_cond: Tensor | None = None,
    cfg_rescale: float = 0.0,
    tempo: Tensor | None = None,
    key_cfg: float | None = None,
) -> Tensor:
    """Classifier-free guidance as stable-audio-tools computes it, on the network output.

    The unconditional branch has every cross-attention token zeroed (or the negative prompt's
    tokens), while the prepended global token is kept. Both branches run as one batch.
    CFG rescale (Lin et al. 2023, "Common diffusion noise schedules...") blends in the guided
    output rescaled to the conditional output's std over channels, with weight `cfg_rescale`.

    `key_cfg` (models whose DiT adds the key token to every token, `add_last_cond_token`): the
    guidance scale of that added key, in place of `cfg_scale`. The unconditional branch then adds
    the fraction w = (cfg - key_cfg) / (cfg - 1) of the conditional branch's key, so where the
    network is linear in it the key's pull is key_cfg times its conditional pull, with no third
    pass (key_cfg = cfg: the plain CFG above; 1: the key gets no boost). Text and the key's
    cross-attention token keep `cfg_scale`. Why: CFG 5 on the key alone cost the tempo lock
    (issue 19, lab/runs/dit-keyadd).
    """
    if cfg_scale == 1.0 or cross_attn_cond is None:
        return net(x, t, cross_attn_cond, global_cond, tempo)
    uncond = negative_cross_attn_cond if negative_cross_attn_cond is not None else torch.zeros_like(cross_attn_cond)
    extra = {}
    if key_cfg is not None and key_cfg != cfg_scale:
        w = (cfg_scale - key_cfg) / (cfg_scale - 1.0)
        key, null = cross_attn_cond[:, -1:], uncond[:, -1:]
        extra["key_add"] = torch.cat((key, null + (key - null) * w))
    batch = net(
        torch.cat((x, x)),
        torch.cat((t, t)),
        torch.cat((cross_attn_cond, uncond)),
        None if global_cond is None else torch.cat((global_cond, global_cond)),
        None if tempo is None else torch.cat((tempo, tempo)),
        **extra,
    )
    cond_out, uncond_out = batch.chunk(2)
    out = uncond_out + (cond_out - uncond_out) * cfg_scale
    if cfg_rescale:
        ratio = cond_out.std(dim=1, keepdim=True) / out.std(dim=1, keepdim=True)
        out = cfg_rescale * (out * ratio) + (1 - cfg_rescale) * out
    return out
