"""Stable Audio 3 model folders: recognise both release layouts, read the config once, load strictly.

Original layout (the `Stability-AI/stable-audio-3` loader; Hugging Face
`stabilityai/stable-audio-3-{small-music,small-sfx,medium}`):

    model_config.json            model_type diffusion_cond_inpaint, SAME pretransform, t5gemma prompt
    model.safetensors            DiT + conditioners + SAME (`model.model.*`, `conditioner.*`, `pretransform.model.*`)
    t5gemma-b-b-ul2/             T5Gemma (config.json, model.safetensors, tokenizer files)

Diffusers layout (`StableAudio3Pipeline.save_pretrained`):

    model_index.json             _class_name StableAudio3Pipeline (or the audio-to-audio / inpaint ones)
    transformer/ vae/ duration_embedder/    config.json + diffusion_pytorch_model.safetensors (or shards)
    scheduler/scheduler_config.json
    text_encoder/ tokenizer/     T5Gemma encoder and tokenizer

A folder holding both is read as the original layout (its config says more). Either way the text
encoder is looked up in `t5gemma-b-b-ul2/`, `text_encoder/` + `tokenizer/`, or a path the caller
gives. Modules are built on the meta device and the weights assigned into them, so a load holds
one copy of the weights and spends no time on random initialisation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checkpoint import read_config, read_state_dict
from ..errors import ConfigError, ModelLoadError
from . import convert
from .config import SA3Config
from .layouts import is_sa3_config, parse_diffusers, parse_original
from .model import SA3Model
from .same import reset_rope_buffers
from .text import SA3TextEncoder, find_text_encoder

ORIGINAL, DIFFUSERS = "original", "diffusers"
DIFFUSERS_PARTS = ("transformer", "vae", "duration_embedder")
WEIGHTS = "diffusion_pytorch_model"


def _json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path} is not a JSON object")
    return raw


def detect_layout(folder: str | os.PathLike[str]) -> str | None:
    """ "original", "diffusers" or None (not a Stable Audio 3 folder). Reads only small JSON files."""
    path = Path(folder)
    cfg = path / "model_config.json"
    if cfg.is_file():
        try:
            if is_sa3_config(json.loads(cfg.read_text(encoding="utf-8"))):
                return ORIGINAL
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            pass
    index = path / "model_index.json"
    if index.is_file():
        try:
            name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return None
        if isinstance(name, str) and name.startswith("StableAudio3"):
            return DIFFUSERS
    return None


def is_sa3_folder(folder: str | os.PathLike[str]) -> bool:
    return detect_layout(folder) is not None


def _part_weights(folder: Path, part: str) -> list[Path]:
    """The safetensors file(s) of a diffusers component: one file, a sharded index, or an fp16 variant."""
    sub = folder / part
    for name in (f"{WEIGHTS}.safetensors", f"{WEIGHTS}.fp16.safetensors"):
        if (sub / name).is_file():
            return [sub / name]
    for name in (f"{WEIGHTS}.safetensors.index.json", f"{WEIGHTS}.fp16.safetensors.index.json"):
        if (sub / name).is_file():
            shards = sorted(set(_json(sub / name).get("weight_map", {}).values()))
            missing = [s for s in shards if not (sub / s).is_file()]
            if missing or not shards:
                raise ModelLoadError(f"{sub / name} lists shard(s) that are not there: {missing[:1] or 'none'}")
            return [sub / s for s in shards]
    raise ModelLoadError(
        f"{folder} is a diffusers-format Stable Audio 3 folder but {part}/ holds no {WEIGHTS}.safetensors"
    )


def _read_safetensors(paths: list[Path]) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    out: dict[str, Tensor] = {}
    for p in paths:
        try:
            out.update(load_file(str(p)))
        except Exception as exc:  # noqa: BLE001 - any reader failure is a corrupt file to the user
            raise ModelLoadError(f"{p} could not be read: {exc}") from exc
    return out


def _mapping_kernel(paths: list[Path]) -> int:
    """Kernel of the first decoder block's channel mapping, read from the safetensors header."""
    from safetensors import safe_open

    for p in paths:
        with safe_open(str(p), framework="pt") as f:
            if "decoder.blocks.0.mapping.weight_v" in f.keys():
                return int(f.get_slice("decoder.blocks.0.mapping.weight_v").get_shape()[-1])
    return 1


