"""The original release's `model.safetensors` keys <-> the built modules' (diffusers') keys.

The original layout is stable-audio-3's own module tree (`ConditionedDiffusionModelWrapper`):
`model.model.*` (the DiT), `conditioner.conditioners.{prompt,seconds_total}.*` and
`pretransform.model.*` (the SAME autoencoder). The built model is diffusers' classes, whose
diffusers-format folders load as they are; an original folder goes through `plan` below, which
names, for every released key, the built tensor it becomes. Each released key is consumed once
and each built key filled once (a drifted layout fails loudly, naming the key); every op works
on meta tensors, so the full-size layout is checked without allocating it.

Two renames are more than names: differential self-attention stores `to_qkv` rows as
`[q, k, v, q_diff, k_diff]` in the release and `[q1, q2, k1, k2, v]` in diffusers (permuted
here); and the learned prompt padding lives in the conditioner in the release, in the DiT
(`prompt_padding_embedding`) in diffusers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ModelLoadError
from .config import SA3Config, SAMEConfig

DIT, DURATION, SAME = "dit", "duration", "same"
PREFIX_DIT, PREFIX_COND, PREFIX_AE = "model.model.", "conditioner.conditioners.", "pretransform.model."
# released [q, k, v, q_diff, k_diff] -> diffusers [q, q_diff, k, k_diff, v]
DIFF_QKV_ORDER = (0, 3, 1, 4, 2)


@dataclass(frozen=True)
class Rule:
    part: str  # DIT | DURATION | SAME, or "" for a released tensor with no built counterpart
    key: str
    permute_qkv: bool = False
    rope_dim: int = 0  # a released RoPE buffer of this rotation width (recomputed, not loaded)


def _dit_plan(cfg: SA3Config) -> dict[str, Rule]:
    d = cfg.dit
    plan: dict[str, Rule] = {}

    def same_name(*names: str) -> None:
        for n in names:
            plan[PREFIX_DIT + n] = Rule(DIT, n)

    same_name(
        "to_timestep_embed.0.weight",
        "to_timestep_embed.0.bias",
        "to_timestep_embed.2.weight",
        "to_timestep_embed.2.bias",
        "to_cond_embed.0.weight",
        "to_cond_embed.2.weight",
        "to_global_embed.0.weight",
        "to_global_embed.2.weight",
        "preprocess_conv.weight",
        "postprocess_conv.weight",
    )
    t = PREFIX_DIT + "transformer."
    plan[t + "project_in.weight"] = Rule(DIT, "proj_in.weight")
    plan[t + "project_out.weight"] = Rule(DIT, "proj_out.weight")
    plan[t + "rotary_pos_emb.inv_freq"] = Rule(DIT, "rotary_pos_emb.inv_freq")
    if d.num_memory_tokens:
        plan[t + "memory_tokens"] = Rule(DIT, "memory_tokens")
    for n in ("0.weight", "0.bias", "2.weight", "2.bias"):
        plan[t + "global_cond_embedder." + n] = Rule(DIT, "global_cond_embedder." + n)
    for i in range(d.depth):
        src, dst = f"{t}layers.{i}.", f"transformer_blocks.{i}."
        for n in (
            "pre_norm.gamma",
            "self_attn.to_out.weight",
            "self_attn.q_norm.gamma",
            "self_attn.k_norm.gamma",
            "cross_attend_norm.gamma",
            "cross_attn.to_q.weight",
            "cross_attn.to_kv.weight",
            "cross_attn.to_out.weight",
            "cross_attn.q_norm.gamma",
            "cross_attn.k_norm.gamma",
            "ff_norm.gamma",
            "to_scale_shift_gate",
        ):
            plan[src + n] = Rule(DIT, dst + n)
        plan[src + "self_attn.to_qkv.weight"] = Rule(DIT, dst + "self_attn.to_qkv.weight", d.differential)
        for a, b in (("ff.ff.0.proj.", "ff.proj_in."), ("ff.ff.2.", "ff.proj_out.")):
            for n in ("weight", "bias"):
                plan[src + a + n] = Rule(DIT, dst + b + n)
        if cfg.inpaint:
            for n in ("0.weight", "0.bias", "2.weight", "2.bias"):
                plan[src + "to_local_embed." + n] = Rule(DIT, dst + "to_local_embed." + n)
    if cfg.text.padding_mode == "learned":
        plan[PREFIX_COND + "prompt.padding_embedding"] = Rule(DIT, "prompt_padding_embedding")
    for n in ("weight", "bias"):
        plan[f"{PREFIX_COND}seconds_total.embedder.embedding.1.{n}"] = Rule(DURATION, "linear." + n)
    return plan


def same_plan(cfg: SAMEConfig, prefix: str = PREFIX_AE) -> dict[str, Rule]:
    """Released SAME keys (under `prefix`: `pretransform.model.` in a full checkpoint, "" in an
    AE-only one) -> built `SAMEAutoencoder` keys."""
    plan: dict[str, Rule] = {}
    enc, dec = cfg.encoder, cfg.decoder
    n_enc, n_dec = len(enc.strides), len(dec.strides)
    patched = cfg.audio_channels * cfg.patch_size

    def block(src: str, dst: str, depth: int, mapped: bool, differential: bool, rope_dim: int) -> None:
        if mapped:
            for n in ("weight_g", "weight_v", "bias"):
                plan[src + "mapping." + n] = Rule(SAME, dst + "mapping." + n)
        plan[src + "new_tokens"] = Rule(SAME, dst + "new_tokens")
        for j in range(depth):
            s, b = f"{src}transformers.{j}.", f"{dst}transformers.{j}."
            for a, c in (
                ("pre_norm.", "norm_attn."),
                ("ff_norm.", "norm_ff."),
                ("self_attn.q_norm.", "attn.q_norm."),
                ("self_attn.k_norm.", "attn.k_norm."),
            ):
                for n in ("alpha", "gamma", "beta"):
                    plan[s + a + n] = Rule(SAME, b + c + n)
            plan[s + "self_attn.to_qkv.weight"] = Rule(SAME, b + "attn.to_qkv.weight", differential)
            plan[s + "self_attn.to_out.weight"] = Rule(SAME, b + "attn.to_out.weight")
            for a, c in (("ff.ff.0.proj.", "ff.proj_in."), ("ff.ff.2.", "ff.proj_out.")):
                for n in ("weight", "bias"):
                    plan[s + a + n] = Rule(SAME, b + c + n)
            plan[s + "rope.inv_freq"] = Rule("", "", rope_dim=rope_dim)  # persistent in the release; recomputed

    ch = [patched] + enc.dims
    for i in range(n_enc):
        block(
            f"{prefix}encoder.layers.{i}.",
            f"encoder.blocks.{i}.",
            enc.depths[i],
            ch[i] != ch[i + 1],
            enc.differential,
            min(enc.dim_heads, ch[i + 1]) // 2,
        )
    for n in ("weight", "bias"):
        plan[f"{prefix}encoder.layers.{n_enc + 1}.{n}"] = Rule(SAME, f"encoder.proj.{n}")
        plan[f"{prefix}decoder.layers.1.{n}"] = Rule(SAME, f"decoder.proj.{n}")
    ch = [patched] + dec.dims
    for k, i in enumerate(range(n_dec - 1, -1, -1)):  # the release and diffusers both start at the deepest
        block(
            f"{prefix}decoder.layers.{3 + k}.",
            f"decoder.blocks.{k}.",
            dec.depths[i],
            ch[i + 1] != ch[i],
            dec.differential,
            min(dec.dim_heads, ch[i + 1]) // 2,
        )
    plan[prefix + "bottleneck.scaling_factor"] = Rule(SAME, "bottleneck.scale")
    plan[prefix + "bottleneck.bias"] = Rule(SAME, "bottleneck.bias")
    plan[prefix + "bottleneck.noise_scaling_factor"] = Rule("", "")  # [1, 0, 1]: noise_augment_dim 0
    if cfg.auto_scale:
        plan[prefix + "bottleneck.running_std"] = Rule(SAME, "bottleneck.running_std")
    return plan


def plan(cfg: SA3Config) -> dict[str, Rule]:
    """Every key of an original SA3 `model.safetensors`, and the built tensor it becomes."""
    return {**_dit_plan(cfg), **same_plan(cfg.same)}


def _permute_qkv(w: Tensor) -> Tensor:
    chunks = w.chunk(5, dim=0)
    return torch.cat([chunks[i] for i in DIFF_QKV_ORDER], dim=0)


def permute_qkv(w: Tensor) -> Tensor:
    """The release's `[q, k, v, q_diff, k_diff]` rows -> diffusers' `[q1, q2, k1, k2, v]`."""
    return _permute_qkv(w)


def unpermute_qkv(w: Tensor) -> Tensor:
    """diffusers' `[q1, q2, k1, k2, v]` rows -> the release's `[q, k, v, q_diff, k_diff]`."""
    chunks = w.chunk(5, dim=0)
    inverse = [DIFF_QKV_ORDER.index(i) for i in range(5)]
    return torch.cat([chunks[i] for i in inverse], dim=0)


def convert(sd: Mapping[str, Tensor], rules: Mapping[str, Rule], source: str) -> dict[str, dict[str, Tensor]]:
    """Released tensors -> `{part: built state dict}`; missing or unexpected keys are a ModelLoadError."""
    optional = {k for k, r in rules.items() if not r.part}
    missing = [k for k in rules if k not in sd and k not in optional]
    unexpected = [k for k in sd if k not in rules]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), first: {missing[0]!r}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), first: {unexpected[0]!r}")
        raise ModelLoadError(f"{source} does not fit its model_config.json (Stable Audio 3): " + "; ".join(parts))
    out: dict[str, dict[str, Tensor]] = {DIT: {}, DURATION: {}, SAME: {}}
    for key, rule in rules.items():
        if key not in sd:
            continue
        tensor = sd[key]
        if key.endswith("noise_scaling_factor") and tensor.numel():
            raise ModelLoadError(f"{source}: {key} is not empty; noise-augmented latents are not supported")
        if rule.part:
            out[rule.part][rule.key] = _permute_qkv(tensor) if rule.permute_qkv else tensor
    return out


def fill_defaults(
    parts: dict[str, dict[str, Tensor]], cfg: SA3Config, like: Mapping[str, Mapping[str, Tensor]]
) -> None:
    """Built tensors the release does not store: the duration embedder's fixed Fourier frequencies,
    a zero prompt padding (padding_mode zero/none), zero inpainting projections (a DiT without
    local conditioning; never used) and a unit running_std. `like` holds the built state dicts
    (shapes and dtypes, possibly on the meta device)."""
    ramp = torch.linspace(0.0, 1.0, cfg.duration.fourier_dim // 2)
    freqs = torch.exp(ramp * (math.log(10000.0) - math.log(0.5)) + math.log(0.5))
    parts[DURATION].setdefault("freqs", freqs)
    for part, sd in like.items():
        for key, ref in sd.items():
            if key not in parts[part]:
                known = (
                    key == "prompt_padding_embedding" or ".to_local_embed." in key or key == "bottleneck.running_std"
                )
                if not known:
                    continue  # left for the strict load to name
                fill = torch.ones if key.endswith("running_std") else torch.zeros
                parts[part][key] = fill(ref.shape, dtype=torch.float32)


def rope_inv_freq(dim: int) -> Tensor:
    """The RoPE frequencies a release stores for a `dim`-wide rotation (`RotaryEmbedding(dim)`)."""
    return 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))


def to_original(parts: Mapping[str, Mapping[str, Tensor]], rules: Mapping[str, Rule]) -> dict[str, Tensor]:
    """Built state dicts -> the original release's keys (the inverse of `convert`), e.g. to write
    an original-layout folder, or (on the meta device) to list the layout a config releases."""
    out: dict[str, Tensor] = {}
    device = parts[SAME]["bottleneck.bias"].device
    for key, rule in rules.items():
        if rule.part:
            t = parts[rule.part][rule.key]
            out[key] = unpermute_qkv(t) if rule.permute_qkv else t
        elif rule.rope_dim:
            out[key] = rope_inv_freq(rule.rope_dim).to(device)
        else:  # bottleneck.noise_scaling_factor: noise_augment_dim 0
            out[key] = torch.ones(1, 0, 1, device=device)
    return out
