"""Test-only: map Longplay (= stable-audio-tools) state dicts onto diffusers' Stable Audio modules.

The engine never imports diffusers; this converter exists so the parity tests can load *our* weights
into an independent implementation (`StableAudioDiTModel`, `AutoencoderOobleck`,
`StableAudioNumberConditioner` / `StableAudioProjectionModel`) and compare numbers.

Every conversion is bookkept both ways: each source key must be consumed exactly once and each
diffusers key written exactly once, so a silently dropped or doubly-mapped tensor fails loudly.
All tensor ops used here (`chunk`, `view`) work on the meta device, so the full 1.2B-parameter SAO
layout can be checked without allocating it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from engine.config import AutoencoderConfig, ConditionerSpec, DiTConfig, ModelConfig

DIT_PREFIX = "model.model."
VAE_PREFIX = "pretransform.model."
COND_PREFIX = "conditioner.conditioners."


class _Sink(dict):  # type: ignore[type-arg]
    """A dict that refuses to be written twice under one key (the 'filled exactly once' half)."""

    def __setitem__(self, key: str, value: Tensor) -> None:
        if key in self:
            raise AssertionError(f"diffusers key {key!r} written twice")
        super().__setitem__(key, value)


class _Source:
    """Read-once view of a source state dict (the 'consumed exactly once' half)."""

    def __init__(self, sd: Mapping[str, Tensor], prefix: str):
        self.sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        self.prefix = prefix
        self.used: set[str] = set()

    def take(self, key: str) -> Tensor:
        if key not in self.sd:
            raise AssertionError(f"source key {self.prefix + key!r} is missing")
        if key in self.used:
            raise AssertionError(f"source key {self.prefix + key!r} consumed twice")
        self.used.add(key)
        return self.sd[key]

    def has(self, key: str) -> bool:
        return key in self.sd

    def keys_matching(self, pattern: str) -> list[str]:
        rx = re.compile(pattern)
        return sorted((k for k in self.sd if rx.fullmatch(k)), key=_natural)

    def assert_all_used(self) -> None:
        left = sorted(set(self.sd) - self.used)
        if left:
            raise AssertionError(
                f"{len(left)} source key(s) under {self.prefix!r} not converted, first: {self.prefix + left[0]!r}"
            )


def _natural(key: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def assert_fills(converted: Mapping[str, Tensor], target: Mapping[str, Tensor], what: str) -> None:
    """Key-for-key, shape-for-shape equality with a diffusers module's `state_dict()`."""
    missing = sorted(set(target) - set(converted), key=_natural)
    extra = sorted(set(converted) - set(target), key=_natural)
    if missing or extra:
        raise AssertionError(
            f"{what}: {len(missing)} diffusers key(s) not filled (first {missing[:3]}), "
            f"{len(extra)} converted key(s) diffusers lacks (first {extra[:3]})"
        )
    bad = [
        (k, tuple(converted[k].shape), tuple(target[k].shape))
        for k in target
        if tuple(converted[k].shape) != tuple(target[k].shape)
    ]
    if bad:
        raise AssertionError(f"{what}: {len(bad)} shape mismatch(es), first {bad[0]} (ours, diffusers)")


# --------------------------------------------------------------------------------------------- DiT


def kv_heads(cfg: DiTConfig) -> int:
    """stable-audio-tools: cross-attention kv heads = context width / dim_heads (shared by query heads)."""
    ctx = cfg.embed_dim if cfg.project_cond_tokens else cfg.cond_token_dim
    return ctx // cfg.dim_heads


