"""Seamless loops: exactly N bars at a BPM that play end-to-start with no seam.

The seam is made continuous at the source, not hidden by a crossfade afterwards:
- **Circular sampling.** The latent loop is a circle. At every denoiser call the latents are
  rolled by a different amount before the network sees them (and rolled back after), with the
  tempo grid rolled along, so the loop's end and start sit side by side in the middle of the
  network's context at most steps and are denoised as one passage. (Rolling is the trick seamless
  texture and panorama samplers use with diffusion models; a transformer has no padding to make
  circular, so the rolling does it.)
- **A whole number of latent frames.** N bars rarely fill a whole number of 2,048-sample frames.
  The loop is sampled as the nearest even number of frames with the tempo grid at the tempo that
  fits N bars into them, then resampled to the exact sample count (FFT resampling, which treats
  the signal as periodic: the loop's own continuation is what the filter sees at both ends). The
  stretch is below 1 / (2 * frames): under 0.3 % for a bar of 120 BPM at 44.1 kHz, and the
  grid's tempo is chosen so the resampled file plays the BPM asked for exactly.
- **As long as the model trained on.** A loop shorter than the window the model trained on
  (`ModelConfig.least_frames`: a 2-bar loop is 86 frames, longplay-mini trained on 1,024) is shown
  to the network as that many copies of itself in a row, a piece that repeats it, and each call's
  prediction is the mean over the copies. On its 86 frames alone longplay-mini v2 rendered 5 of 10
  seeds of a 2-bar "drums" loop as silence (issue 19), as it did short renders on short windows.
- **Circular decode.** The decoder sees the loop's last frames before its first and its first
  after its last, so its receptive field wraps too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from .errors import RequestError

if TYPE_CHECKING:
    from .config import ModelConfig
    from .request import RenderRequest

GOLDEN = (math.sqrt(5) - 1) / 2  # shifts k * GOLDEN * frames spread evenly over the circle
MAX_TIMING_SECONDS = 500.0  # under the timing conditioners' range (512 s in every config we know)
DECODE_WRAP_FRAMES = 16
LEVEL_STEP_FLOOR_DB = 0.5  # seam_z's least spread of level steps: a change under ~1.5 dB is no seam  # latent frames wrapped around each end before decoding (> the decoder's reach)


@dataclass(frozen=True)
class LoopPlan:
    samples: int  # the file's exact length
    frames: int  # latent frames sampled (even: the DiT's patch size divides it)
    grid_bpm: float  # the tempo the model plays at in those frames
    stretch: float  # samples / (frames * hop): the resampling ratio afterwards
    tiles: int = 1  # copies of the loop the network sees in a row (`circular`)

    def meta(self, seconds: float, beats: float) -> dict[str, float]:
        """Conditioning metadata for a loop of `seconds` (model time) and `beats` beats: its timing
        (below) and the beat count its tempo grid wraps at, so a rolled grid is exactly the grid
        rolled (the grid's longest period is a 4-bar phrase, which a 2- or 6-bar loop does not fill)."""
        return {**self.timing(seconds), "wrap_beats": beats}

    def timing(self, seconds: float) -> dict[str, float]:
        """The timing conditioning of a loop of `seconds` (model time): the middle third of a piece
        three loops long, so the model plays neither an intro nor an ending into it (a loop told it
        was a whole 6 s piece faded out at its end: a 6 dB step at the seam). The start is a whole
        number of loops, so the tempo grid (beat 0 at second 0 of the piece) stays on bar 1."""
        if 3 * seconds > MAX_TIMING_SECONDS:
            return {"seconds_start": 0.0, "seconds_total": seconds}
        return {"seconds_start": seconds, "seconds_total": 3 * seconds}

    def as_dict(self) -> dict[str, float]:
        return {
            "frames": self.frames,
            "tiles": self.tiles,
            "grid_bpm": round(self.grid_bpm, 4),
            "stretch": round(self.stretch, 6),
        }


def plan(samples: int, bpm: float, hop: int, patch: int, max_frames: int, least_frames: int = 0) -> LoopPlan:
    """The latent loop for `samples` samples of music at `bpm`, shown to the network as copies of
    itself reaching `least_frames` frames where `max_frames` allows (see the module doc)."""
    unit = max(patch, 2)
    frames = max(unit, unit * round(samples / hop / unit))
    if frames > max_frames:
        raise RequestError(
            f"a loop must fit in one window of this model ({max_frames * hop} samples); "
            f"{samples} samples is longer — ask for fewer bars"
        )
    stretch = samples / (frames * hop)
    tiles = max(1, min(-(-least_frames // frames), max_frames // frames))
    return LoopPlan(samples, frames, bpm * stretch, stretch, tiles)


def plan_for(req: RenderRequest, cfg: ModelConfig) -> LoopPlan:
    """The loop a request asks for (`bars` bars at `bpm`) on this model."""
    assert req.bars is not None and req.bpm is not None, "check() first"
    samples = round(req.bars * req.beats_per_bar * 60 / req.bpm * cfg.sample_rate)
    hop = cfg.autoencoder.downsampling_ratio
    return plan(samples, req.bpm, hop, cfg.dit.patch_size, cfg.window_frames, cfg.least_frames)


def check(req: RenderRequest, cfg: ModelConfig) -> None:
    """A loop is `bars` bars at `bpm` in one window, from text (the Generator's `resolve` calls this)."""
    if req.bars is None or req.bpm is None:
        raise RequestError("loop needs bars and a bpm (a loop is exactly N bars at a tempo)")
    if req.init_audio or req.seconds_start:
        raise RequestError("loop renders from text: it cannot take init_audio or seconds_start")
    plan_for(req, cfg)  # raises when the bars do not fit in one window


def circular(
    inner_for: Callable[[Tensor | None], Callable[[Tensor, Tensor], Tensor]],
    tempo: Tensor | None,
    frames: int,
    tiles: int = 1,
) -> Callable[[Tensor, Tensor], Tensor]:
    """A network call over a circle of `frames` latent frames: call k sees the latents rolled by
    `round((k + 1) * GOLDEN * frames) % frames` frames (and the tempo grid with them), its output rolled
    back. With `tiles` > 1 it sees the rolled circle that many times in a row and its output is the
    mean over the copies (the grid wraps at the loop's beats, so it repeats with them).
    `inner_for(tempo)` is the network with guidance for that grid. Deterministic: the k-th call of
    a render always rolls the same amount, so a seed renders the same loop."""
    calls = itertools.count()

    def inner(x: Tensor, t: Tensor) -> Tensor:
        shift = round((next(calls) + 1) * GOLDEN * frames) % frames  # the first call is rolled too
        rolled = tempo
        if tempo is not None and shift:
            rolled = tempo.clone()
            rolled[:, 1] = tempo[:, 1] + shift * tempo[:, 0]  # NaN rows (no tempo) stay NaN
        seen = torch.roll(x, -shift, dims=-1)
        out = inner_for(rolled)(seen.repeat(*(1,) * (x.dim() - 1), tiles) if tiles > 1 else seen, t)
        if tiles > 1:
            out = out.reshape(*out.shape[:-1], tiles, frames).mean(dim=-2)
        return torch.roll(out, shift, dims=-1)

    return inner


def decode(decode_fn: Callable[[Tensor], Tensor], latents: Tensor, samples: int) -> np.ndarray:
    """Decode a latent loop `[1, D, L]` with its ends wrapped around and resample it to exactly
    `samples` samples -> `[C, samples]` float32."""
    length = latents.shape[-1]
    reps = -(-DECODE_WRAP_FRAMES // length)
    ring = torch.cat([latents] * (2 * reps + 1), dim=-1)
    start = reps * length - DECODE_WRAP_FRAMES
    audio = decode_fn(ring[..., start : start + length + 2 * DECODE_WRAP_FRAMES].float())[0]  # [C, (L+2m)*hop]
    hop = audio.shape[-1] // (length + 2 * DECODE_WRAP_FRAMES)
    one = audio[:, DECODE_WRAP_FRAMES * hop : (DECODE_WRAP_FRAMES + length) * hop].float().cpu().numpy()
    return resample_periodic(one, samples)


def resample_periodic(audio: np.ndarray, samples: int) -> np.ndarray:
    """`[C, N]` one period of a periodic signal -> `[C, samples]`, by the Fourier series (exact for
    a periodic band-limited signal; no edge effects, since the signal has no edges)."""
    if audio.shape[-1] == samples:
        return audio.astype(np.float32)
    from scipy.signal import resample

    return np.asarray(resample(audio, samples, axis=-1), dtype=np.float32)


def seam_z(audio: np.ndarray, beats: int, frame: int = 1024) -> tuple[float, float]:
    """How the loop's seam compares with the file's other beat lines when it is played twice:
    (spectral flux, level step) at the seam as robust z-scores (median and MAD) against the same
    measures at its other `beats - 1` beat lines. A loop's seam is a beat line (bar 1 follows the
    last bar), so it is compared with its kind: a seamless loop reads like any other beat (|z| of a
    few at most), a hard cut (a level or phase jump, a click, an end that does not lead into the
    start) stands far out. The tests hold a loop to |z| <= 6."""
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    n = len(mono)
    twice = np.concatenate([mono[-frame:], mono, mono[:frame]])  # the seam at index `frame`
    lines = [frame + round(n * b / beats) for b in range(1, beats)]
    return boundary_z(twice, lines, at=frame, frame=frame)


def boundary_z(audio: np.ndarray, lines: list[int], at: int, frame: int = 1024) -> tuple[float, float]:
    """(spectral flux, level step) at sample `at` as robust z-scores against the same measures at
    the sample positions `lines` (the file's beat or bar lines): a seam or an edit's junction read
    against the boundaries of its kind. Flux: the summed positive change of log-magnitude spectra
    between the `frame`-sample windows either side; level step: |dB change| of their RMS."""
    mono = (audio.mean(axis=0) if audio.ndim == 2 else audio).astype(np.float64)
    window = np.hanning(frame)
    flux, step = [], []
    for p in [at, *[q for q in lines if frame <= q <= len(mono) - frame and q != at]]:
        before, after = mono[p - frame : p] * window, mono[p : p + frame] * window
        mb, ma = (np.log1p(np.abs(np.fft.rfft(w)) * 100) for w in (before, after))
        flux.append(float(np.maximum(0.0, ma - mb).sum()))
        rms = [10 * np.log10(np.mean(w**2) + 1e-12) for w in (before, after)]
        step.append(abs(rms[1] - rms[0]))
    if len(flux) < 3:
        raise ValueError("boundary_z needs at least two other lines inside the audio to compare with")
    return _robust_z(flux, 0.1 * float(np.median(flux[1:]))), _robust_z(step, LEVEL_STEP_FLOOR_DB)


def _robust_z(values: list[float], floor: float) -> float:
    """z of values[0] against values[1:], by median and MAD (scaled to a normal's sigma); the
    spread is at least `floor`, so a steady file's near-zero spread does not make noise a seam."""
    others = np.asarray(values[1:])
    mad = 1.4826 * float(np.median(np.abs(others - np.median(others))))
    return float((values[0] - np.median(others)) / max(mad, floor, 1e-9))
