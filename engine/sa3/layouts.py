"""Parse both Stable Audio 3 release layouts into one `SA3Config`, and nowhere else (STYLE point 3).

`parse_original` reads the original `model_config.json` (stable-audio-3's own loader);
`parse_diffusers` the `config.json` files of a diffusers-format folder. Values a layout does not
carry fall back to the reference code's defaults, named where they are set. Anything this engine
cannot build is a `ConfigError` naming the key that asks for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .config import (
    RELEASE_NORM_EPS,
    SA3Config,
    SA3DiTConfig,
    SA3DurationConfig,
    SA3TextConfig,
    SAMEConfig,
    SAMESide,
    check_same_side,
    default_max_seconds,
)

# ------------------------------------------------------------------------------ original layout


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping) or key not in d:
        raise ConfigError(f"{where}: missing {key!r}")
    return d[key]


def _window(value: Any, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise ConfigError(f"{where}: sliding_window must be null, an int or [left, right] (got {value!r})")


def parse_same_side(c: Mapping[str, Any], where: str) -> SAMESide:
    """A SAMEEncoder/SAMEDecoder `config` block (the reference constructor's keyword arguments)."""
    unsupported = {
        "conformer": False,
        "layer_scale": False,
        "feat_scale": False,
        "cross_attn": False,
        "dyt": True,
        "causal": False,
    }
    for key, want in unsupported.items():
        if bool(c.get(key, want)) != want:
            raise ConfigError(f"{where}: {key}={c[key]!r} is not supported (SAME-S/L use {want})")
    if not c.get("variable_stride", True):
        raise ConfigError(f"{where}: variable_stride=false (one new token per output position) is not supported")
    c_mults = tuple(int(m) for m in _get(c, "c_mults", where))
    n = len(c_mults)
    sin = tuple(int(s) for s in c.get("sinusoidal_blocks", [0] * n))
    side = SAMESide(
        channels=int(_get(c, "channels", where)),
        c_mults=c_mults,
        strides=tuple(int(s) for s in _get(c, "strides", where)),
        depths=tuple(int(d) for d in _get(c, "transformer_depths", where)),
        sinusoidal_blocks=sin if len(sin) == n else sin[:1] * n,
        dim_heads=int(c.get("dim_heads", 128)),
        differential=bool(c.get("differential", True)),
        ff_mult=float(c.get("ff_mult", 3)),
        sliding_window=_window(c.get("sliding_window"), where),
        chunk_size=int(c.get("chunk_size", 128)),
        chunk_midpoint_shift=bool(c.get("chunk_midpoint_shift", False)),
        conv_mapping=bool(c.get("conv_mapping", False)),
        mapping_bias=bool(c.get("mapping_bias", True)),
    )
    return check_same_side(side, where)


def parse_same(model: Mapping[str, Any], sample_rate: int, where: str) -> SAMEConfig:
    """An autoencoder block: `model.pretransform.config` of a full SA3 config, or an AE-only `model`."""
    enc = _get(_get(model, "encoder", where), "config", f"{where}.encoder")
    dec_block = _get(model, "decoder", where)
    dec = _get(dec_block, "config", f"{where}.decoder")
    patched = _get(_get(model, "pretransform", where), "config", f"{where}.pretransform")
    if int(patched.get("oversampling", 1)) != 1 or int(patched.get("postfilter_channels", 0)) != 0:
        raise ConfigError(f"{where}.pretransform: oversampling/postfilter are not supported")
    bottleneck = _get(model, "bottleneck", where)
    if bottleneck.get("type") != "softnorm":
        raise ConfigError(f"{where}.bottleneck: type {bottleneck.get('type')!r} is not supported (softnorm)")
    bcfg = bottleneck.get("config", {})
    if int(bcfg.get("noise_augment_dim", 0)):
        raise ConfigError(f"{where}.bottleneck: noise_augment_dim > 0 is not supported")
    cfg = SAMEConfig(
        audio_channels=int(patched.get("channels", 2)),
        patch_size=int(_get(patched, "patch_size", where)),
        latent_dim=int(_get(model, "latent_dim", where)),
        encoder=parse_same_side(enc, f"{where}.encoder"),
        decoder=parse_same_side(dec, f"{where}.decoder"),
        soft_clip=bool(dec_block.get("soft_clip", False)),
        auto_scale=bool(bcfg.get("auto_scale", False)),
        sample_rate=sample_rate,
    )
    ratio = model.get("downsampling_ratio")
    if ratio is not None and int(ratio) != cfg.downsampling_ratio:
        raise ConfigError(f"{where}: downsampling_ratio {ratio} != patch_size x strides = {cfg.downsampling_ratio}")
    return cfg


def _conditioner(configs: list[Mapping[str, Any]], cid: str, where: str) -> Mapping[str, Any]:
    for c in configs:
        if c.get("id") == cid:
            return c
    raise ConfigError(f"{where}: no conditioner with id {cid!r}")


def parse_original(raw: Mapping[str, Any]) -> SA3Config:
    """`model_config.json` of the original release (model_type diffusion_cond / diffusion_cond_inpaint)."""
    where = "model_config.json"
    model = _get(raw, "model", where)
    sample_rate = int(_get(raw, "sample_rate", where))
    diffusion = _get(model, "diffusion", f"{where}.model")
    dc = _get(diffusion, "config", f"{where}.model.diffusion")
    objective = str(diffusion.get("diffusion_objective", "v"))
    if objective not in ("rf_denoiser", "rectified_flow"):
        raise ConfigError(f"{where}: diffusion_objective {objective!r} is not a Stable Audio 3 objective")
    unsupported = {
        "transformer_type": "continuous_transformer",
        "global_cond_type": "adaLN",
        "timestep_features_type": "expo",
        "timestep_cond_type": "global",
        "norm_type": "rms_norm",
    }
    for key, want in unsupported.items():
        if dc.get(key, want) != want:
            raise ConfigError(f"{where}: diffusion.config.{key}={dc[key]!r} is not supported (SA3 uses {want!r})")
    for key in ("timestep_features_logsnr", "cross_attn_rotary_pos_emb", "use_sinusoidal_emb", "use_abs_pos_emb"):
        if dc.get(key):
            raise ConfigError(f"{where}: diffusion.config.{key} is not supported")
    if dc.get("sliding_window") is not None or dc.get("input_concat_dim") or dc.get("prepend_cond_dim"):
        raise ConfigError(f"{where}: DiT sliding_window / input_concat / prepend conditioning are not supported")
    attn = dc.get("attn_kwargs", {}) or {}
    if attn.get("qk_norm", "rms") != "rms":
        raise ConfigError(f"{where}: attn_kwargs.qk_norm {attn.get('qk_norm')!r} is not supported (rms)")
    if not dc.get("project_cond_tokens", True) or not dc.get("project_global_cond", True):
        raise ConfigError(f"{where}: unprojected conditioning tokens are not supported")
    local_ids = list(diffusion.get("local_add_cond_ids", []))
    if local_ids not in ([], ["inpaint_mask", "inpaint_masked_input"]):
        raise ConfigError(f"{where}: local_add_cond_ids {local_ids} is not supported")
    norm_kwargs = dc.get("norm_kwargs", {}) or {}
    dit = SA3DiTConfig(
        io_channels=int(_get(dc, "io_channels", where)),
        embed_dim=int(_get(dc, "embed_dim", where)),
        depth=int(_get(dc, "depth", where)),
        num_heads=int(_get(dc, "num_heads", where)),
        cond_token_dim=int(_get(dc, "cond_token_dim", where)),
        global_cond_dim=int(_get(dc, "global_cond_dim", where)),
        local_add_cond_dim=int(dc.get("local_add_cond_dim", 0) or 0) if local_ids else 0,
        timestep_features_dim=int(dc.get("timestep_features_dim", 256)),
        ff_mult=float((dc.get("ff_kwargs", {}) or {}).get("mult", 4)),
        num_memory_tokens=int(dc.get("num_memory_tokens", 0)),
        differential=bool(attn.get("differential", False)),
        patch_size=int(dc.get("patch_size", 1)),
        norm_eps=float(norm_kwargs.get("eps", RELEASE_NORM_EPS)),
    )
    if local_ids and dit.local_add_cond_dim != dit.io_channels + 1:
        raise ConfigError(f"{where}: local_add_cond_dim {dit.local_add_cond_dim} != io_channels + 1 (mask + latents)")
    if list(diffusion.get("cross_attention_cond_ids", [])) != ["prompt", "seconds_total"] or list(
        diffusion.get("global_cond_ids", [])
    ) != ["seconds_total"]:
        raise ConfigError(
            f"{where}: SA3 conditions on cross_attention_cond_ids [prompt, seconds_total] and "
            "global_cond_ids [seconds_total]"
        )
    conditioning = _get(model, "conditioning", f"{where}.model")
    configs = list(_get(conditioning, "configs", f"{where}.model.conditioning"))
    prompt = _conditioner(configs, "prompt", where)
    seconds = _conditioner(configs, "seconds_total", where)
    if prompt.get("type") != "t5gemma" or seconds.get("type") != "number":
        raise ConfigError(f"{where}: SA3 needs a t5gemma 'prompt' and a number 'seconds_total' conditioner")
    pc, sc = prompt.get("config", {}), seconds.get("config", {})
    if pc.get("project_out") or int(conditioning.get("cond_dim", 768)) != dit.cond_token_dim:
        raise ConfigError(f"{where}: a projected T5Gemma output is not supported")
    if sc.get("fourier_features_type", "expo") != "expo":
        raise ConfigError(f"{where}: seconds_total needs fourier_features_type 'expo'")
    text = SA3TextConfig(
        model_name=str(pc.get("model_name", "google/t5gemma-b-b-ul2")),
        max_length=int(pc.get("max_length", 128)),
        padding_mode=str(pc.get("padding_mode", "zero")),
        subfolder=str(pc.get("subfolder") or "t5gemma-b-b-ul2"),
    )
    if text.padding_mode not in ("learned", "zero", "none"):
        raise ConfigError(f"{where}: prompt padding_mode {text.padding_mode!r} is not supported")
    duration = SA3DurationConfig(min_val=float(sc.get("min_val", 0)), max_val=float(sc.get("max_val", 1)))
    pre = _get(model, "pretransform", f"{where}.model")
    same = parse_same(
        _get(pre, "config", f"{where}.model.pretransform"), sample_rate, f"{where}.model.pretransform.config"
    )
    if same.latent_dim != dit.io_channels:
        raise ConfigError(
            f"{where}: the autoencoder's {same.latent_dim} latent channels != the DiT's {dit.io_channels}"
        )
    sample_size = raw.get("sample_size")
    max_seconds = float(sample_size) / sample_rate if sample_size else default_max_seconds(dit)
    return SA3Config(
        layout="original",
        sample_rate=sample_rate,
        audio_channels=int(raw.get("audio_channels", 2)),
        max_seconds=max_seconds,
        dit=dit,
        same=same,
        text=text,
        duration=duration,
        objective=objective,
        inpaint=bool(local_ids),
        default_steps=8 if objective == "rf_denoiser" else 100,
    )


def is_sa3_config(raw: Any) -> bool:
    """Does a `model_config.json` describe a Stable Audio 3 model (SAME pretransform, T5Gemma)?"""
    try:
        model = raw["model"]
        enc_type = model["pretransform"]["config"]["encoder"]["type"]
        types = [c.get("type") for c in model["conditioning"]["configs"]]
    except (KeyError, TypeError):
        return False
    return enc_type == "same" and "t5gemma" in types


# ----------------------------------------------------------------------------- diffusers layout


def parse_diffusers(
    transformer: Mapping[str, Any],
    vae: Mapping[str, Any],
    duration: Mapping[str, Any],
    scheduler: Mapping[str, Any],
    mapping_kernel: int = 1,
) -> SA3Config:
    """The `config.json` files of a diffusers-format folder (StableAudio3Pipeline's components).

    diffusers' AutoencoderSAME config cannot say how the released SAME-S attends (chunks of two
    latents, the second half of the layers shifted by one) or that its decoder maps channels with
    a kernel-3 conv. Keys for both are honoured when present (`chunk_size`,
    `chunk_midpoint_shift`, `conv_mapping`); otherwise a decoder whose stored mapping weight has
    kernel 3 (`mapping_kernel`, read from the weights' shapes) is the released SAME-S decoder,
    and the pair is built as SAME-S is released, not as diffusers would run it."""
    t = transformer
    dit = SA3DiTConfig(
        io_channels=int(t.get("io_channels", 256)),
        embed_dim=int(t.get("embed_dim", 1536)),
        depth=int(t.get("depth", 24)),
        num_heads=int(t.get("num_heads", 24)),
        cond_token_dim=int(t.get("cond_token_dim", 768)),
        global_cond_dim=int(t.get("global_cond_dim", 768)),
        local_add_cond_dim=int(t.get("local_add_cond_dim", 257)),
        timestep_features_dim=int(t.get("timestep_features_dim", 256)),
        ff_mult=float(t.get("ff_mult", 4.0)),
        num_memory_tokens=int(t.get("num_memory_tokens", 64)),
        differential=bool(t.get("use_differential_attention", True)),
        patch_size=int(t.get("patch_size", 1)),
        norm_eps=float(t.get("norm_eps", RELEASE_NORM_EPS)),
    )
    chunked = "chunk_size" in vae or mapping_kernel == 3
    conv = bool(vae.get("conv_mapping", vae.get("decoder_conv_mapping", mapping_kernel == 3)))
    window = int(vae.get("sliding_window", 1))
    n = len(vae.get("encoder_strides", (16,)))

    def side(sin_key: str, conv_mapping: bool) -> SAMESide:
        sin = tuple(int(s) for s in vae.get(sin_key, (0,)))
        return check_same_side(
            SAMESide(
                channels=int(vae.get("encoder_channels", 128)),
                c_mults=tuple(int(m) for m in vae.get("encoder_c_mults", (6,))),
                strides=tuple(int(s) for s in vae.get("encoder_strides", (16,))),
                depths=tuple(int(d) for d in vae.get("encoder_transformer_depths", (6,))),
                sinusoidal_blocks=sin if len(sin) == n else sin[:1] * n,
                dim_heads=int(vae.get("dim_heads", 64)),
                differential=bool(vae.get("use_differential_attention", True)),
                ff_mult=float(vae.get("ff_mult", 3)),
                sliding_window=None if chunked else (window, window),
                chunk_size=int(vae.get("chunk_size", 32)),
                chunk_midpoint_shift=bool(vae.get("chunk_midpoint_shift", chunked)),
                conv_mapping=conv_mapping,
            ),
            f"vae/config.json ({sin_key.split('_')[0]})",
        )

    sample_rate = int(vae.get("sampling_rate", 44100))
    same = SAMEConfig(
        audio_channels=int(vae.get("audio_channels", 2)),
        patch_size=int(vae.get("patch_size", 256)),
        latent_dim=int(vae.get("latent_dim", 256)),
        encoder=side("encoder_sinusoidal_blocks", False),
        decoder=side("decoder_sinusoidal_blocks", conv),
        sample_rate=sample_rate,
    )
    if (float(duration.get("min_freq", 0.5)), float(duration.get("max_freq", 10000.0))) != (0.5, 10000.0):
        raise ConfigError("duration_embedder/config.json: only min_freq 0.5 / max_freq 10000 are supported")
    dur = SA3DurationConfig(
        min_val=float(duration.get("min_val", 0.0)),
        max_val=float(duration.get("max_val", 384.0)),
        fourier_dim=int(duration.get("fourier_dim", 256)),
    )
    if int(duration.get("output_dim", dit.global_cond_dim)) != dit.global_cond_dim:
        raise ConfigError("duration_embedder/config.json: output_dim != the transformer's global_cond_dim")
    if float(scheduler.get("shift", 1.0)) != 1.0 or scheduler.get("use_dynamic_shifting"):
        raise ConfigError("scheduler/config.json: shifted sigma schedules are not supported (SA3 uses shift 1)")
    objective = "rf_denoiser" if scheduler.get("stochastic_sampling", True) else "rectified_flow"
    if same.latent_dim != dit.io_channels:
        raise ConfigError(f"vae latent_dim {same.latent_dim} != transformer io_channels {dit.io_channels}")
    return SA3Config(
        layout="diffusers",
        sample_rate=sample_rate,
        audio_channels=same.audio_channels,
        max_seconds=default_max_seconds(dit),
        dit=dit,
        same=same,
        text=SA3TextConfig(),
        duration=dur,
        objective=objective,
        inpaint=dit.local_add_cond_dim > 0,
        default_steps=8 if objective == "rf_denoiser" else 100,
    )