def dit_config(cfg: DiTConfig) -> dict[str, Any]:
    """`StableAudioDiTModel(**kwargs)` for our DiT config; refuses what diffusers cannot express."""
    unsupported = {
        "qk_norm": cfg.qk_norm != "none",
        "ff_mult != 4": cfg.ff_mult != 4.0,
        "attn_window": cfg.attn_window > 0,
        "no cross-attention": cfg.cond_token_dim <= 0,
        # diffusers always has a global projection to inner_dim (prepended token of width dim).
        "no projected global cond": cfg.global_cond_dim <= 0 or not cfg.project_global_cond,
    }
    bad = [k for k, v in unsupported.items() if v]
    if bad:
        raise ValueError(f"StableAudioDiTModel cannot express this DiT config: {bad}")
    ctx = cfg.embed_dim if cfg.project_cond_tokens else cfg.cond_token_dim
    return dict(
        in_channels=cfg.io_channels,
        out_channels=cfg.io_channels,
        num_layers=cfg.depth,
        attention_head_dim=cfg.dim_heads,
        num_attention_heads=cfg.num_heads,
        num_key_value_attention_heads=kv_heads(cfg),
        cross_attention_dim=ctx,
        cross_attention_input_dim=cfg.cond_token_dim,
        time_proj_dim=cfg.timestep_features_dim,
        global_states_input_dim=cfg.global_cond_dim,
    )


