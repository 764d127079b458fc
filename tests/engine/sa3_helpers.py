"""Test-only: tiny Stable Audio 3 models built in memory, written as release folders, and diffusers'
own SA3 classes to compare them with. No weights on disk, no downloads.

Tiny sizes keep every test in seconds on 2 cores; what they keep from the release is structure:
dim_heads 64 in the DiT (so the release's and diffusers' RoPE widths agree), differential SAME
attention, the +-1-latent band (SAME-L) or two-latent chunks with a midpoint shift (SAME-S), a
kernel-3 decoder mapping, 4 memory tokens, the 1 + latent_dim inpainting input.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from engine.sa3 import SA3Config, SA3DiTConfig, SA3Model, SAMEConfig, SAMESide, convert
from engine.sa3.config import SA3DurationConfig, SA3TextConfig

SAMPLE_RATE = 1024  # with a 32x autoencoder: 32 latent frames per second
TEXT_DIM = 32
MAX_TOKENS = 12

TINY_DIT = SA3DiTConfig(
    io_channels=16,
    embed_dim=128,
    depth=2,
    num_heads=2,
    cond_token_dim=TEXT_DIM,
    global_cond_dim=TEXT_DIM,
    local_add_cond_dim=17,
    timestep_features_dim=32,
    num_memory_tokens=4,
    differential=False,
)
# Stride 16 and 32-frame chunks as released (17 tokens per latent, chunks of two latents); only
# the widths, depths and the patch (2 samples instead of 256) shrink.
BAND = SAMESide(
    channels=16,
    c_mults=(2,),
    strides=(16,),
    depths=(2,),
    sinusoidal_blocks=(1,),
    dim_heads=16,
    differential=True,
    ff_mult=3.0,
    sliding_window=(1, 1),
    chunk_size=32,
    chunk_midpoint_shift=False,
)
CHUNKED = replace(BAND, sliding_window=None, depths=(4,), chunk_midpoint_shift=True)
TINY_SAME_BAND = SAMEConfig(
    audio_channels=2, patch_size=2, latent_dim=16, encoder=BAND, decoder=BAND, sample_rate=SAMPLE_RATE
)
TINY_SAME_CHUNKED = replace(TINY_SAME_BAND, encoder=CHUNKED, decoder=replace(CHUNKED, conv_mapping=True))


def tiny_config(
    differential: bool = False, same: SAMEConfig = TINY_SAME_BAND, layout: str = "original", inpaint: bool = True
) -> SA3Config:
    dit = replace(TINY_DIT, differential=differential, local_add_cond_dim=17 if inpaint else 0)
    return SA3Config(
        layout=layout,
        sample_rate=SAMPLE_RATE,
        audio_channels=2,
        max_seconds=4.0,
        dit=dit,
        same=same,
        text=SA3TextConfig(max_length=MAX_TOKENS),
        duration=SA3DurationConfig(max_val=10.0),
        inpaint=inpaint,
    )


def randomize(module: nn.Module, seed: int) -> None:
    """Random, non-zero, O(1)-scaled values for every parameter (diffusers zero-inits several output
    layers, which would hide whole paths from a comparison)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            r = torch.randn(p.shape, generator=g)
            if leaf == "gamma":
                p.copy_(1 + 0.2 * r)
            elif leaf in ("alpha", "beta", "bias", "scale", "to_scale_shift_gate"):
                p.copy_((1.0 if leaf in ("alpha", "scale") else 0.0) + 0.2 * r)
            elif leaf == "weight_g":
                p.copy_(0.25 + 0.5 * torch.rand(p.shape, generator=g))
            elif leaf == "running_std":
                p.copy_(torch.tensor([1.3]))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 1
                p.copy_(r / math.sqrt(fan_in))
        for name, b in module.named_buffers():
            if name.endswith("running_std"):
                b.copy_(torch.tensor([1.3]))


def tiny_model(seed: int = 0, **kw: Any) -> SA3Model:
    torch.manual_seed(seed)
    model = SA3Model(tiny_config(**kw)).eval()
    randomize(model, seed + 1)
    return model


def rel_err(ours: Tensor, theirs: Tensor) -> float:
    """Max abs difference relative to the reference's max abs."""
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return ((ours.float() - theirs.float()).abs().max() / theirs.float().abs().max().clamp_min(1e-30)).item()


# ------------------------------------------------------------------------------ diffusers' side


