"""The render pipeline: request -> conditioning -> sampler over the DiT (CFG) -> chunked decode -> trim.

`Generator(model).render(request, on_progress, cancel)` is the one call every door (CLI, job
queue, GUI) makes. Progress is reported per sampler step through one callback, and cancel is a
flag checked in that same callback (STYLE point 5), so a cancelled render stops within one step.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from . import beats, edit, groove, longform, loops, sampling, tempo_check
from .audio_io import conform, fade_edges, load_audio, normalize_loudness
from .devices import autocast_for, pick_device
from .errors import RenderCancelled
from .keys import key_name, prompt_key
from .model import ConditionedDiffusionModel
from .request import (
    SAMPLE_SHARE,
    Progress as Progress,
    ProgressFn as ProgressFn,
    RenderRequest as RenderRequest,
    RenderResult as RenderResult,
    grid_bpm as grid_bpm,
    prompt_bpm as prompt_bpm,
    prompts,
    split_negations as split_negations,
)
from .resolve import resolve_request

if TYPE_CHECKING:
    from .sa3 import SA3Model
    from .sa3.render import SA3Renderer


# Latent frames decoded past the requested end (the decoder's receptive field is a few frames).
DECODE_MARGIN_FRAMES = 16
# Init audio read past the window, so the resampler's filter sees real audio at the window's end.
INIT_READ_MARGIN_S = 0.05


def model_defaults(model: ConditionedDiffusionModel) -> dict[str, Any]:
    """Sampler defaults: rectified-flow models (SAO Small) use 8-step ping-pong; v-models 3M SDE."""
    if model.config.objective == "rf_denoiser":
        base = {"sampler": "pingpong", "steps": 8, "cfg": 1.0, "sigma_min": 0.0, "sigma_max": 1.0}
    else:
        base = {
            "sampler": sampling.DEFAULT_SAMPLER,
            "steps": sampling.DEFAULT_STEPS,
            "cfg": 7.0,
            "sigma_min": sampling.DEFAULT_SIGMA_MIN,
            "sigma_max": sampling.DEFAULT_SIGMA_MAX,
        }
    base.update(model.config.defaults)
    return base


class Generator:
    """Renders requests with one model on one device. Not thread-safe: one worker owns it.

    A Stable Audio 3 model (`engine.sa3.SA3Model`) renders through `engine/sa3/render.py`
    (`self.sa3`; `render`, `resolve`, `max_seconds` and `defaults` hand over to it; its extend and
    replace run on SA3's own inpainting, `engine/sa3/edit.py`); `model` and the methods below it
    are the Longplay / Stable Audio Open path."""

    model: ConditionedDiffusionModel
    sa3: SA3Renderer | None = None

    def __init__(
        self,
        model: ConditionedDiffusionModel | SA3Model,
        device: str | torch.device | None = None,
        precision: str = "auto",
    ):
        self.device = pick_device(device)
        self.precision = precision
        beats.warm_up_in_background()  # the tempo check's first hearing, compiled while the model samples
        if not isinstance(model, ConditionedDiffusionModel):
            from .sa3.render import SA3Renderer

            self.sa3 = SA3Renderer(model, self.device, precision)
            self.defaults = self.sa3.defaults
            return
        self.model = model.to(self.device).eval()
        self.defaults = model_defaults(model)

    # ------------------------------------------------------------------ validation
    def can_continue(self) -> bool:
        """Renders longer than the window, as windows continuing each other (`engine.longform`),
        need a model conditioned on where a window sits (`seconds_start` and `seconds_total`, as
        Stable Audio Open 1.0 and longplay-mini; not SAO Small) and a sigma-parameterised sampler."""
        if self.sa3 is not None:
            return self.sa3.can_continue()
        cfg = self.model.config
        return (
            cfg.objective != "rf_denoiser"
            and cfg.conditioner("seconds_start") is not None
            and cfg.conditioner("seconds_total") is not None
        )

    @property
    def max_seconds(self) -> float:
        """The longest render this model accepts: its window, or MAX_LONG_SECONDS if it can continue."""
        if self.sa3 is not None:
            return self.sa3.max_seconds
        window = self.model.config.window_seconds
        return max(window, longform.MAX_LONG_SECONDS) if self.can_continue() else window

    def resolve(self, req: RenderRequest) -> RenderRequest:
        """Fill defaults and check every value against what this model can do."""
        if self.sa3 is not None:
            return self.sa3.resolve(req)
        return resolve_request(req, self.model.config, self.defaults, self.can_continue(), self.max_seconds)

    # ------------------------------------------------------------------ render
    def render(
        self, request: RenderRequest, on_progress: ProgressFn | None = None, cancel: threading.Event | None = None
    ) -> list[RenderResult]:
        """Render `request.variations` files; variation i uses seed `seed + i`. Every model path
        passes here: a render with a tempo is then beat-tracked, and snapped when asked
        (`engine/tempo_check.py`: the recipe's `tempo_check`, progress stage "checking")."""
        checking = tempo_check.Checking(request, on_progress, cancel)
        return checking.finish(self._render(request, checking.report, checking.cancel))

    def _render(
        self, request: RenderRequest, on_progress: ProgressFn | None, cancel: threading.Event | None
    ) -> list[RenderResult]:
        if self.sa3 is not None:  # edits included (engine/sa3/edit.py)
            return self.sa3.render(request, on_progress, cancel)
        req = self.resolve(request)
        cancel = cancel or threading.Event()
        report = on_progress or (lambda p: None)
        if req.edit:
            return edit.render(self, req, report, cancel)
        init = self._init_latents(req) if req.init_audio else None  # heard and encoded (engine/groove.py)
        results = []
        for v in range(req.variations):
            results.append(self._render_one(req, v, init, report, cancel))
        report(Progress("done", 1, 1, req.variations, req.variations, 1.0))
        return results

    def _check(self, cancel: threading.Event) -> None:
        if cancel.is_set():
            raise RenderCancelled("render cancelled")

    @torch.no_grad()
    def _render_one(
        self, req: RenderRequest, v: int, init: groove.Source | None, report: ProgressFn, cancel: threading.Event
    ) -> RenderResult:
        model, cfg = self.model, self.model.config
        seconds, steps, sampler = _filled(req.seconds), _filled(req.steps), _filled(req.sampler)
        n = req.variations
        seed = req.seed + v
        t0 = time.perf_counter()
        self._check(cancel)
        report(Progress("conditioning", 0, steps, v, n, v / n))
        loop = loops.plan_for(req, cfg) if req.loop else None
        bpm = grid_bpm(req) if cfg.dit.beat_phase else None
        if loop is not None and bpm is not None:
            bpm = loop.grid_bpm  # the tempo that fits the bars into whole latent frames (engine/loops.py)
        if init is not None and init.grid_bpm is not None and cfg.dit.beat_phase:
            bpm = init.grid_bpm  # the source's tempo, its downbeat on beat 0 (`beat_offset`)
        said = prompts(req)
        prompt, negative = said.prompt, said.negative
        meta = {"prompt": prompt, "seconds_start": req.seconds_start, "seconds_total": seconds, "bpm": bpm}
        if init is not None and bpm is not None:
            meta.update(init.meta())
        if loop is not None:  # told it sits inside a longer piece, the model plays no intro or ending
            meta = {**meta, **loop.meta(self._seconds(loop.frames * loop.tiles), _filled(req.bars) * req.beats_per_bar)}
        gen = torch.Generator(device="cpu").manual_seed(seed)
        segments = [longform.Segment(0, loop.frames, 0)] if loop else self.segments(seconds)
        if loop is None and len(segments) == 1 and cfg.dit.attn_window:
            # No sampled frame past the end: there training taught the silence padded after an
            # item, and on a short window that silence took whole renders (issue 19). The render is
            # cut to length all the same.
            meta["seconds_total"] = max(seconds, self._seconds(segments[0].frames))
        total = done = 0  # sampler steps over all windows, and those done

        def on_step(info: dict[str, Any]) -> None:
            self._check(cancel)
            i = done + int(info["i"]) + 1
            report(Progress("sampling", i, total, v, n, (v + SAMPLE_SHARE * i / total) / n))

        latents: Tensor | None = None
        beat_s = 60.0 / bpm if bpm else None
        for seg in segments:  # one window, or windows continuing each other (engine.longform)
            if seg.start:
                start_s, seg_s = self._seconds(seg.start), self._seconds(seg.frames)
                fake_start, fake_total = longform.window_timing(start_s, seconds, seg_s, cfg.window_seconds, beat_s)
                meta = {**meta, "seconds_start": fake_start, "seconds_total": fake_total}
            cond = self._conditioning(meta, negative)
            noise = torch.randn((1, cfg.dit.io_channels, seg.frames), generator=gen).to(self.device)  # [1, C, L]
            sigmas, x = self._schedule_and_start(req, noise, init.latents if init is not None else None)
            if sigmas is None:  # audio-to-audio at strength 0: the input, unchanged
                report(Progress("sampling", 0, 0, v, n, v / n))
                latents = x
                break
            if not total:
                total = (len(sigmas) - 1) * len(segments)
                report(Progress("sampling", 0, total, v, n, v / n))
            inner = self._inner(req, cond)
            if loop is not None:
                inner = loops.circular(partial(self._with_tempo, req, cond), cond.get("tempo"), loop.frames, loop.tiles)
            denoiser = self._denoiser(inner)
            if seg.known and latents is not None:
                denoiser = longform.KnownPrefix(denoiser, latents[..., seg.start : seg.start + seg.known])
            if init is not None:  # onset frames held to the source (measured, off by default: engine/groove.py)
                denoiser = init.hold(denoiser, req, cfg.objective == "rf_denoiser")
            with self._autocast():
                out = sampling.sample(sampler, denoiser, x, sigmas, callback=on_step, generator=gen)
            latents = (
                out
                if latents is None
                else torch.cat([latents[..., : seg.start + seg.known], out[..., seg.known :]], dim=-1)
            )
            done += len(sigmas) - 1
        assert latents is not None
        self._check(cancel)
        report(Progress("decoding", 0, 1, v, n, (v + SAMPLE_SHARE) / n))
        keep = int(round(seconds * cfg.sample_rate))
        # Decode only the frames the request keeps, plus a margin wider than the decoder's
        # receptive field, so the kept samples equal a whole-window decode (tested).
        if loop is not None:  # wrapped ends, resampled to the exact length; no fades at a seam
            audio = loops.decode(model.pretransform.decode, latents, keep)
        else:
            frames_needed = min(latents.shape[-1], self._needed_frames(seconds))
            decoded = model.pretransform.decode(latents[..., :frames_needed].float())[0]  # [C, N]
            audio = decoded[:, :keep].float().cpu().numpy()
            if init is not None:  # gated on the source's hits (measured, off by default), before the fades
                audio = init.shape(audio, cfg.sample_rate)
            fade_edges(audio, round(req.fade_ms * cfg.sample_rate / 1000))
        level = normalize_loudness(audio, cfg.sample_rate, req.loudness)[1] if req.loudness is not None else {}
        report(Progress("decoding", 1, 1, v, n, (v + 1) / n))
        recipe = {
            **asdict(req),
            **level,
            "seed": seed,
            "variation": v,
            "sample_rate": cfg.sample_rate,
            # What the model was conditioned on, when negations moved out of the prompt.
            **said.recipe(),
            "render_seconds": round(time.perf_counter() - t0, 3),
            "device": str(self.device),
        }
        if cfg.dit.beat_phase:
            recipe["grid_bpm"] = bpm  # the tempo grid the model played on (None: none)
        if cfg.conditioner("key") is not None:
            recipe["key"] = key_name(prompt_key(prompt))  # the key the model was told (None: none)
        if init is not None:
            recipe["source_tempo"] = init.tempo  # what the source was heard at (engine/groove.py)
        if loop is not None:
            recipe["loop"] = loop.as_dict()
        recipe.pop("variations", None)
        return RenderResult(audio, cfg.sample_rate, seed, keep / cfg.sample_rate, v, recipe)

    def _conditioning(self, meta: dict[str, Any], negative: str) -> dict[str, Tensor | None]:
        """The network's conditioning for `meta`, with the negative prompt's when there is one."""
        cond = self.model.encode_conditioning([meta])
        if negative:
            cond.update(self.model.encode_conditioning([{**meta, "prompt": negative}], negative=True))
        return cond

    def _denoiser(self, inner: Callable[..., Tensor]) -> sampling.Denoiser:
        """The network with guidance as the sampler's denoiser (RF or v objective)."""
        rf = self.model.config.objective == "rf_denoiser"
        return sampling.RFDenoiser(inner) if rf else sampling.VDenoiser(inner)

    def _with_tempo(
        self, req: RenderRequest, cond: dict[str, Tensor | None], tempo: Tensor | None
    ) -> Callable[..., Tensor]:
        """The guided network with another tempo grid (a loop's rolled grid, engine/loops.py)."""
        return self._inner(req, {**cond, "tempo": tempo})

    def _schedule_and_start(
        self, req: RenderRequest, noise: Tensor, init: Tensor | None
    ) -> tuple[Tensor | None, Tensor]:
        """The sigma schedule and the starting latent (pure noise, or the re-noised init)."""
        rf = self.model.config.objective == "rf_denoiser"
        steps, sigma_min, sigma_max = _filled(req.steps), _filled(req.sigma_min), _filled(req.sigma_max)
        top = sigma_max
        if init is not None:
            # RF times start at 0; the log-linear strength map needs a positive floor.
            floor = max(sigma_min, 1e-3) if rf else sigma_min
            top = sampling.init_sigma_for_strength(req.init_strength, floor, sigma_max)
            if top == 0.0:
                return None, init  # strength 0: the input, unchanged
        if rf:
            sigmas = sampling.get_sigmas_rf_logsnr(steps, top, device=self.device)
            x = noise if init is None else (1 - top) * init + top * noise
        else:
            if init is not None and top < sigma_min:
                top = sigma_min
            sigmas = sampling.get_sigmas_polyexponential(steps, sigma_min, top, device=self.device)
            x = noise * top if init is None else init + noise * top
        return sigmas, x

    def _inner(self, req: RenderRequest, cond: dict[str, Tensor | None]) -> Callable[..., Tensor]:
        """The network with guidance; CFG only where sigma is inside `cfg_interval`."""
        model = self.model
        rf = model.config.objective == "rf_denoiser"
        lo, hi = req.cfg_interval or (0.0, math.inf)
        guidance = _filled(req.cfg)

        def inner(x: Tensor, t: Tensor) -> Tensor:
            # t is the network's time: atan(sigma)*2/pi for v-models, sigma itself for RF models.
            sigma = float(t[0]) if rf else math.tan(float(t[0]) * math.pi / 2)
            scale = guidance if lo <= sigma <= hi else 1.0
            return model.network(
                x,
                t,
                cond.get("cross_attn_cond"),
                cond.get("global_cond"),
                scale,
                cond.get("negative_cross_attn_cond"),
                req.cfg_rescale,
                cond.get("tempo"),
                req.key_cfg,
            )

        return inner

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        with autocast_for(self.device, self.precision):
            yield

    def _seconds(self, frames: int) -> float:
        cfg = self.model.config
        return frames * cfg.autoencoder.downsampling_ratio / cfg.sample_rate

    def _needed_frames(self, seconds: float) -> int:
        """Latent frames whose decode covers `seconds`, plus a margin wider than the decoder's
        receptive field (so the kept samples equal a whole-window decode)."""
        cfg = self.model.config
        return -(-int(round(seconds * cfg.sample_rate)) // cfg.autoencoder.downsampling_ratio) + DECODE_MARGIN_FRAMES

    def segments(self, seconds: float) -> list[longform.Segment]:
        """The windows a render of `seconds` samples: one (`render_frames`), or for a render longer
        than the window, windows that continue each other (`engine.longform.plan_segments`; local
        attention models in whole attention blocks, full-attention ones in whole windows)."""
        cfg = self.model.config
        need, window = self._needed_frames(seconds), cfg.window_frames
        # A render that fits in one window is one window, even where the decode margin reaches past
        # its end (nothing lies past a window to decode). Continuing it sampled a second, shorter
        # window that audio-to-audio's one-window init could not start: a 500 at 285.3 s.
        if need - DECODE_MARGIN_FRAMES <= window:
            return [longform.Segment(0, self.render_frames(seconds), 0)]
        block = cfg.dit.attn_window * cfg.dit.patch_size
        context = longform.context_frames(window, cfg.sample_rate / cfg.autoencoder.downsampling_ratio, block or 1)
        return longform.plan_segments(need, window, context, block or window)

    def render_frames(self, seconds: float) -> int:
        """Latent frames sampled for a render of `seconds`.

        Full-attention models (every public SAO config) always sample their whole window, as they
        were trained: timing conditioning tells them where to stop. Models with local attention
        (`attn_window`) were trained on crops shorter than their window with the same timing
        conditioning, so they sample what the render keeps plus the decode margin, rounded up to
        whole attention blocks, but never fewer frames than the crop they trained on (the
        folder's `longplay.train.crop_frames`): a 60 s render of a 285 s model costs 60 s, not
        285 s, and a 4 s one costs the 47.5 s crop of longplay-mini.
        """
        cfg = self.model.config
        window, dit = cfg.window_frames, cfg.dit
        if not dit.attn_window:
            return window
        unit = dit.attn_window * dit.patch_size
        need = max(self._needed_frames(seconds), cfg.least_frames)  # never a window it did not train on
        return min(window, -(-need // unit) * unit)

    def learned_latents(self) -> str:
        """What the DiT learned: "sample" (VAE posterior samples, as Stable Audio and every public
        config) or "mean" (the posterior mean: a model trained with `train dit --train-latents
        mean`, such as longplay-mini). Audio-to-audio encodes the init audio the same way."""
        return self.model.config.learned_latents or "sample"

    @torch.no_grad()
    def _init_latents(self, req: RenderRequest) -> groove.Source:
        """Load, resample, hear (and stretch to a named BPM), pad/trim to the window and encode
        the init audio -> `groove.Source` with latents `[1, C, L]`, the posterior sample or mean
        its DiT learned (`learned_latents`). Only the window is read (more when it is to be
        sped up): a source longer than it renders from its start, and costs what a window costs."""
        cfg = self.model.config
        hop = cfg.autoencoder.downsampling_ratio
        n = self.render_frames(_filled(req.seconds)) * hop
        settings = groove.DEFAULT
        seconds = n / cfg.sample_rate * (1 + settings.max_stretch) + INIT_READ_MARGIN_S
        audio, sr = load_audio(_filled(req.init_audio), seconds=seconds, channels=cfg.audio_channels)
        audio = conform(audio, sr, cfg.sample_rate, cfg.audio_channels)
        asked = grid_bpm(req) if cfg.dit.beat_phase else None
        audio, tempo, bpm, offset = groove.prepare(
            audio, cfg.sample_rate, asked, req.beats_per_bar, _filled(req.seconds), settings
        )
        times = weight = None
        if settings.hold > 0 or settings.gate_db is not None:  # onset features (measured; off by default)
            times, level = groove.onsets(audio[:, : int(_filled(req.seconds) * cfg.sample_rate)], cfg.sample_rate)
            weight = groove.onset_weight(times, level, cfg.sample_rate / hop, n // hop, settings.spread)
        audio = audio[:, :n] if audio.shape[1] >= n else np.pad(audio, ((0, 0), (0, n - audio.shape[1])))
        x = torch.from_numpy(audio)[None].to(self.device)  # [1, C, N]
        gen = torch.Generator(device="cpu").manual_seed(max(req.seed, 0))
        latents = self.model.pretransform.encode(x, sample=self.learned_latents() == "sample", generator=gen)
        return groove.Source(latents, weight, times, tempo, bpm, offset, settings)


T = TypeVar("T")


def _filled(value: T | None) -> T:
    """A request field `Generator.resolve` filled in (seconds, steps, cfg, sampler, sigmas): never None after it."""
    assert value is not None, "the request did not pass through Generator.resolve"
    return value


def _replace(req: RenderRequest, **changes: Any) -> RenderRequest:
    from dataclasses import replace

    return replace(req, **changes)
