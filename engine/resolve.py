"""Filling a request's defaults and checking it against a Longplay / Stable Audio Open model
(`Generator.resolve`; Stable Audio 3 models resolve in `engine/sa3/render.py`). Split from
`engine/pipeline.py` to keep the render path short; every door's values end up checked here."""

from __future__ import annotations

import math
import secrets
from dataclasses import replace
from typing import Any

from . import edit, loops, sampling
from .config import ModelConfig
from .errors import LoRAError, RequestError, RequestTooLong
from .limits import LIMITS
from .request import RenderRequest, check_value as _check


def resolve_request(
    req: RenderRequest, cfg: ModelConfig, defaults: dict[str, Any], can_continue: bool, max_seconds: float
) -> RenderRequest:
    """Fill defaults and check every value against what this model can do (`can_continue`: its
    windows can continue each other, up to `max_seconds`); -> the request with every field set."""
    d = defaults
    seconds = req.seconds if req.seconds is not None else min(30.0, cfg.window_seconds)
    _check("bpm", req.bpm, allow_none=True)
    if req.bars is not None and req.edit is None:  # an edit's bars are added to its source
        if req.bpm is None:
            raise RequestError(f"bars needs a bpm {LIMITS['bpm'].describe()} (got None)")
        _check("bars", req.bars)
        _check("beats_per_bar", req.beats_per_bar)
        samples = round(req.bars * req.beats_per_bar * 60 / req.bpm * cfg.sample_rate)
        seconds = samples / cfg.sample_rate
    length = float(seconds)
    values: dict[str, Any] = dict(
        seconds=length,
        steps=int(req.steps if req.steps is not None else d["steps"]),
        cfg=float(req.cfg if req.cfg is not None else d["cfg"]),
        sampler=req.sampler or d["sampler"],
        sigma_min=float(req.sigma_min if req.sigma_min is not None else d["sigma_min"]),
        sigma_max=float(req.sigma_max if req.sigma_max is not None else d["sigma_max"]),
    )
    if not isinstance(req.prompt, str):
        raise RequestError("prompt must be text")
    if not (math.isfinite(length) and length > 0):
        raise RequestError(f"seconds must be a positive number (got {seconds})")
    if length + req.seconds_start > cfg.window_seconds + 1e-6:
        if not can_continue:
            raise RequestTooLong(
                f"seconds {values['seconds']:g} is longer than this model's window of {cfg.window_seconds:.2f} s"
            )
        if req.init_audio or req.seconds_start:
            what = "audio-to-audio" if req.init_audio else "a render with seconds_start"
            raise RequestTooLong(
                f"{what} is limited to this model's window of {cfg.window_seconds:.2f} s (got {values['seconds']:g} s)"
            )
        if length > max_seconds + 1e-6:
            raise RequestTooLong(
                f"seconds {values['seconds']:g} is longer than the longest render, "
                f"{max_seconds:g} s ({cfg.window_seconds:.2f} s windows that continue "
                "each other)"
            )
    _check("steps", values["steps"])
    _check("cfg", values["cfg"])
    if values["sampler"] not in sampling.SAMPLERS:
        raise RequestError(
            f"unknown sampler {values['sampler']!r}; choose one of {', '.join(sorted(sampling.SAMPLERS))}"
        )
    _check("variations", req.variations)
    _check("strength", req.init_strength, "init_strength")
    if req.seed != -1:
        _check("seed", req.seed, what="seed (-1: random)")
    _check("cfg_rescale", req.cfg_rescale)
    if cfg.dit.add_last_cond_token:
        values["key_cfg"] = float(req.key_cfg if req.key_cfg is not None else d.get("key_cfg", values["cfg"]))
        _check("key_cfg", values["key_cfg"])
    elif req.key_cfg is not None:
        raise RequestError("key_cfg needs a model whose DiT adds the key token to every token; this model has none")
    _check("fade_ms", req.fade_ms)
    if req.loop:
        loops.check(req, cfg)
    if req.edit is not None:  # the source's own level and ends are kept (engine/edit.py)
        edit.check(req)
        values.update(loudness=None, fade_ms=0.0)
    if req.lora:
        raise LoRAError("lora needs a Stable Audio 3 model (this model is not one)")
    if req.loudness is not None and not LIMITS["loudness"].contains(req.loudness):
        raise RequestError(
            f"loudness must be {LIMITS['loudness'].describe()}, or None to keep the model's level (got {req.loudness})"
        )
    seed = req.seed if req.seed >= 0 else secrets.randbelow(int(LIMITS["seed"].hi) + 1)
    return replace(req, seed=seed, **values)
