"""Extend and replace: continue any audio by N bars, or regenerate a range of its bars, keeping
the rest exactly as it was.

Both run on the mechanism long renders use to continue their windows (`engine/longform.py`): the
source is encoded, and the latent frames to keep are *held* — the denoiser's estimate for them is
the source's own latents at every step (`KnownFrames`), so the sampled frames are drawn to fit
the held ones on both sides. The decoded result is then spliced into the source itself: outside
the regenerated span the output is the source's samples, bit for bit, and a short crossfade
(`CROSSFADE_S`) joins them at each edge. (The decoded held frames are the autoencoder's
reconstruction, not the source: splicing keeps the original's exact sound.) The crossfade is
equal-gain: the decoded edge reconstructs the source's own sound, so the two are correlated and
an equal-power fade would swell by up to 3 dB.

Bars count from the source's first sample (bar 1 at 0 s), as Longplay's renders are written: a
user's own file should start on a downbeat. The tempo is the request's `bpm`, else the one the
source is heard at (`engine.beats`), recorded in the recipe. One window bounds the context the
model sees: an extension keeps the source's last `window - new` seconds as context, a replacement
the span around the range; the output always holds the whole source.

Stable Audio 3 models hold the kept frames through their own inpainting input instead
(`engine/sa3/edit.py`); the bar math, the context rule, the kept frames, the splice and the recipe
keys are this module's (`span`, `Span`, `splice`), so both paths agree on them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from . import sampling
from .audio_io import conform, load_audio
from .errors import RequestError, RequestTooLong
from .request import SAMPLE_SHARE, Progress, ProgressFn, RenderRequest, RenderResult, prompts

if TYPE_CHECKING:
    from .pipeline import Generator

EDITS = ("extend", "replace")
CROSSFADE_S = 0.03  # the equal-gain crossfade at each edge of the regenerated span
MARGIN_FRAMES = 8  # latent frames past the regenerated span sampled too (not held), for the decoder's reach


class KnownFrames:
    """A denoiser whose estimate of the frames where `mask` is True is `known` at every sigma."""

    def __init__(self, denoiser: Callable[..., Tensor], known: Tensor, mask: Tensor) -> None:
        self.denoiser, self.known, self.mask = denoiser, known, mask
        self.sigma_data = getattr(denoiser, "sigma_data", 1.0)

    def __call__(self, x: Tensor, sigma: Tensor, **extra: Any) -> Tensor:
        denoised = self.denoiser(x, sigma, **extra)
        return torch.where(self.mask, self.known.to(denoised.dtype), denoised)


def check(req: RenderRequest) -> None:
    """What an edit request must say (the Generator's `resolve` calls this)."""
    if req.edit not in EDITS:
        raise RequestError(f"edit must be one of {', '.join(EDITS)} (got {req.edit!r})")
    if not req.edit_source:
        raise RequestError(f"{req.edit} needs a source file")
    if req.init_audio or req.loop or req.seconds_start:
        raise RequestError(f"{req.edit} cannot be combined with init_audio, loop or seconds_start")
    if req.edit == "extend":
        if req.bars is None or req.bars < 1:
            raise RequestError("extend needs bars: how many bars to add")
    else:
        if req.from_bar is None or req.to_bar is None or not 1 <= req.from_bar <= req.to_bar:
            raise RequestError(
                f"replace needs from_bar and to_bar with 1 <= from_bar <= to_bar (got {req.from_bar}, {req.to_bar})"
            )


@dataclass(frozen=True)
class Span:
    """Where an edit regenerates, in samples at the model's `rate`: [lo, hi) of an output `total`
    samples long, over a source `n` samples long, at `bpm` (`heard`: in the source, not given).
    Both model paths (this module's, and Stable Audio 3's `engine/sa3/edit.py`) place bars with it."""

    edit: str
    lo: int
    hi: int
    total: int
    n: int
    rate: int
    bpm: float
    heard: bool

    def context_start(self, window: int, hop: int, margin: int = MARGIN_FRAMES) -> int:
        """The first sample (on a latent frame of the piece) of a context of `window` samples around
        the span and `margin` frames on each side: all before it for an extension, split around it
        for a replacement. `RequestTooLong` when the span does not fit in the window."""
        if self.hi - self.lo + 2 * margin * hop > window:
            raise RequestTooLong(
                f"{self.edit}: the span to render, {(self.hi - self.lo) / self.rate:.1f} s, is longer than "
                "this model's window"
            )
        spare = window - (self.hi - self.lo) - 2 * margin * hop
        start = max(0, self.lo - margin * hop - (spare if self.edit == "extend" else spare // 2))
        return start - start % hop

    def held(self, frames: int, start: int, hop: int) -> Tensor:
        """`[frames]` bool: the latent frames of a context starting at sample `start` that keep the
        source's: all but those touching the span (and one more on each side) and those past the
        source's end."""
        held = torch.ones(frames, dtype=torch.bool)
        first, last = (self.lo - start) // hop - 1, -(-(self.hi - start) // hop) + 1
        held[max(0, first) : min(frames, last)] = False
        held[min(frames, (self.n - start) // hop) :] = False  # past the source's end: nothing to hold
        return held

    def recipe(self) -> dict[str, Any]:
        """The recipe's keys for the edit."""
        return {
            "edit_span_s": [round(self.lo / self.rate, 4), round(self.hi / self.rate, 4)],
            "edit_bpm": round(self.bpm, 3),
            "edit_bpm_heard": self.heard,  # True: the tempo was heard in the source, not given
        }


def read_source(req: RenderRequest, rate: int, channels: int) -> np.ndarray:
    """The edit's source `[C, N]` float32 at `rate` with `channels` channels."""
    source, sr = load_audio(str(req.edit_source), channels=channels)
    return conform(source, sr, rate, channels)


def span(req: RenderRequest, source: np.ndarray, rate: int) -> Span:
    """The bars `req` regenerates in `source` (`[C, N]` at `rate`); a range past the source's end,
    or a source with no audio to extend, is a `RequestError` saying so."""
    bpm, heard = _tempo(req, source, rate)
    bar = req.beats_per_bar * 60.0 / bpm * rate  # samples per bar
    n = source.shape[1]
    if req.edit == "extend":
        lo, hi = n, n + round(_int(req.bars) * bar)  # the new span, in samples of the output
        if lo == 0:
            raise RequestError("extend needs a source with audio in it")
    else:
        lo, hi = round((_int(req.from_bar) - 1) * bar), round(_int(req.to_bar) * bar)
        if hi > n + 1:
            raise RequestError(
                f"replace: bars {req.from_bar}-{req.to_bar} end at {hi / rate:.2f} s, past the source's "
                f"end at {n / rate:.2f} s ({n / bar:.2f} bars at {bpm:g} BPM)"
            )
        hi = min(hi, n)
    return Span(str(req.edit), lo, hi, max(n, hi), n, rate, bpm, heard)


def render(gen: Generator, req: RenderRequest, report: ProgressFn, cancel: threading.Event) -> list[RenderResult]:
    """Render an extend or replace request (`req` already resolved) -> one result per variation."""
    cfg = gen.model.config
    rate, hop = cfg.sample_rate, cfg.autoencoder.downsampling_ratio
    source = read_source(req, rate, cfg.audio_channels)
    sp = span(req, source, rate)
    window = cfg.window_frames * hop
    # The context: a window's worth of audio around the span, starting on a latent frame of the piece.
    start = sp.context_start(window, hop)
    end = min(sp.total + MARGIN_FRAMES * hop, start + window)
    frames = -(-(end - start) // hop)
    frames += frames % max(1, cfg.dit.patch_size)  # the DiT's patch size divides the frames (1 or 2)
    context = np.zeros((source.shape[0], frames * hop), dtype=np.float32)
    have = min(sp.n, start + frames * hop) - start
    context[:, :have] = source[:, start : start + have]
    x = torch.from_numpy(context)[None].to(gen.device)
    known = gen.model.pretransform.encode(x, sample=gen.learned_latents() == "sample")
    held = sp.held(frames, start, hop).to(gen.device)
    results = []
    for v in range(req.variations):
        results.append(_render_one(gen, req, v, known, held, start, frames, sp, source, report, cancel))
    report(Progress("done", 1, 1, req.variations, req.variations, 1.0))
    return results


def _render_one(
    gen: Generator,
    req: RenderRequest,
    v: int,
    known: Tensor,
    held: Tensor,
    start: int,
    frames: int,
    sp: Span,
    source: np.ndarray,
    report: ProgressFn,
    cancel: threading.Event,
) -> RenderResult:
    cfg, model = gen.model.config, gen.model
    rate = cfg.sample_rate
    lo, hi, total = sp.lo, sp.hi, sp.total
    n_var, seed, t0 = req.variations, req.seed + v, time.perf_counter()
    steps = int(req.steps or 0)
    report(Progress("conditioning", 0, steps, v, n_var, v / n_var))
    said = prompts(req)
    meta = {
        "prompt": said.prompt,
        "seconds_start": start / rate,
        "seconds_total": total / rate,
        "bpm": sp.bpm if cfg.dit.beat_phase else None,
    }
    cond = gen._conditioning(meta, said.negative)
    gen_ = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn((1, cfg.dit.io_channels, frames), generator=gen_).to(gen.device)
    sigmas, x = gen._schedule_and_start(req, noise, None)
    assert sigmas is not None
    denoiser = KnownFrames(gen._denoiser(gen._inner(req, cond)), known, held[None, None, :])
    total_steps = len(sigmas) - 1

    def on_step(info: dict[str, Any]) -> None:
        gen._check(cancel)
        i = int(info["i"]) + 1
        report(Progress("sampling", i, total_steps, v, n_var, (v + SAMPLE_SHARE * i / total_steps) / n_var))

    with gen._autocast():
        latents = sampling.sample(str(req.sampler), denoiser, x, sigmas, callback=on_step, generator=gen_)
    report(Progress("decoding", 0, 1, v, n_var, (v + SAMPLE_SHARE) / n_var))
    decoded = model.pretransform.decode(latents.float())[0].float().cpu().numpy()  # [C, frames * hop]
    audio = splice(source, decoded, start, lo, hi, total, round(CROSSFADE_S * rate))
    report(Progress("decoding", 1, 1, v, n_var, (v + 1) / n_var))
    recipe = {
        **asdict(req),
        "seed": seed,
        "variation": v,
        "sample_rate": rate,
        **sp.recipe(),
        "render_seconds": round(time.perf_counter() - t0, 3),
        "device": str(gen.device),
    }
    recipe.pop("variations", None)
    return RenderResult(audio, rate, seed, audio.shape[1] / rate, v, recipe)


def splice(source: np.ndarray, decoded: np.ndarray, start: int, lo: int, hi: int, total: int, fade: int) -> np.ndarray:
    """The source with samples [lo, hi) taken from `decoded` (which starts at sample `start` of the
    piece), joined by raised-cosine (equal-gain) crossfades of `fade` samples outside the span:
    before `lo`, and after `hi` where the source goes on. Elsewhere the output is the source, bit for bit."""
    out = np.zeros((source.shape[0], total), dtype=np.float32)
    n = source.shape[1]
    out[:, : min(n, total)] = source[:, :total]

    def piece(a: int, b: int) -> np.ndarray:
        return decoded[:, a - start : b - start]

    out[:, lo:hi] = piece(lo, hi)
    ramp = np.sin(np.linspace(0.0, np.pi / 2, fade + 2)[1:-1]).astype(np.float32) ** 2  # 0 -> 1, raised cosine
    a = max(start, lo - fade)
    if lo > 0 and a < lo:
        r = ramp[-(lo - a) :]
        out[:, a:lo] = (1 - r) * source[:, a:lo] + r * piece(a, lo)
    b = min(n, hi + fade, start + decoded.shape[1])
    if hi < n and b > hi:
        r = ramp[::-1][: b - hi]  # the decoded part's weight, from ~1 down
        out[:, hi:b] = r * piece(hi, b) + (1 - r) * source[:, hi:b]
    return out


def _tempo(req: RenderRequest, source: np.ndarray, rate: int) -> tuple[float, bool]:
    """(bpm, heard): the request's bpm, else the tempo the source is heard at."""
    if req.bpm is not None:
        return float(req.bpm), False
    from .beats import hear

    beats = hear(source, rate, beats_per_bar=req.beats_per_bar)
    if beats is None or beats.confidence < 0.2:
        raise RequestError(f"{req.edit}: no steady tempo could be heard in the source; give its bpm")
    return float(beats.bpm), True


def _int(value: int | None) -> int:
    assert value is not None
    return value
