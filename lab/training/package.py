"""Packaging a trained model folder for shipping: float16 weights, sampler defaults, and a decoder
trained on after the latents were encoded (Oobleck or STFT codec) swapped in, refused when its
encoder is not the one the DiT learned from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint import save_model
from engine.config import parse_model_config
from engine.errors import ConfigError
from engine.model import build_model

from .autoencoder import load_autoencoder
from .errors import TrainingError


def package_model(
    model_dir: str | Path,
    out_dir: str | Path,
    ae_dir: str | Path | None = None,
    half: bool = True,
    description: str | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Path:
    """A trained model folder -> a shippable one: optionally with the autoencoder of `ae_dir`
    swapped in (a decoder trained on after the latents were encoded: its encoder must be the same,
    so the latent space the DiT learned is unchanged), weights stored as float16 when `half`,
    and sampler `defaults` (steps, cfg, sampler, ...) that renders use when a request leaves them unset."""
    from engine.checkpoint import load_model, load_state_dict_strict

    model = load_model(model_dir)
    if ae_dir is not None:
        ae, ae_raw = load_autoencoder(ae_dir)
        own = {k: v.clone() for k, v in model.pretransform.model.state_dict().items()}
        new = ae.state_dict()
        codec = ae_raw["model_type"] == "stft_codec"
        encoder = ("enc_",) if codec else ("encoder.",)
        changed = [
            k
            for k in own
            if k.startswith(encoder)
            and (k not in new or own[k].shape != new[k].shape or not torch.equal(own[k], new[k]))
        ]
        if changed:
            raise TrainingError(
                f"{ae_dir}: its encoder differs from the one the DiT was trained on "
                f"(first: {changed[0]}); only a decoder trained with the encoder frozen fits"
            )
        raw = json.loads(json.dumps(model.config.raw))
        pre = raw["model"]["pretransform"]["config"]
        rebuild = codec and ae_raw["model"] != {k: v for k, v in pre.items() if k != "scale"}
        if codec:  # the same encoder (checked above): the codec's decoder config comes with it
            raw["model"]["pretransform"]["config"] = {**ae_raw["model"], "scale": pre.get("scale", 1.0)}
        elif ae_raw["model"]["decoder"] != pre["decoder"]:  # a resized decoder (train ae --decoder-channels)
            if {k: v for k, v in ae_raw["model"].items() if k != "decoder"} != {
                k: v for k, v in pre.items() if k not in ("decoder", "scale")
            }:
                raise TrainingError(f"{ae_dir}: its latent format differs from the model's; only its decoder may")
            pre["decoder"] = ae_raw["model"]["decoder"]
            rebuild = True
        if rebuild:
            keep = {k: v for k, v in model.state_dict().items() if not k.startswith("pretransform.model.")}
            model = build_model(raw)
            load_state_dict_strict(
                model, {**keep, **{"pretransform.model." + k: v for k, v in new.items()}}, source=str(ae_dir)
            )
        else:
            load_state_dict_strict(model.pretransform.model, new, source=str(ae_dir))  # names a misfit key
    extra: dict[str, Any] = {}
    if description is not None:
        extra["description"] = description
    if ae_dir is not None:
        extra["decoder_from"] = str(ae_dir)
    if defaults:
        old = model.config.raw.get("longplay", {}).get("defaults", {})
        extra["defaults"] = {**old, **defaults}
        raw = json.loads(json.dumps(model.config.raw))
        raw["longplay"] = {**raw.get("longplay", {}), "defaults": extra["defaults"]}
        try:  # refused before anything is written (e.g. key_cfg for a model without an added key)
            parse_model_config(raw)
        except ConfigError as err:
            raise TrainingError(f"the defaults do not fit this model: {err}") from err
    return save_model(model, out_dir, extra, dtype=torch.float16 if half else None)
