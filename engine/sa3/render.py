"""Stable Audio 3 behind `engine.Generator`: a `RenderRequest` rendered with an `SA3Model`.

`Generator(model)` hands an `SA3Model` (what `engine.load_model` returns for an SA3 folder) to
`SA3Renderer`, so every door (CLI, OSC, drop folder, app) renders SA3 through the same
`Generator.render(request, on_progress, cancel)` call. What it does, and where it differs from the
Longplay/Stable Audio Open path in `engine/pipeline.py`:

- defaults: the model's own sampler (ping-pong for distilled checkpoints, Euler for base ones),
  its step count (8 for the distilled ones) and cfg 1 (guidance off, as released);
- one window: a request longer than the model's longest render (`SA3Config.max_seconds`) is a
  `RequestTooLong` (long renders through inpainting are not wired yet); `seconds_start`,
  `cfg_rescale`, `cfg_interval` and other samplers are refused, since SA3 has none of them;
- bar-exact length, negations moved into the negative prompt, fades and loudness as the pipeline;
- audio-to-audio: strength is the release's `init_noise_level` itself (see `init_noise_level`).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ..audio_io import conform, fade_edges, load_audio, normalize_loudness
from ..errors import RenderCancelled, RequestError, RequestTooLong
from ..limits import LIMITS
from ..pipeline import INIT_READ_MARGIN_S, _filled, _replace
from ..request import Progress, ProgressFn, RenderRequest, RenderResult, check_value as _check, split_negations
from .model import SA3Model

MODEL_KIND = "stable-audio-3"
_SAMPLE_SHARE = 0.9  # share of a variation's progress spent sampling, as the pipeline's


def sa3_defaults(model: SA3Model) -> dict[str, Any]:
    """What an unset request field takes (the keys `engine.model_defaults` gives for other models)."""
    c = model.config
    return {
        "sampler": "pingpong" if c.distilled else "euler",
        "steps": c.default_steps,
        "cfg": 1.0,
        "sigma_min": 0.0,
        "sigma_max": 1.0,
    }


def init_noise_level(strength: float) -> float:
    """Audio-to-audio strength -> the release's `init_noise_level`: the same number.

    SA3 is a rectified flow: sampling starts at time t = `init_noise_level` from
    `(1 - t) * source + t * noise`, so t is already the share of noise mixed into the source, and the
    release documents it as a linear dial (0.1 a close variation, 0.5 halfway between the source and
    a fresh render, 1.0 the source forgotten; `docs/workflows/inference.md`). Strength 0 returns the
    source through the autoencoder without sampling (the release does not accept 0)."""
    return float(strength)


class SA3Renderer:
    """Renders `RenderRequest`s with one `SA3Model` on one device (what `Generator` delegates to)."""

    def __init__(self, model: SA3Model, device: torch.device, precision: str = "auto") -> None:
        self.device = device
        self.precision = precision
        self.model = model.to(device).eval()
        self.defaults = sa3_defaults(model)

    @property
    def max_seconds(self) -> float:
        return float(self.model.config.max_seconds)

    def resolve(self, req: RenderRequest) -> RenderRequest:
        """Fill defaults and check every value against what this model can do."""
        c, d = self.model.config, self.defaults
        seconds = req.seconds if req.seconds is not None else min(30.0, c.max_seconds)
        _check("bpm", req.bpm, allow_none=True)
        if req.bars is not None:
            if req.bpm is None:
                raise RequestError("bars needs a bpm (got None)")
            _check("bars", req.bars)
            _check("beats_per_bar", req.beats_per_bar)
            seconds = round(req.bars * req.beats_per_bar * 60 / req.bpm * c.sample_rate) / c.sample_rate
        length = float(seconds)
        if not isinstance(req.prompt, str):
            raise RequestError("prompt must be text")
        if not (np.isfinite(length) and length > 0):
            raise RequestError(f"seconds must be a positive number (got {seconds})")
        if length > c.max_seconds + 1e-6:
            raise RequestTooLong(
                f"seconds {length:g} is longer than this Stable Audio 3 model's longest render, "
                f"{c.max_seconds:g} s (longer renders through inpainting are not available yet)"
            )
        sampler = req.sampler or d["sampler"]
        if sampler != d["sampler"]:
            raise RequestError(f"this Stable Audio 3 model samples with {d['sampler']} only (got {sampler!r})")
        for name, unset in (("seconds_start", req.seconds_start == 0), ("cfg_rescale", req.cfg_rescale == 0)):
            if not unset:
                raise RequestError(f"{name} is not available with Stable Audio 3 models")
        if req.cfg_interval is not None:
            raise RequestError("cfg_interval is not available with Stable Audio 3 models")
        values: dict[str, Any] = dict(
            seconds=length,
            steps=int(req.steps if req.steps is not None else d["steps"]),
            cfg=float(req.cfg if req.cfg is not None else d["cfg"]),
            sampler=sampler,
            sigma_min=d["sigma_min"],
            sigma_max=d["sigma_max"],
        )
        _check("steps", values["steps"])
        _check("cfg", values["cfg"])
        _check("variations", req.variations)
        _check("strength", req.init_strength, "init_strength")
        if req.seed != -1:
            _check("seed", req.seed, what="seed (-1: random)")
        _check("fade_ms", req.fade_ms)
        if req.loudness is not None:
            _check("loudness", req.loudness)
        seed = req.seed if req.seed >= 0 else secrets.randbelow(int(LIMITS["seed"].hi) + 1)
        return _replace(req, seed=seed, **values)

    def render(
        self, request: RenderRequest, on_progress: ProgressFn | None = None, cancel: threading.Event | None = None
    ) -> list[RenderResult]:
        """Render `request.variations` files; variation i uses seed `seed + i`."""
        req = self.resolve(request)
        cancel = cancel or threading.Event()
        report = on_progress or (lambda p: None)
        init = self._init_audio(req) if req.init_audio else None
        results = [self._render_one(req, v, init, report, cancel) for v in range(req.variations)]
        report(Progress("done", 1, 1, req.variations, req.variations, 1.0))
        return results

    def _init_audio(self, req: RenderRequest) -> torch.Tensor:
        """The init audio `[C, N]` at the model's rate: only what the sampled latents cover is read."""
        c = self.model.config
        n = self.model.latent_frames(_filled(req.seconds)) * c.same.downsampling_ratio
        audio, sr = load_audio(
            _filled(req.init_audio), seconds=n / c.sample_rate + INIT_READ_MARGIN_S, channels=c.audio_channels
        )
        return torch.from_numpy(conform(audio, sr, c.sample_rate, c.audio_channels)[:, :n].copy())

    @torch.no_grad()
    def _render_one(
        self, req: RenderRequest, v: int, init: torch.Tensor | None, report: ProgressFn, cancel: threading.Event
    ) -> RenderResult:
        model, c = self.model, self.model.config
        seconds, steps, n = _filled(req.seconds), _filled(req.steps), req.variations
        seed = req.seed + v
        t0 = time.perf_counter()

        def check() -> None:
            if cancel.is_set():
                raise RenderCancelled("render cancelled")

        def on_event(info: dict[str, Any]) -> None:
            check()
            if info.get("stage") == "sampling":
                i = int(info["i"]) + 1
                report(Progress("sampling", i, steps, v, n, (v + _SAMPLE_SHARE * i / steps) / n))

        check()
        report(Progress("conditioning", 0, steps, v, n, v / n))
        prompt, negated = split_negations(req.prompt)
        negative = ", ".join(([req.negative.strip()] if req.negative.strip() else []) + negated)
        level_in = init_noise_level(req.init_strength) if init is not None else None
        if init is not None and level_in == 0.0:  # strength 0: the source, through the autoencoder
            report(Progress("sampling", 0, 0, v, n, v / n))
            latents = model.encode_audio(init, model.latent_frames(seconds))
        else:
            report(Progress("sampling", 0, steps, v, n, v / n))
            latents = model.generate(
                prompt,
                seconds,
                seed=seed,
                steps=steps,
                cfg=_filled(req.cfg),
                negative=negative or None,
                init_audio=init,
                init_noise_level=level_in,
                callback=on_event,
                precision=self.precision,
                decode=False,
            )
        check()
        report(Progress("decoding", 0, 1, v, n, (v + _SAMPLE_SHARE) / n))
        keep = int(round(seconds * c.sample_rate))
        decoded = model.decode(latents, callback=lambda _: check(), precision=self.precision)[0]  # [C, N]
        audio = decoded[:, :keep].float().clamp(-1.0, 1.0).cpu().numpy()
        if audio.shape[1] < keep:  # a render at the very end of the window: latents end a few samples short
            audio = np.pad(audio, ((0, 0), (0, keep - audio.shape[1])))
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        fade_edges(audio, round(req.fade_ms * c.sample_rate / 1000))
        level = normalize_loudness(audio, c.sample_rate, req.loudness)[1] if req.loudness is not None else {}
        report(Progress("decoding", 1, 1, v, n, (v + 1) / n))
        recipe = {
            **asdict(req),
            **level,
            "seed": seed,
            "variation": v,
            "sample_rate": c.sample_rate,
            "model_kind": MODEL_KIND,
            **({"init_noise_level": level_in} if level_in is not None else {}),
            **({"conditioned_on": {"prompt": prompt, "negative": negative}} if negated else {}),
            "render_seconds": round(time.perf_counter() - t0, 3),
            "device": str(self.device),
        }
        recipe.pop("variations", None)
        return RenderResult(audio, c.sample_rate, seed, keep / c.sample_rate, v, recipe)