def diffusers_vae(model: SA3Model) -> nn.Module:
    """diffusers' AutoencoderSAME with the same weights (band attention, kernel-1 mapping only)."""
    from diffusers import AutoencoderSAME

    cfg = model.config.same
    side = cfg.encoder
    assert side.sliding_window is not None and not cfg.decoder.conv_mapping
    vae = AutoencoderSAME(
        audio_channels=cfg.audio_channels,
        patch_size=cfg.patch_size,
        encoder_channels=side.channels,
        encoder_c_mults=side.c_mults,
        encoder_strides=side.strides,
        encoder_transformer_depths=side.depths,
        latent_dim=cfg.latent_dim,
        use_differential_attention=side.differential,
        dim_heads=side.dim_heads,
        ff_mult=int(side.ff_mult),
        sliding_window=side.sliding_window[0],
        encoder_sinusoidal_blocks=side.sinusoidal_blocks,
        decoder_sinusoidal_blocks=cfg.decoder.sinusoidal_blocks,
        sampling_rate=cfg.sample_rate,
    )
    vae.load_state_dict(model.same.state_dict(), strict=True)  # same key names: ours are diffusers'
    return vae.eval()


def tiny_t5(folder: Path, hidden: int = TEXT_DIM, seed: int = 0) -> Path:
    """A tiny random T5Gemma (full encoder-decoder checkpoint, as released) + a character tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5GemmaConfig, T5GemmaForConditionalGeneration

    torch.manual_seed(seed)
    module = dict(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        vocab_size=64,
    )
    t5 = T5GemmaForConditionalGeneration(T5GemmaConfig(encoder=module, decoder=module, vocab_size=64))
    t5.save_pretrained(str(folder))
    vocab = {
        "<pad>": 0,
        "<eos>": 1,
        "<bos>": 2,
        "<unk>": 3,
        " ": 4,
        **{c: i + 5 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz,0123456789")},
    }
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        model_max_length=MAX_TOKENS,
    )
    fast.save_pretrained(str(folder))
    return folder


def scheduler() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    # Timesteps = sigmas * num_train_timesteps: 1 gives the DiT its RF time in [0, 1].
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0, stochastic_sampling=True)


def diffusers_pipeline(model: SA3Model, t5_dir: Path, kind: str = "t2a") -> Any:
    """diffusers' StableAudio3{,AudioToAudio,Inpaint}Pipeline around copies of `model`'s weights."""
    import diffusers
    from transformers import AutoConfig, AutoTokenizer, T5GemmaEncoderModel

    cls = {
        "t2a": diffusers.StableAudio3Pipeline,
        "a2a": diffusers.StableAudio3AudioToAudioPipeline,
        "inpaint": diffusers.StableAudio3InpaintPipeline,
    }[kind]
    config = AutoConfig.from_pretrained(str(t5_dir))
    config.is_encoder_decoder = False  # the encoder of the released encoder-decoder checkpoint
    encoder = T5GemmaEncoderModel.from_pretrained(str(t5_dir), config=config).eval()
    return cls(
        vae=diffusers_vae(model),
        text_encoder=encoder,
        tokenizer=AutoTokenizer.from_pretrained(str(t5_dir)),
        duration_embedder=copy.deepcopy(model.duration),
        transformer=copy.deepcopy(model.dit),
        scheduler=scheduler(),
    )


# ------------------------------------------------------------------------------ release folders


def _side_json(side: SAMESide, io: str, io_channels: int, latent_dim: int, decoder: bool) -> dict[str, Any]:
    out = {
        io: io_channels,
        "channels": side.channels,
        "c_mults": list(side.c_mults),
        "strides": list(side.strides),
        "latent_dim": latent_dim,
        "transformer_depths": list(side.depths),
        "differential": side.differential,
        "dyt": True,
        "dim_heads": side.dim_heads,
        "variable_stride": True,
        "ff_mult": side.ff_mult,
        "chunk_size": side.chunk_size,
        "chunk_midpoint_shift": side.chunk_midpoint_shift,
        "mask_noise": 0.0,
    }
    if side.sliding_window is not None:
        out["sliding_window"] = list(side.sliding_window)
    if decoder:
        out.update(sinusoidal_blocks=list(side.sinusoidal_blocks), conv_mapping=side.conv_mapping, mask_noise=0.01)
    return out


def original_config_json(cfg: SA3Config) -> dict[str, Any]:
    """The release's `model_config.json` for `cfg` (the shape of stable-audio-3's configs)."""
    s, d = cfg.same, cfg.dit
    patched = s.audio_channels * s.patch_size
    diffusion: dict[str, Any] = {
        "type": "dit",
        "diffusion_objective": cfg.objective,
        "cross_attention_cond_ids": ["prompt", "seconds_total"],
        "global_cond_ids": ["seconds_total"],
        "config": {
            "io_channels": d.io_channels,
            "embed_dim": d.embed_dim,
            "depth": d.depth,
            "num_heads": d.num_heads,
            "cond_token_dim": d.cond_token_dim,
            "project_cond_tokens": True,
            "global_cond_dim": d.global_cond_dim,
            "project_global_cond": True,
            "global_cond_type": "adaLN",
            "timestep_features_type": "expo",
            "timestep_features_dim": d.timestep_features_dim,
            "num_memory_tokens": d.num_memory_tokens,
            "norm_type": "rms_norm",
            "attn_kwargs": {"qk_norm": "rms", "differential": d.differential},
        },
    }
    if cfg.inpaint:
        diffusion["local_add_cond_ids"] = ["inpaint_mask", "inpaint_masked_input"]
        diffusion["config"]["local_add_cond_dim"] = d.local_add_cond_dim
    return {
        "model_type": "diffusion_cond_inpaint",
        "sample_size": int(cfg.max_seconds * cfg.sample_rate),
        "sample_rate": cfg.sample_rate,
        "audio_channels": cfg.audio_channels,
        "model": {
            "io_channels": d.io_channels,
            "pretransform": {
                "type": "autoencoder",
                "config": {
                    "encoder": {
                        "type": "same",
                        "config": _side_json(s.encoder, "in_channels", patched, s.latent_dim, False),
                    },
                    "decoder": {
                        "type": "same",
                        "config": _side_json(s.decoder, "out_channels", patched, s.latent_dim, True),
                    },
                    "bottleneck": {
                        "type": "softnorm",
                        "config": {
                            "dim": s.latent_dim,
                            "noise_augment_dim": 0,
                            "noise_regularize": True,
                            "auto_scale": True,
                        },
                    },
                    "pretransform": {
                        "type": "patched",
                        "config": {"patch_size": s.patch_size, "channels": s.audio_channels},
                    },
                    "latent_dim": s.latent_dim,
                    "downsampling_ratio": s.downsampling_ratio,
                    "io_channels": s.audio_channels,
                },
            },
            "conditioning": {
                "cond_dim": d.cond_token_dim,
                "configs": [
                    {
                        "id": "prompt",
                        "type": "t5gemma",
                        "config": {
                            "max_length": cfg.text.max_length,
                            "padding_mode": cfg.text.padding_mode,
                            "subfolder": cfg.text.subfolder,
                        },
                    },
                    {
                        "id": "seconds_total",
                        "type": "number",
                        "config": {"min_val": cfg.duration.min_val, "max_val": cfg.duration.max_val},
                    },
                ],
            },
            "diffusion": diffusion,
        },
    }


def write_original(model: SA3Model, folder: Path, t5_dir: Path | None = None) -> Path:
    """`model` as an original-layout release folder (model_config.json + model.safetensors [+ T5Gemma])."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    (folder / "model_config.json").write_text(json.dumps(original_config_json(cfg), indent=1))
    parts = {
        convert.DIT: model.dit.state_dict(),
        convert.DURATION: model.duration.state_dict(),
        convert.SAME: model.same.state_dict(),
    }
    sd = convert.to_original(parts, convert.plan(cfg))
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "model.safetensors"))
    if t5_dir is not None:
        import shutil

        shutil.copytree(t5_dir, folder / cfg.text.subfolder)
    return folder