def read_sa3_config(folder: str | os.PathLike[str]) -> SA3Config:
    """Parse a folder's config (either layout) into an `SA3Config`, reading each JSON file once; a
    folder that is not Stable Audio 3, or a config this engine cannot build, is a ModelLoadError."""
    path = Path(folder)
    try:
        if (path / "model_config.json").is_file():
            raw = read_config(path)
            if is_sa3_config(raw):
                return parse_original(raw)
        if (path / "model_index.json").is_file():
            name = _json(path / "model_index.json").get("_class_name", "")
            if isinstance(name, str) and name.startswith("StableAudio3"):
                missing = [p for p in DIFFUSERS_PARTS if not (path / p / "config.json").is_file()]
                if missing:
                    raise ModelLoadError(
                        f"{path} is a diffusers-format Stable Audio 3 folder but lacks "
                        f"{', '.join(m + '/config.json' for m in missing)}"
                    )
                sched = path / "scheduler" / "scheduler_config.json"
                return parse_diffusers(
                    _json(path / "transformer" / "config.json"),
                    _json(path / "vae" / "config.json"),
                    _json(path / "duration_embedder" / "config.json"),
                    _json(sched) if sched.is_file() else {},
                    _mapping_kernel(_part_weights(path, "vae")),
                )
    except ConfigError as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc
    raise ModelLoadError(
        f"{path} is not a Stable Audio 3 folder: no model_config.json with a SAME autoencoder and "
        "a t5gemma prompt, and no model_index.json of a StableAudio3 pipeline"
    )


def text_encoder_candidates(folder: Path, cfg: SA3Config) -> list[tuple[Path, Path]]:
    sub = folder / cfg.text.subfolder
    pairs = [(folder / "text_encoder", folder / "tokenizer"), (sub, sub)]
    return pairs[::-1] if cfg.layout == ORIGINAL else pairs


def load_strict(module: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Assign `state` into `module` (built on the meta device); any missing, unexpected or
    mis-shaped key is a ModelLoadError naming it."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), first: {missing[0]!r}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), first: {unexpected[0]!r}")
        if bad:
            k = bad[0]
            parts.append(f"key {k!r} has shape {tuple(state[k].shape)}, the config needs {tuple(own[k].shape)}")
        raise ModelLoadError(f"{source} does not fit its config: " + "; ".join(parts))
    as_float = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    module.load_state_dict(as_float, strict=True, assign=True)


def build_empty(cfg: SA3Config) -> SA3Model:
    """An `SA3Model` with every tensor on the meta device (shapes only)."""
    with torch.device("meta"):
        return SA3Model(cfg)


def load_sa3(
    folder: str | os.PathLike[str],
    text_encoder: str | os.PathLike[str] | None = None,
    require_text_encoder: bool = True,
) -> SA3Model:
    """Load a Stable Audio 3 folder (either layout) onto the CPU in float32, in eval mode.

    With `require_text_encoder=False` a folder without its T5Gemma still loads, for rendering from
    prompt embeddings; otherwise a missing encoder or tokenizer is a TextEncoderMissingError."""
    path = Path(folder)
    cfg = read_sa3_config(path)
    enc_tok = None
    if require_text_encoder or text_encoder is not None:
        enc_tok = find_text_encoder(
            path, text_encoder_candidates(path, cfg), Path(text_encoder) if text_encoder else None
        )
    model = build_empty(cfg)
    parts: dict[str, dict[str, Tensor]]
    if cfg.layout == ORIGINAL:
        sd = read_state_dict(path)
        parts = convert.convert(sd, convert.plan(cfg), str(path))
        del sd
    else:
        parts = {
            convert.DIT: _read_safetensors(_part_weights(path, "transformer")),
            convert.DURATION: _read_safetensors(_part_weights(path, "duration_embedder")),
            convert.SAME: _read_safetensors(_part_weights(path, "vae")),
        }
    modules = {convert.DIT: model.dit, convert.DURATION: model.duration, convert.SAME: model.same}
    convert.fill_defaults(parts, cfg, {k: m.state_dict() for k, m in modules.items()})
    for name, module in modules.items():
        where = (
            str(path)
            if cfg.layout == ORIGINAL
            else str(path / {"dit": "transformer", "duration": "duration_embedder", "same": "vae"}[name])
        )
        load_strict(module, parts.pop(name), where)
    reset_rope_buffers(model.same)
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise ModelLoadError(f"{path}: tensor {leftover[0]!r} was not loaded")
    if enc_tok is not None:
        model.text = SA3TextEncoder(
            enc_tok[0], enc_tok[1], cfg.text.max_length, cap_to_tokenizer=cfg.layout == DIFFUSERS
        )
    model.folder = path
    return model.eval().requires_grad_(False)
