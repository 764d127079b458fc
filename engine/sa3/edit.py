"""Extend and replace with a Stable Audio 3 model, through its native inpainting.

The bars, the tempo, the context window around the span, the frames that keep the source's and
the final splice are `engine/edit.py`'s (`span`, `Span.context_start`, `Span.held`, `splice`), so
both model paths place bars alike, refuse alike and write the same recipe keys (`edit_span_s`,
`edit_bpm`, `edit_bpm_heard`). What differs is how the kept frames are held: where the Longplay
path replaces the denoiser's estimate (`KnownFrames`, for models trained without an inpainting
input), an SA3 window is told them as the release inpaints: the DiT's local conditioning
`[mask, latents * mask]`, 1 over the frames to keep (the source's SAME latents there) and 0 over
the span, the frames touching it and the frames past the source's end. The sampled latents of the
kept frames are then put back to the source's (as `longform.py` keeps a window's held frames), the
window is decoded and spliced into the source: outside the span and its crossfades, the source bit
for bit.

The window: at most one model window (`longform.window_frames`) around the span, placed by the
shared rule (all context before an extension; split around a replacement). Its duration
conditioning is that of a one-window render of what it holds, as `longform.py` conditions its
windows: where the piece ends inside the window, the audio up to that end, sampled with the
release's 6 s of headroom past it as far as the window allows (`SA3Model.latent_frames`, the
release's own cap); where the piece goes on past the window, the window's whole length.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .. import edit as shared
from ..devices import autocast_for
from ..errors import RenderCancelled, RequestError
from ..pipeline import _filled
from ..request import SAMPLE_SHARE, Progress, ProgressFn, RenderRequest, RenderResult, prompts
from .longform import window_frames
from .model import SA3Model, _row
from .sampling import SA3Denoiser, sa3_sigmas, sample

if TYPE_CHECKING:
    from .lora import LoRAFile
    from .render import SA3Renderer


def require_inpainting(model: SA3Model, edit: str) -> None:
    """Edits hold the source through the DiT's inpainting input: refuse a model without it."""
    if not model.config.inpaint:
        raise RequestError(
            f"{edit} needs an inpainting-capable Stable Audio 3 model (this model's DiT has no inpainting "
            "input; every released SA3 model has one)"
        )


def plan(model: SA3Model, sp: shared.Span) -> tuple[int, int, float]:
    """(start sample, latent frames, seconds the window is conditioned on) of the window around `sp`."""
    c = model.config
    hop, window = c.same.downsampling_ratio, window_frames(model)
    start = sp.context_start(window * hop, hop)
    if sp.total <= start + window * hop:  # the piece ends inside the window: a render of that length
        seconds = (sp.total - start) / c.sample_rate
        return start, model.latent_frames(seconds), seconds
    return start, window, window * hop / c.sample_rate


@torch.no_grad()
def render(
    renderer: SA3Renderer,
    req: RenderRequest,
    loras: list[tuple[LoRAFile, float]],
    report: ProgressFn,
    cancel: threading.Event,
) -> list[RenderResult]:
    """Render an extend or replace request (`req` resolved, `loras` applied) -> one result per
    variation (the caller reports "done")."""
    model, c = renderer.model, renderer.model.config
    require_inpainting(model, str(req.edit))
    source = shared.read_source(req, c.sample_rate, c.audio_channels)  # [C, N]
    sp = shared.span(req, source, c.sample_rate)
    start, frames, seconds = plan(model, sp)
    hop = c.same.downsampling_ratio
    context = torch.from_numpy(np.ascontiguousarray(source[:, start : start + frames * hop]))  # [C, <= frames * hop]
    known = model.encode_audio(context, frames)  # [1, C, frames]; zero-padded past the source
    mask = sp.held(frames, start, hop).to(model.device)  # [frames], True: keep the source's
    return [
        _render_one(renderer, req, v, known, mask, (start, frames, seconds), sp, source, loras, report, cancel)
        for v in range(req.variations)
    ]


def _render_one(
    renderer: SA3Renderer,
    req: RenderRequest,
    v: int,
    known: Tensor,
    mask: Tensor,
    window: tuple[int, int, float],
    sp: shared.Span,
    source: np.ndarray,
    loras: list[tuple[LoRAFile, float]],
    report: ProgressFn,
    cancel: threading.Event,
) -> RenderResult:
    from .render import MODEL_KIND  # here, not at the top: render.py imports this module

    model, c = renderer.model, renderer.model.config
    start, frames, seconds = window
    hop = c.same.downsampling_ratio
    steps, cfg, n = _filled(req.steps), _filled(req.cfg), req.variations
    seed, t0 = req.seed + v, time.perf_counter()

    def check() -> None:
        if cancel.is_set():
            raise RenderCancelled("render cancelled")

    def on_step(info: dict[str, Any]) -> None:
        check()
        i = int(info["i"]) + 1
        report(Progress("sampling", i, steps, v, n, (v + SAMPLE_SHARE * i / steps) / n))

    check()
    report(Progress("conditioning", 0, steps, v, n, v / n))
    said = prompts(req)
    prompt, negative = said.prompt, said.negative
    emb = model.encode_prompt([prompt] + ([negative] if negative else []))
    local = model._local(frames, seconds, mask.float(), known, None, True)  # [1, 1 + C, frames]
    cond = model.conditioning(
        _row(emb, 0), seconds, _row(emb, 1) if negative else None, guidance=cfg != 1.0, local=local
    )
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn((1, c.dit.io_channels, frames), generator=gen).to(model.device)  # [1, C, L]
    sigmas = sa3_sigmas(steps, 1.0, c.logsnr_min, c.logsnr_max, device=model.device)
    report(Progress("sampling", 0, steps, v, n, v / n))
    with autocast_for(model.device, renderer.precision):
        out = sample(c.objective, SA3Denoiser(model.dit, cond, cfg), noise, sigmas, callback=on_step, generator=gen)
    # The kept frames are the source's own latents (the conditioning said so; the sample is close).
    latents = torch.where(mask[None, None, :], known, out.float())  # [1, C, frames]
    check()
    report(Progress("decoding", 0, 1, v, n, (v + SAMPLE_SHARE) / n))
    decoded = model.decode(latents, callback=lambda _: check(), precision=renderer.precision)[0]  # [C, frames * hop]
    decoded_np = decoded.float().clamp(-1.0, 1.0).cpu().numpy()
    audio = shared.splice(source, decoded_np, start, sp.lo, sp.hi, sp.total, round(shared.CROSSFADE_S * sp.rate))
    report(Progress("decoding", 1, 1, v, n, (v + 1) / n))
    recipe = {
        **asdict(req),
        "seed": seed,
        "variation": v,
        "sample_rate": c.sample_rate,
        "model_kind": MODEL_KIND,
        **sp.recipe(),
        "edit_window_s": [round(start / sp.rate, 4), round((start + frames * hop) / sp.rate, 4)],
        "lora": [f.recipe(scale) for f, scale in loras],
        **said.recipe(),
        "render_seconds": round(time.perf_counter() - t0, 3),
        "device": str(renderer.device),
    }
    recipe.pop("variations", None)
    return RenderResult(audio, c.sample_rate, seed, audio.shape[1] / c.sample_rate, v, recipe)