def write_diffusers(model: SA3Model, folder: Path, t5_dir: Path) -> Path:
    """`model` as a diffusers-format folder, written by diffusers' own `save_pretrained`."""
    pipe = diffusers_pipeline(model, t5_dir, "t2a")
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


# ------------------------------------------------------------------------------ LoRA files


def write_lora(
    model: SA3Model,
    path: Path,
    adapter: str = "lora",
    rank: int = 2,
    alpha: float = 4.0,
    seed: int = 0,
    only: str = "",
) -> Path:
    """A LoRA file as the release saves it (`save_lora_safetensors`): float16 tensors named
    `<released layer>.parametrizations.weight.0.<tensor>` for every DiT and conditioner matrix
    (those whose name contains `only`), and the JSON `lora_config` in the metadata. Random values,
    large enough to change a render."""
    from safetensors.torch import save_file

    from engine.sa3 import lora

    g = torch.Generator().manual_seed(seed)
    tensors: dict[str, Tensor] = {}
    for name, layer in lora.release_layers(model.config).items():
        if only not in name:
            continue
        w = getattr(model, layer.part).get_parameter(layer.key)
        fan_out, fan_in = w.shape[0], w[0].numel()
        rows = w.detach().reshape(fan_out, -1).norm(dim=1)
        cols = w.detach().reshape(fan_out, -1).norm(dim=0)
        shapes = {
            "lora_A": (rank, fan_in),
            "lora_B": (fan_out, rank),
            "M_xs": (rank, rank),
        }
        for param in lora.ADAPTERS[adapter]:
            if param.startswith("magnitude"):
                by_rows = param == "magnitude_r" or (param == "magnitude" and adapter.startswith("dora-rows"))
                base = rows if by_rows else cols
                t = base * (1 + 0.1 * torch.randn(base.shape, generator=g))
            else:
                t = torch.randn(shapes[param], generator=g) / math.sqrt(shapes[param][1])
            tensors[name + lora.SUFFIX + param] = t.half()
    config = {"rank": rank, "alpha": alpha, "adapter_type": adapter, "dropout": 0.0, "include": None, "exclude": None}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"lora_config": json.dumps(config)})
    return path
