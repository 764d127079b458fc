"""Stable Audio 3 behind `engine.Generator`: a `RenderRequest` rendered with an `SA3Model`.

`Generator(model)` hands an `SA3Model` (what `engine.load_model` returns for an SA3 folder) to
`SA3Renderer`, so every door (CLI, OSC, drop folder, app) renders SA3 through the same
`Generator.render(request, on_progress, cancel)` call. What it does, and where it differs from the
Longplay/Stable Audio Open path in `engine/pipeline.py`:

- defaults: the model's own sampler (ping-pong for distilled checkpoints, Euler for base ones),
  its step count (8 for the distilled ones) and cfg 1 (guidance off, as released);
- long renders: past the model's longest render (`SA3Config.max_seconds`), windows continue each
  other through the DiT's inpainting input (`engine/sa3/longform.py`), up to
  `longform.MAX_LONG_SECONDS`; a model without that input stays at one window (`RequestTooLong`);
  `seconds_start`, `cfg_rescale`, `cfg_interval` and other samplers are refused (SA3 has none);
- LoRA: the request's release LoRA files merged into the DiT for this render only (`lora.py`);
- bar-exact length, negations moved into the negative prompt, fades and loudness as the pipeline;
- audio-to-audio: strength is the release's `init_noise_level` itself (see `init_noise_level`);
- extend and replace (`RenderRequest.edit`): through the DiT's inpainting input (`engine/sa3/edit.py`),
  with `engine/edit.py`'s bars, checks, splice and recipe keys.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from .. import edit as shared_edit, groove, longform as shared_longform
from ..audio_io import conform, fade_edges, load_audio, normalize_loudness
from ..errors import LoRAError, RenderCancelled, RequestError, RequestTooLong
from ..limits import LIMITS
from ..pipeline import INIT_READ_MARGIN_S, _filled, _replace
from ..request import (
    SAMPLE_SHARE,
    Progress,
    ProgressFn,
    RenderRequest,
    RenderResult,
    check_value as _check,
    grid_bpm,
    prompt_bpm,
    prompts,
)
from . import edit, longform, lora
from .model import SA3Model, _row

MODEL_KIND = "stable-audio-3"


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


def check_lora(entries: object) -> tuple[tuple[str, float], ...]:
    """The request's `lora` as `((path, scale), ...)`: at most `MAX_LORAS` files, each path text and
    each scale within `LIMITS["lora_scale"]` (the files themselves are read at render time)."""
    if not isinstance(entries, (tuple, list)):
        raise LoRAError(f"lora must be a list of (path, scale) pairs (got {type(entries).__name__})")
    if not LIMITS["loras"].contains(len(entries)):
        raise LoRAError(f"lora: at most {int(LIMITS['loras'].hi)} files (got {len(entries)})")
    out = []
    for entry in entries:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str) and entry[0]):
            raise LoRAError(f"lora entries must be (path, scale) pairs (got {entry!r})")
        path, scale = entry
        if not LIMITS["lora_scale"].contains(scale):
            raise LoRAError(f"lora scale of {path} must be {LIMITS['lora_scale'].describe()} (got {scale})")
        out.append((path, float(scale)))
    return tuple(out)


@dataclass(frozen=True)
class Source:
    """Audio-to-audio's source: its audio `[C, N]` at the model's rate, the recipe's `source_tempo`
    (what `engine.groove.prepare` heard, or None) and the BPM it plays at (heard, or the asked one
    it was stretched to; None without a clear beat)."""

    audio: torch.Tensor
    tempo: dict[str, Any] | None
    bpm: float | None


class SA3Renderer:
    """Renders `RenderRequest`s with one `SA3Model` on one device (what `Generator` delegates to)."""

    def __init__(self, model: SA3Model, device: torch.device, precision: str = "auto") -> None:
        self.device = device
        self.precision = precision
        self.model = model.to(device).eval()
        self.defaults = sa3_defaults(model)
        self._svd: lora.SVDCache = {}  # LoRA-XS bases of this model's weights, computed once each

    def can_continue(self) -> bool:
        """Renders past the window need the DiT's inpainting input (the released models have it)."""
        return bool(self.model.config.inpaint)

    @property
    def max_seconds(self) -> float:
        """The longest render: `MAX_LONG_SECONDS` when windows can continue each other, else the window."""
        window = float(self.model.config.max_seconds)
        return max(window, shared_longform.MAX_LONG_SECONDS) if self.can_continue() else window

    def resolve(self, req: RenderRequest) -> RenderRequest:
        """Fill defaults and check every value against what this model can do."""
        c, d = self.model.config, self.defaults
        seconds = req.seconds if req.seconds is not None else min(30.0, c.max_seconds)
        _check("bpm", req.bpm, allow_none=True)
        if req.bars is not None and req.edit is None:  # an edit's bars are added to its source
            if req.bpm is None:
                raise RequestError("bars needs a bpm (got None)")
            _check("bars", req.bars)
            _check("beats_per_bar", req.beats_per_bar)
            seconds = round(req.bars * req.beats_per_bar * 60 / req.bpm * c.sample_rate) / c.sample_rate
        length = float(seconds)
        if not isinstance(req.prompt, str):
            raise RequestError("prompt must be text")
        if req.edit is not None:  # engine/edit.py's checks, then this model's inpainting input
            shared_edit.check(req)
            edit.require_inpainting(self.model, req.edit)
        if not (np.isfinite(length) and length > 0):
            raise RequestError(f"seconds must be a positive number (got {seconds})")
        if length > c.max_seconds + 1e-6:
            if not self.can_continue():
                raise RequestTooLong(
                    f"seconds {length:g} is longer than this Stable Audio 3 model's longest render, "
                    f"{c.max_seconds:g} s (its DiT has no inpainting input, so windows cannot continue each other)"
                )
            if req.init_audio:
                raise RequestTooLong(
                    f"audio-to-audio is limited to this model's window of {c.max_seconds:g} s (got {length:g} s)"
                )
            if length > self.max_seconds + 1e-6:
                raise RequestTooLong(
                    f"seconds {length:g} is longer than the longest render, {self.max_seconds:g} s "
                    f"({c.max_seconds:g} s windows that continue each other)"
                )
        sampler = req.sampler or d["sampler"]
        if sampler != d["sampler"]:
            raise RequestError(f"this Stable Audio 3 model samples with {d['sampler']} only (got {sampler!r})")
        for name, unset in (
            ("seconds_start", req.seconds_start == 0),
            ("cfg_rescale", req.cfg_rescale == 0),
            ("key_cfg", req.key_cfg is None),
        ):
            if not unset:
                raise RequestError(f"{name} is not available with Stable Audio 3 models")
        if req.cfg_interval is not None:
            raise RequestError("cfg_interval is not available with Stable Audio 3 models")
        if getattr(req, "loop", False):  # engine/loops.py is the Longplay path's
            raise RequestError("loop is not available with Stable Audio 3 models")
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
        if req.edit is not None:  # the source's own level and ends are kept (engine/edit.py)
            values.update(loudness=None, fade_ms=0.0)
        seed = req.seed if req.seed >= 0 else secrets.randbelow(int(LIMITS["seed"].hi) + 1)
        return _replace(req, seed=seed, lora=check_lora(req.lora), **values)

    def render(
        self, request: RenderRequest, on_progress: ProgressFn | None = None, cancel: threading.Event | None = None
    ) -> list[RenderResult]:
        """Render `request.variations` files; variation i uses seed `seed + i`."""
        req = self.resolve(request)
        cancel = cancel or threading.Event()
        report = on_progress or (lambda p: None)
        init = self._init_audio(req) if req.init_audio else None
        loras = [(lora.read_lora(path, self.model.config, self.model), scale) for path, scale in req.lora]
        with lora.applied(self.model, self.model.config, loras, self._svd):  # merged once, for all variations
            if req.edit is not None:
                results = edit.render(self, req, loras, report, cancel)
            else:
                results = [self._render_one(req, v, init, loras, report, cancel) for v in range(req.variations)]
        report(Progress("done", 1, 1, req.variations, req.variations, 1.0))
        return results

    def _init_audio(self, req: RenderRequest) -> Source:
        """The init audio `[C, N]` at the model's rate, heard first (`engine.groove.prepare`, the
        Longplay path's: its tempo and phase; stretched to a BPM the request names). Only what the
        sampled latents cover is read (more when it is to be sped up). Heard at the file's own
        rate, before resampling: a model at a low rate would hear a kick only below its Nyquist."""
        c = self.model.config
        n = self.model.latent_frames(_filled(req.seconds)) * c.same.downsampling_ratio
        read = n / c.sample_rate * (1 + groove.DEFAULT.max_stretch) + INIT_READ_MARGIN_S
        audio, sr = load_audio(_filled(req.init_audio), seconds=read, channels=c.audio_channels)
        audio, tempo, bpm, _ = groove.prepare(audio, sr, grid_bpm(req), req.beats_per_bar, _filled(req.seconds))
        audio = conform(audio, sr, c.sample_rate, c.audio_channels)[:, :n]
        return Source(torch.from_numpy(np.ascontiguousarray(audio)), tempo, bpm)

    @torch.no_grad()
    def _render_one(
        self,
        req: RenderRequest,
        v: int,
        init: Source | None,
        loras: list[tuple[lora.LoRAFile, float]],
        report: ProgressFn,
        cancel: threading.Event,
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
                i, total = int(info["i"]) + 1, int(info.get("steps", steps))  # all windows' steps
                report(Progress("sampling", i, total, v, n, (v + SAMPLE_SHARE * i / total) / n))

        check()
        report(Progress("conditioning", 0, steps, v, n, v / n))
        said = prompts(req)
        if init is not None and init.bpm is not None and prompt_bpm(said.prompt) is None:
            # No tempo grid in this DiT: the tempo the source plays at is named in the prompt, as
            # its training captions name one ("..., 124 BPM").
            said = replace(said, prompt=f"{said.prompt}, {init.bpm:.0f} BPM", moved=True)
        prompt, negative = said.prompt, said.negative
        level_in = init_noise_level(req.init_strength) if init is not None else None
        source = init.audio if init is not None else None
        long = seconds > c.max_seconds + 1e-6
        windows = len(longform.plan(model, seconds)) if long else 1
        if source is not None and level_in == 0.0:  # strength 0: the source, through the autoencoder
            report(Progress("sampling", 0, 0, v, n, v / n))
            latents = model.encode_audio(source, model.latent_frames(seconds))
        elif long:
            report(Progress("sampling", 0, steps * windows, v, n, v / n))
            texts = [prompt] + ([negative] if negative else [])
            emb = model.encode_prompt(texts)
            latents = longform.sample_long(
                model,
                _row(emb, 0),
                seconds,
                seed,
                steps,
                _filled(req.cfg),
                negative=_row(emb, 1) if negative else None,
                callback=on_event,
                precision=self.precision,
            )
        else:
            report(Progress("sampling", 0, steps, v, n, v / n))
            latents = model.generate(
                prompt,
                seconds,
                seed=seed,
                steps=steps,
                cfg=_filled(req.cfg),
                negative=negative or None,
                init_audio=source,
                init_noise_level=level_in,
                callback=on_event,
                precision=self.precision,
                decode=False,
            )
        check()
        report(Progress("decoding", 0, 1, v, n, (v + SAMPLE_SHARE) / n))
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
            **({"source_tempo": init.tempo} if init is not None and init.tempo is not None else {}),
            "lora": [f.recipe(scale) for f, scale in loras],
            **({"windows": windows} if long else {}),
            **said.recipe(),
            "render_seconds": round(time.perf_counter() - t0, 3),
            "device": str(self.device),
        }
        recipe.pop("variations", None)
        return RenderResult(audio, c.sample_rate, seed, keep / c.sample_rate, v, recipe)
