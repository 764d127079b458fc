"""Model configuration: frozen dataclasses, and the one parser of `model_config.json`.

The JSON format is stable-audio-tools' release format, so public model folders load unchanged.
Layers never read JSON: they take these dataclasses (or plain arguments). Unknown keys that would
change the computation are refused with a `ConfigError` instead of being silently ignored, because
a model that loads but computes something else is worse than one that does not load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .stft_codec_config import PRETRANSFORM_TYPE as STFT_CODEC, STFTCodecConfig, parse_stft_codec

# Keys that stable-audio-tools configs carry but that do not change inference numerics.
_HARMLESS = {"requires_grad", "iterate_batch", "model_half", "chunked", "type"}


def _check_keys(section: str, cfg: Mapping[str, Any], known: set[str]) -> None:
    unknown = set(cfg) - known - _HARMLESS
    if unknown:
        raise ConfigError(f"{section}: unsupported key(s) {sorted(unknown)}; this engine builds only {sorted(known)}")


def _get(section: str, cfg: Mapping[str, Any], key: str, kind: type, default: Any = ...) -> Any:
    if key not in cfg:
        if default is ...:
            raise ConfigError(f"{section}: missing required key '{key}'")
        return default
    value = cfg[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{section}.{key}: expected a list, got {value!r}")
        return tuple(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{section}.{key}: expected {kind.__name__}, got {value!r}")
    return value


@dataclass(frozen=True)
class OobleckConfig:
    """One side (encoder or decoder) of an Oobleck autoencoder."""

    audio_channels: int = 2
    channels: int = 128
    c_mults: tuple[int, ...] = (1, 2, 4, 8, 16)
    strides: tuple[int, ...] = (2, 4, 4, 8, 8)
    latent_dim: int = 128
    use_snake: bool = True
    final_tanh: bool = True
    use_nearest_upsample: bool = False

    @property
    def hop(self) -> int:
        hop = 1
        for s in self.strides:
            hop *= s
        return hop


@dataclass(frozen=True)
class AutoencoderConfig:
    encoder: OobleckConfig
    decoder: OobleckConfig
    bottleneck: str | None  # "vae" or None
    latent_dim: int
    downsampling_ratio: int
    io_channels: int
    scale: float = 1.0
    # stable-audio-tools' "patched" pretransform inside the autoencoder: `patch_size` consecutive
    # samples of each channel folded into channels before the encoder (unfolded after the decoder),
    # so the costly audio-rate layers run at rate / patch_size. 1 = none (every public SAO model).
    patch_size: int = 1


@dataclass(frozen=True)
class DiTConfig:
    """Hyperparameters of the diffusion transformer (stable-audio-tools `dit` + our extensions)."""

    io_channels: int = 64
    embed_dim: int = 1536
    depth: int = 24
    num_heads: int = 24
    cond_token_dim: int = 768
    global_cond_dim: int = 1536
    project_cond_tokens: bool = False
    project_global_cond: bool = True
    global_cond_type: str = "prepend"
    qk_norm: str = "none"  # "none" | "ln" | "l2"
    ff_mult: float = 4.0
    norm_bias: bool = False
    timestep_features_dim: int = 256
    # stable-audio-tools' DiT patching: `patch_size` latent frames folded into one token
    # (`b (t p) c -> b t (c p)`), so attention and MLPs run on 1/patch_size of the frames.
    patch_size: int = 1
    # Longplay extension (off for every public config): self-attention limited to blocks of
    # `attn_window` tokens (latent frames / patch_size; each token sees its own and the two neighbouring blocks, plus
    # the prepended global token) in all layers except `global_layers`, which attend fully.
    # See seeds/000: windowed attention plus a few global layers keeps long context affordable.
    attn_window: int = 0
    global_layers: tuple[int, ...] = ()
    # Longplay extension (off for every public config): beat-phase conditioning. Each latent frame
    # gets its position on a tempo grid (sin/cos of the phase within a 16th, 8th, beat, bar and
    # 4-bar phrase, plus the tempo), projected and added to its token, so a requested BPM is a
    # grid the DiT plays on rather than digits in the prompt it must learn to read.
    beat_phase: bool = False
    # Longplay extension (off for every public config): the last cross-attention token (a one-token
    # condition such as the key) is also projected (zero-init) and added to every token, so the DiT
    # reads it in each token directly instead of finding it by attention among the text tokens.
    add_last_cond_token: bool = False

    @property
    def dim_heads(self) -> int:
        return self.embed_dim // self.num_heads


@dataclass(frozen=True)
class ConditionerSpec:
    id: str
    type: str
    config: Mapping[str, Any] = field(default_factory=dict)
    output_dim: int = 768


@dataclass(frozen=True)
class ModelConfig:
    """A whole `diffusion_cond` model: autoencoder + conditioners + DiT."""

    sample_size: int
    sample_rate: int
    audio_channels: int
    autoencoder: AutoencoderConfig | STFTCodecConfig  # the pretransform: an Oobleck VAE or the STFT codec
    conditioners: tuple[ConditionerSpec, ...]
    dit: DiTConfig
    cross_attention_cond_ids: tuple[str, ...]
    global_cond_ids: tuple[str, ...]
    objective: str  # "v" | "rf_denoiser"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # From the `longplay` block `longplay train package` writes (read here, once): the sampler
    # defaults renders use unless asked otherwise, which VAE latents the DiT learned, and the crop
    # it trained on in latent frames (0: not recorded; renders never sample a shorter window).
    defaults: Mapping[str, Any] = field(default_factory=dict, compare=False)
    learned_latents: str | None = None
    trained_frames: int = 0

    @property
    def latent_rate(self) -> float:
        return self.sample_rate / self.autoencoder.downsampling_ratio

    @property
    def window_frames(self) -> int:
        return self.sample_size // self.autoencoder.downsampling_ratio

    @property
    def window_seconds(self) -> float:
        return self.sample_size / self.sample_rate

    @property
    def least_frames(self) -> int:
        """The shortest window a render or a loop samples: the whole window for a full-attention DiT
        (it trained on nothing else), else the crop it trained on. On a shorter one longplay-mini
        v2 rendered some seeds as the encoded silence (issue 19; `lab/runs/dit-gap/README.md`)."""
        return self.window_frames if not self.dit.attn_window else min(self.trained_frames, self.window_frames)

    def conditioner(self, cond_id: str) -> ConditionerSpec | None:
        for spec in self.conditioners:
            if spec.id == cond_id:
                return spec
        return None


def _parse_oobleck(section: str, block: Mapping[str, Any], encoder: bool) -> OobleckConfig:
    if block.get("type") != "oobleck":
        raise ConfigError(f"{section}.type: only 'oobleck' is supported, got {block.get('type')!r}")
    cfg = block.get("config", {})
    io_key = "in_channels" if encoder else "out_channels"
    known = {
        io_key,
        "channels",
        "c_mults",
        "strides",
        "latent_dim",
        "use_snake",
        "antialias_activation",
        "final_tanh",
        "use_nearest_upsample",
    }
    _check_keys(f"{section}.config", cfg, known)
    if cfg.get("antialias_activation", False):
        raise ConfigError(f"{section}.config.antialias_activation=true is not supported")
    s = f"{section}.config"
    out = OobleckConfig(
        audio_channels=_get(s, cfg, io_key, int, 2),
        channels=_get(s, cfg, "channels", int, 128),
        c_mults=_get(s, cfg, "c_mults", tuple, (1, 2, 4, 8)),
        strides=_get(s, cfg, "strides", tuple, (2, 4, 8, 8)),
        latent_dim=_get(s, cfg, "latent_dim", int, 32),
        use_snake=_get(s, cfg, "use_snake", bool, False),
        final_tanh=_get(s, cfg, "final_tanh", bool, True),
        use_nearest_upsample=_get(s, cfg, "use_nearest_upsample", bool, False),
    )
    if len(out.c_mults) != len(out.strides):
        raise ConfigError(f"{s}: c_mults and strides must have the same length")
    return out


def _parse_patch(section: str, block: Any) -> int:
    """The autoencoder's own pretransform: absent, or `{"type": "patched", "config": {"channels",
    "patch_size"}}` as stable-audio-tools writes it; -> the patch size (1 = none)."""
    if block is None:
        return 1
    if not isinstance(block, Mapping) or block.get("type") != "patched":
        got = block.get("type") if isinstance(block, Mapping) else block
        raise ConfigError(f"{section}.type: only 'patched' is supported, got {got!r}")
    _check_keys(section, block, {"type", "config"})
    conf = _get(section, block, "config", dict)
    _check_keys(f"{section}.config", conf, {"channels", "patch_size"})
    size: int = _get(f"{section}.config", conf, "patch_size", int)
    if size < 1:
        raise ConfigError(f"{section}.config.patch_size must be at least 1, got {size}")
    return size


def parse_autoencoder(cfg: Mapping[str, Any], section: str = "pretransform.config") -> AutoencoderConfig:
    """Parse the autoencoder block (`model.pretransform.config` of a diffusion config)."""
    _check_keys(
        section,
        cfg,
        {
            "encoder",
            "decoder",
            "bottleneck",
            "latent_dim",
            "downsampling_ratio",
            "io_channels",
            "sample_rate",
            "scale",
            "pretransform",
        },
    )
    bottleneck = cfg.get("bottleneck")
    btype = None if bottleneck is None else bottleneck.get("type")
    if btype not in (None, "vae"):
        raise ConfigError(f"{section}.bottleneck.type: only 'vae' is supported, got {btype!r}")
    enc = _parse_oobleck(f"{section}.encoder", _get(section, cfg, "encoder", dict), True)
    dec = _parse_oobleck(f"{section}.decoder", _get(section, cfg, "decoder", dict), False)
    ae = AutoencoderConfig(
        encoder=enc,
        decoder=dec,
        bottleneck=btype,
        latent_dim=_get(section, cfg, "latent_dim", int),
        downsampling_ratio=_get(section, cfg, "downsampling_ratio", int),
        io_channels=_get(section, cfg, "io_channels", int),
        scale=_get(section, cfg, "scale", float, 1.0),
        patch_size=_parse_patch(f"{section}.pretransform", cfg.get("pretransform")),
    )
    p = ae.patch_size
    patch_channels = cfg["pretransform"]["config"].get("channels", ae.io_channels) if p > 1 else ae.io_channels
    if patch_channels != ae.io_channels:
        raise ConfigError(
            f"{section}.pretransform.config.channels is {patch_channels!r}, but io_channels is {ae.io_channels}"
        )
    if enc.hop * p != ae.downsampling_ratio:
        raise ConfigError(
            f"{section}: strides multiply to {enc.hop}"
            + (f" (x patch_size {p})" if p > 1 else "")
            + f", but downsampling_ratio is {ae.downsampling_ratio}"
        )
    for side, conf in (("encoder.config.in_channels", enc), ("decoder.config.out_channels", dec)):
        if conf.audio_channels != ae.io_channels * p:
            raise ConfigError(
                f"{section}.{side} is {conf.audio_channels}, but io_channels {ae.io_channels}"
                + (f" x patch_size {p}" if p > 1 else "")
                + f" needs {ae.io_channels * p}"
            )
    expected_enc_out = ae.latent_dim * (2 if btype == "vae" else 1)
    if enc.latent_dim != expected_enc_out or dec.latent_dim != ae.latent_dim:
        raise ConfigError(
            f"{section}: encoder latent_dim {enc.latent_dim} / decoder latent_dim "
            f"{dec.latent_dim} do not fit latent_dim {ae.latent_dim} with "
            f"bottleneck {btype!r}"
        )
    return ae


def _parse_dit(cfg: Mapping[str, Any]) -> DiTConfig:
    s = "diffusion.config"
    known = {
        "io_channels",
        "embed_dim",
        "depth",
        "num_heads",
        "cond_token_dim",
        "global_cond_dim",
        "project_cond_tokens",
        "project_global_cond",
        "transformer_type",
        "global_cond_type",
        "attn_kwargs",
        "ff_kwargs",
        "norm_kwargs",
        "patch_size",
        "input_concat_dim",
        "prepend_cond_dim",
        "attn_window",
        "global_layers",
        "beat_phase",
        "add_last_cond_token",
    }
    _check_keys(s, cfg, known)
    ttype = cfg.get("transformer_type", "continuous_transformer")
    if ttype != "continuous_transformer":
        raise ConfigError(f"{s}.transformer_type: only 'continuous_transformer' is supported, got {ttype!r}")
    for key, ok in (("input_concat_dim", 0), ("prepend_cond_dim", 0)):
        if cfg.get(key, ok) != ok:
            raise ConfigError(f"{s}.{key}={cfg[key]!r} is not supported (only {ok})")
    attn_kwargs = dict(cfg.get("attn_kwargs", {}))
    _check_keys(f"{s}.attn_kwargs", attn_kwargs, {"qk_norm"})
    qk = attn_kwargs.get("qk_norm", "none")
    qk = {False: "none", True: "l2", None: "none"}.get(qk, qk)
    if qk not in ("none", "ln", "l2"):
        raise ConfigError(f"{s}.attn_kwargs.qk_norm: expected 'none', 'ln' or 'l2', got {qk!r}")
    ff_kwargs = dict(cfg.get("ff_kwargs", {}))
    _check_keys(f"{s}.ff_kwargs", ff_kwargs, {"mult"})
    norm_kwargs = dict(cfg.get("norm_kwargs", {}))
    _check_keys(f"{s}.norm_kwargs", norm_kwargs, {"bias"})
    gtype = cfg.get("global_cond_type", "prepend")
    if gtype != "prepend":
        raise ConfigError(f"{s}.global_cond_type: only 'prepend' is supported, got {gtype!r}")
    dit = DiTConfig(
        io_channels=_get(s, cfg, "io_channels", int),
        embed_dim=_get(s, cfg, "embed_dim", int),
        depth=_get(s, cfg, "depth", int),
        num_heads=_get(s, cfg, "num_heads", int),
        cond_token_dim=_get(s, cfg, "cond_token_dim", int, 0),
        global_cond_dim=_get(s, cfg, "global_cond_dim", int, 0),
        project_cond_tokens=_get(s, cfg, "project_cond_tokens", bool, True),
        project_global_cond=_get(s, cfg, "project_global_cond", bool, True),
        global_cond_type=gtype,
        qk_norm=qk,
        ff_mult=float(ff_kwargs.get("mult", 4)),
        norm_bias=bool(norm_kwargs.get("bias", False)),
        attn_window=_get(s, cfg, "attn_window", int, 0),
        global_layers=_get(s, cfg, "global_layers", tuple, ()),
        patch_size=_get(s, cfg, "patch_size", int, 1),
        beat_phase=_get(s, cfg, "beat_phase", bool, False),
        add_last_cond_token=_get(s, cfg, "add_last_cond_token", bool, False),
    )
    if dit.patch_size < 1:
        raise ConfigError(f"{s}.patch_size must be at least 1, got {dit.patch_size}")
    if dit.embed_dim % dit.num_heads:
        raise ConfigError(f"{s}: embed_dim {dit.embed_dim} is not divisible by num_heads {dit.num_heads}")
    if dit.dim_heads < 32:
        # Rotary embeddings cover max(dim_heads / 2, 32) dims of each head (as the reference).
        raise ConfigError(
            f"{s}: heads of {dit.dim_heads} dims are too narrow; rotary embeddings "
            f"need at least 32 (embed_dim / num_heads)"
        )
    if dit.cond_token_dim:
        ctx = dit.embed_dim if dit.project_cond_tokens else dit.cond_token_dim
        kv_heads = ctx // dit.dim_heads
        if kv_heads == 0 or ctx % dit.dim_heads or dit.num_heads % kv_heads:
            raise ConfigError(
                f"{s}: cross-attention context width {ctx} gives {ctx / dit.dim_heads:g} "
                f"kv heads of {dit.dim_heads}, which cannot be shared by "
                f"{dit.num_heads} query heads"
            )
    return dit


# Sampler defaults a model folder may carry (`longplay.defaults`) and their types.
DEFAULT_KEYS: dict[str, type] = {
    "steps": int,
    "cfg": float,
    "key_cfg": float,
    "sampler": str,
    "sigma_min": float,
    "sigma_max": float,
}


def learned_latents(raw: Any) -> str | None:
    """Which VAE latents a folder's config says its network learned: a DiT's `train_latents` or an
    autoencoder decoder's `decoder_latents` ("sample" or "mean", in the `longplay.train` block
    `longplay train` writes); None when it does not say (every public config: samples)."""
    train = _train_block(raw)
    for key in ("train_latents", "decoder_latents"):
        if train.get(key) in ("sample", "mean"):
            return str(train[key])
    return None


def trained_frames(raw: Any) -> int:
    """The crop a folder's DiT trained on, in latent frames (`longplay.train.crop_frames`), or 0."""
    frames = _train_block(raw).get("crop_frames")
    return frames if isinstance(frames, int) and frames > 0 else 0


def _train_block(raw: Any) -> Mapping[str, Any]:
    """The `longplay.train` block `longplay train` writes into a folder's config ({} when absent)."""
    meta = raw.get("longplay") if isinstance(raw, Mapping) else None
    train = meta.get("train") if isinstance(meta, Mapping) else None
    return train if isinstance(train, Mapping) else {}


def _defaults(raw: Mapping[str, Any]) -> dict[str, Any]:
    meta = raw.get("longplay")
    block = meta.get("defaults", {}) if isinstance(meta, Mapping) else {}
    if not isinstance(block, Mapping):
        raise ConfigError(f"longplay.defaults must be an object, got {type(block).__name__}")
    out: dict[str, Any] = {}
    for key, value in block.items():
        kind = DEFAULT_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"longplay.defaults.{key}: unknown; expected some of {', '.join(DEFAULT_KEYS)}")
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"longplay.defaults.{key} must be {kind.__name__}, got {value!r}")
        out[key] = value
    return out


def parse_model_config(raw: Mapping[str, Any]) -> ModelConfig:
    """Parse a stable-audio-tools `diffusion_cond` model_config.json dict."""
    if not isinstance(raw, Mapping):
        raise ConfigError("model config must be a JSON object")
    if raw.get("model_type") != "diffusion_cond":
        raise ConfigError(f"model_type: only 'diffusion_cond' is supported, got {raw.get('model_type')!r}")
    model = _get("", raw, "model", dict)
    pre = _get("model", model, "pretransform", dict)
    if pre.get("type") not in ("autoencoder", STFT_CODEC):
        raise ConfigError(f"model.pretransform.type: expected 'autoencoder' or '{STFT_CODEC}', got {pre.get('type')!r}")
    pre_cfg = dict(_get("model.pretransform", pre, "config", dict))
    if "scale" in pre:
        pre_cfg["scale"] = pre["scale"]
    ae = parse_autoencoder(pre_cfg) if pre["type"] == "autoencoder" else parse_stft_codec(pre_cfg)

    cond = _get("model", model, "conditioning", dict)
    cond_dim = _get("model.conditioning", cond, "cond_dim", int)
    specs = []
    for i, c in enumerate(_get("model.conditioning", cond, "configs", tuple)):
        if not isinstance(c, Mapping) or "id" not in c or "type" not in c:
            raise ConfigError(f"model.conditioning.configs[{i}]: needs 'id' and 'type'")
        specs.append(
            ConditionerSpec(id=str(c["id"]), type=str(c["type"]), config=dict(c.get("config", {})), output_dim=cond_dim)
        )

    diff = _get("model", model, "diffusion", dict)
    if diff.get("type") != "dit":
        raise ConfigError(f"model.diffusion.type: only 'dit' is supported, got {diff.get('type')!r}")
    dit = _parse_dit(_get("model.diffusion", diff, "config", dict))
    objective = diff.get("diffusion_objective", "v")
    if objective not in ("v", "rf_denoiser"):
        raise ConfigError(f"model.diffusion.diffusion_objective: expected 'v' or 'rf_denoiser', got {objective!r}")
    ids = {s.id for s in specs}
    xattn = tuple(diff.get("cross_attention_cond_ids", ()))
    glob = tuple(diff.get("global_cond_ids", ()))
    for cid in xattn + glob:
        if cid not in ids:
            raise ConfigError(f"model.diffusion: conditioning id {cid!r} is not among the conditioners {sorted(ids)}")
    if glob and dit.global_cond_dim != cond_dim * len(glob):
        raise ConfigError(
            f"diffusion.config.global_cond_dim is {dit.global_cond_dim} but "
            f"{len(glob)} global conditioners of width {cond_dim} give {cond_dim * len(glob)}"
        )
    if dit.add_last_cond_token and not (xattn and dit.cond_token_dim):
        raise ConfigError(
            "diffusion.config.add_last_cond_token needs cross-attention conditioning to take a token from"
        )
    if dit.io_channels != ae.latent_dim:
        raise ConfigError(f"diffusion.config.io_channels {dit.io_channels} != autoencoder latent_dim {ae.latent_dim}")
    sample_size = _get("", raw, "sample_size", int)
    unit = ae.downsampling_ratio * dit.patch_size
    if sample_size % unit:
        raise ConfigError(
            f"sample_size {sample_size} is not a multiple of {unit} (downsampling_ratio "
            f"{ae.downsampling_ratio} x DiT patch_size {dit.patch_size})"
        )
    defaults = _defaults(raw)
    if "key_cfg" in defaults and not dit.add_last_cond_token:
        raise ConfigError(
            "longplay.defaults.key_cfg needs diffusion.config.add_last_cond_token (a key added to every token)"
        )
    return ModelConfig(
        defaults=defaults,
        learned_latents=learned_latents(raw),
        trained_frames=trained_frames(raw),
        sample_size=sample_size,
        sample_rate=_get("", raw, "sample_rate", int),
        audio_channels=_get("", raw, "audio_channels", int),
        autoencoder=ae,
        conditioners=tuple(specs),
        dit=dit,
        cross_attention_cond_ids=xattn,
        global_cond_ids=glob,
        objective=objective,
        raw=raw,
    )