def rotary_dim(cfg: DiTConfig) -> int:
    """Rotated dims per head in stable-audio-tools' ContinuousTransformer: `max(dim_heads // 2, 32)`.

    diffusers' StableAudioPipeline passes `attention_head_dim // 2` instead; the two agree for
    dim_heads >= 64 (SAO 1.0 has 64) and differ below, where the reference rule is the right one.
    """
    return max(cfg.dim_heads // 2, 32)


def _copy(src: _Source, dst: _Sink, pairs: Iterable[tuple[str, str]]) -> None:
    for ours, theirs in pairs:
        dst[theirs] = src.take(ours)


def convert_dit(sd: Mapping[str, Tensor], cfg: DiTConfig, prefix: str = DIT_PREFIX) -> dict[str, Tensor]:
    """Our `DiffusionTransformer` state dict (under `prefix`) -> `StableAudioDiTModel` state dict."""
    dit_config(cfg)  # refuse early if diffusers cannot represent it
    src, out = _Source(sd, prefix), _Sink()
    # FourierFeatures keeps a Linear-style weight [out/2, in=1]; diffusers a vector [out/2].
    out["time_proj.weight"] = src.take("timestep_features.weight").view(-1)
    _copy(
        src, out, [(f"to_timestep_embed.{i}.{p}", f"timestep_proj.{i}.{p}") for i in (0, 2) for p in ("weight", "bias")]
    )
    _copy(src, out, [(f"to_global_embed.{i}.weight", f"global_proj.{i}.weight") for i in (0, 2)])
    _copy(src, out, [(f"to_cond_embed.{i}.weight", f"cross_attention_proj.{i}.weight") for i in (0, 2)])
    _copy(
        src,
        out,
        [
            ("preprocess_conv.weight", "preprocess_conv.weight"),
            ("postprocess_conv.weight", "postprocess_conv.weight"),
            ("transformer.project_in.weight", "proj_in.weight"),
            ("transformer.project_out.weight", "proj_out.weight"),
        ],
    )
    # RoPE frequencies are a buffer here but computed outside the model in diffusers; check the
    # buffer holds exactly the reference formula so dropping it loses nothing.
    inv_freq = src.take("transformer.rotary_pos_emb.inv_freq")
    rot = rotary_dim(cfg)
    if inv_freq.shape != (rot // 2,):
        raise AssertionError(f"rotary inv_freq has shape {tuple(inv_freq.shape)}, expected ({rot // 2},)")
    if inv_freq.device.type != "meta":
        want = 1.0 / (10000.0 ** (torch.arange(0, rot, 2).float() / rot))
        torch.testing.assert_close(inv_freq, want, rtol=0, atol=0)

    for n in range(cfg.depth):
        a, b = f"transformer.layers.{n}.", f"transformer_blocks.{n}."
        # Our LayerNorm: gamma parameter + zero beta buffer; diffusers: nn.LayerNorm weight/bias.
        for ours, theirs in (("pre_norm", "norm1"), ("cross_attend_norm", "norm2"), ("ff_norm", "norm3")):
            out[f"{b}{theirs}.weight"] = src.take(f"{a}{ours}.gamma")
            out[f"{b}{theirs}.bias"] = src.take(f"{a}{ours}.beta")
        # Fused [q; k; v] rows, each `dim` wide (stable-audio-tools chunks the output in 3).
        q, k, v = src.take(f"{a}self_attn.to_qkv.weight").chunk(3, dim=0)
        out[f"{b}attn1.to_q.weight"], out[f"{b}attn1.to_k.weight"], out[f"{b}attn1.to_v.weight"] = q, k, v
        out[f"{b}attn1.to_out.0.weight"] = src.take(f"{a}self_attn.to_out.weight")
        out[f"{b}attn2.to_q.weight"] = src.take(f"{a}cross_attn.to_q.weight")
        k, v = src.take(f"{a}cross_attn.to_kv.weight").chunk(2, dim=0)
        out[f"{b}attn2.to_k.weight"], out[f"{b}attn2.to_v.weight"] = k, v
        out[f"{b}attn2.to_out.0.weight"] = src.take(f"{a}cross_attn.to_out.weight")
        _copy(src, out, [(f"{a}ff.ff.0.proj.{p}", f"{b}ff.net.0.proj.{p}") for p in ("weight", "bias")])
        _copy(src, out, [(f"{a}ff.ff.2.{p}", f"{b}ff.net.2.{p}") for p in ("weight", "bias")])
    src.assert_all_used()
    return dict(out)


# --------------------------------------------------------------------------------------------- VAE


def vae_config(ae: AutoencoderConfig, sample_rate: int = 44100) -> dict[str, Any]:
    """`AutoencoderOobleck(**kwargs)` for our autoencoder config."""
    enc, dec = ae.encoder, ae.decoder
    problems = {
        "bottleneck must be 'vae'": ae.bottleneck != "vae",
        "use_snake must be true": not (enc.use_snake and dec.use_snake),
        "final_tanh must be false": dec.final_tanh,
        "nearest upsampling": dec.use_nearest_upsample,
        # diffusers' encoder ends in `encoder_hidden_size` channels = 2 * latent (mean, scale).
        "encoder channels must equal encoder latent_dim": enc.channels != enc.latent_dim,
        "encoder/decoder must mirror": (enc.c_mults, enc.strides, enc.audio_channels)
        != (dec.c_mults, dec.strides, dec.audio_channels),
    }
    bad = [k for k, v in problems.items() if v]
    if bad:
        raise ValueError(f"AutoencoderOobleck cannot express this autoencoder: {bad}")
    return dict(
        encoder_hidden_size=enc.channels,
        downsampling_ratios=list(enc.strides),
        channel_multiples=list(enc.c_mults),
        decoder_channels=dec.channels,
        decoder_input_channels=dec.latent_dim,
        audio_channels=enc.audio_channels,
        sampling_rate=sample_rate,
    )


def _conv(src: _Source, out: _Sink, ours: str, theirs: str) -> None:
    # Both sides use the classic torch weight_norm names (diffusers calls
    # `torch.nn.utils.weight_norm`, not the parametrizations API): weight_g, weight_v, bias.
    for p in ("weight_g", "weight_v", "bias"):
        if p == "bias" and not src.has(f"{ours}.bias"):
            continue
        out[f"{theirs}.{p}"] = src.take(f"{ours}.{p}")


def _snake(src: _Source, out: _Sink, ours: str, theirs: str) -> None:
    # Ours stores alpha/beta as [C]; diffusers' Snake1d as [1, C, 1] (both log-scale).
    for p in ("alpha", "beta"):
        out[f"{theirs}.{p}"] = src.take(f"{ours}.{p}").view(1, -1, 1)


def _res_unit(src: _Source, out: _Sink, ours: str, theirs: str) -> None:
    # ResidualUnit.layers = [act, conv k7 dilated, act, conv k1]
    _snake(src, out, f"{ours}.layers.0", f"{theirs}.snake1")
    _conv(src, out, f"{ours}.layers.1", f"{theirs}.conv1")
    _snake(src, out, f"{ours}.layers.2", f"{theirs}.snake2")
    _conv(src, out, f"{ours}.layers.3", f"{theirs}.conv2")


def convert_vae(sd: Mapping[str, Tensor], ae: AutoencoderConfig, prefix: str = VAE_PREFIX) -> dict[str, Tensor]:
    """Our `AudioAutoencoder` state dict (under `prefix`) -> `AutoencoderOobleck` state dict."""
    vae_config(ae)
    src, out = _Source(sd, prefix), _Sink()
    n = len(ae.encoder.strides)
    # Encoder.layers = [conv, EncoderBlock x n, act, conv]
    _conv(src, out, "encoder.layers.0", "encoder.conv1")
    for i in range(n):
        a, b = f"encoder.layers.{i + 1}.layers", f"encoder.block.{i}"
        for j in range(3):  # EncoderBlock.layers = [res d1, res d3, res d9, act, strided conv]
            _res_unit(src, out, f"{a}.{j}", f"{b}.res_unit{j + 1}")
        _snake(src, out, f"{a}.3", f"{b}.snake1")
        _conv(src, out, f"{a}.4", f"{b}.conv1")
    _snake(src, out, f"encoder.layers.{n + 1}", "encoder.snake1")
    _conv(src, out, f"encoder.layers.{n + 2}", "encoder.conv2")
    # Decoder.layers = [conv, DecoderBlock x n, act, conv, Identity|Tanh]
    _conv(src, out, "decoder.layers.0", "decoder.conv1")
    for i in range(n):
        a, b = f"decoder.layers.{i + 1}.layers", f"decoder.block.{i}"
        _snake(src, out, f"{a}.0", f"{b}.snake1")  # DecoderBlock.layers = [act, conv_t, res x3]
        _conv(src, out, f"{a}.1", f"{b}.conv_t1")
        for j in range(3):
            _res_unit(src, out, f"{a}.{j + 2}", f"{b}.res_unit{j + 1}")
    _snake(src, out, f"decoder.layers.{n + 1}", "decoder.snake1")
    _conv(src, out, f"decoder.layers.{n + 2}", "decoder.conv2")
    src.assert_all_used()
    return dict(out)


# ------------------------------------------------------------------------------------ conditioners


def number_config(spec: ConditionerSpec) -> dict[str, Any]:
    """`StableAudioNumberConditioner(**kwargs)` for a `number` conditioner spec."""
    return dict(
        number_embedding_dim=spec.output_dim,
        min_value=spec.config.get("min_val", 0),
        max_value=spec.config.get("max_val", 1),
    )


def convert_number(sd: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """Our `NumberConditioner` -> `StableAudioNumberConditioner` (`embedder.embedding` -> `time_positional_embedding`)."""
    src, out = _Source(sd, prefix), _Sink()
    _copy(
        src,
        out,
        [
            ("embedder.embedding.0.weights", "time_positional_embedding.0.weights"),
            ("embedder.embedding.1.weight", "time_positional_embedding.1.weight"),
            ("embedder.embedding.1.bias", "time_positional_embedding.1.bias"),
        ],
    )
    src.assert_all_used()
    return dict(out)


def convert_t5_projection(sd: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """Our T5Conditioner's `proj_out` (absent when Identity) -> `text_projection` of StableAudioProjectionModel."""
    src, out = _Source(sd, prefix), _Sink()
    for p in ("weight", "bias"):
        if src.has(f"proj_out.{p}"):
            out[f"text_projection.{p}"] = src.take(f"proj_out.{p}")
    src.assert_all_used()
    return dict(out)


@dataclass
class DiffusersWeights:
    dit: dict[str, Tensor]
    vae: dict[str, Tensor]
    numbers: dict[str, dict[str, Tensor]]  # number conditioner id -> StableAudioNumberConditioner sd
    text: dict[str, dict[str, Tensor]] = field(default_factory=dict)  # t5 id -> text_projection sd

    def projection_model(
        self, start_id: str = "seconds_start", end_id: str = "seconds_total", text_id: str = "prompt"
    ) -> dict[str, Tensor]:
        """State dict of `StableAudioProjectionModel` (the pipeline's seconds_end is SAO's seconds_total)."""
        out = _Sink()
        for name, cid in (("start_number_conditioner", start_id), ("end_number_conditioner", end_id)):
            for k, v in self.numbers[cid].items():
                out[f"{name}.{k}"] = v
        for k, v in self.text.get(text_id, {}).items():
            out[k] = v
        return dict(out)


def convert_model(sd: Mapping[str, Tensor], cfg: ModelConfig) -> DiffusersWeights:
    """Our full model state dict -> diffusers DiT, VAE and conditioner state dicts.

    Every key of `sd` must be used exactly once (T5 encoder weights are not part of the checkpoint,
    as in stable-audio-tools, so only a T5 `proj_out` can appear under the prompt conditioner).
    """
    known = (DIT_PREFIX, VAE_PREFIX, COND_PREFIX)
    stray = [k for k in sd if not k.startswith(known)]
    if stray:
        raise AssertionError(f"{len(stray)} key(s) outside {known}, first {stray[0]!r}")
    numbers: dict[str, dict[str, Tensor]] = {}
    text: dict[str, dict[str, Tensor]] = {}
    for spec in cfg.conditioners:
        prefix = f"{COND_PREFIX}{spec.id}."
        if spec.type == "number":
            numbers[spec.id] = convert_number(sd, prefix)
        elif spec.type == "t5":
            text[spec.id] = convert_t5_projection(sd, prefix)
        else:
            raise ValueError(f"conditioner {spec.id!r} of type {spec.type!r} has no diffusers counterpart")
    ids = {s.id for s in cfg.conditioners}
    orphan = [k for k in sd if k.startswith(COND_PREFIX) and k[len(COND_PREFIX) :].split(".")[0] not in ids]
    if orphan:
        raise AssertionError(f"conditioner key(s) of unknown conditioners, first {orphan[0]!r}")
    return DiffusersWeights(
        dit=convert_dit(sd, cfg.dit), vae=convert_vae(sd, cfg.autoencoder), numbers=numbers, text=text
    )


def network_t(sigma: Tensor) -> Tensor:
    """The t the networks take for noise level sigma under the v objective: atan(sigma) * 2 / pi.

    Same op order as engine.sampling's v-denoiser (and k-diffusion), so t is bitwise the sampler's.
    """
    return sigma.atan() / math.pi * 2


def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Random, non-zero, well-scaled values for every parameter (buffers such as LayerNorm beta stay).

    Scales keep activations O(1) through the stacks so the relative error measures arithmetic
    agreement, not chaos: Linear/conv weights ~ N(0, 1/fan_in), norm gains ~ 1, weight-norm g in
    [0.25, 0.75], Snake log-alpha/beta ~ N(0, 0.5^2), Fourier frequencies ~ N(0, 1) as at init.
    (With g in [0.5, 1.5] the Oobleck residual stacks grow activations to ~100, where
    sin(alpha * x) turns the 1e-7 rounding difference between the two weight-norm formulas into a
    1e-4 relative difference: measured, and not a semantic mismatch.)
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            r = torch.randn(p.shape, generator=g)
            if leaf == "gamma":
                p.copy_(1 + 0.2 * r)
            elif leaf in ("alpha", "beta"):
                p.copy_(0.5 * r)
            elif leaf == "weight_g":
                p.copy_(0.25 + 0.5 * torch.rand(p.shape, generator=g))
            elif leaf == "bias":
                p.copy_(0.1 * r)
            elif leaf == "weights" or name.endswith("timestep_features.weight"):
                p.copy_(r)
            else:
                p.copy_(r / math.sqrt(p[0].numel()))
