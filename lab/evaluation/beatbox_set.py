"""The held-out beatbox set: vocal-percussion takes with known onsets, for audio-to-audio's groove.

A user restyling a beatbox take types "808 drums", not its tempo, so the set asks the transform
what a take asks of it: `make_set(n, seed)` builds `n` clips (24 by default) from espeak-ng
syllables in several voices and pitches, at 70-160 BPM, straight and swung, starting after a
lead-in of up to half a beat, in a small room (a decaying-noise reverb) with room noise (pink,
20-35 dB under the take). Every onset is known exactly (`beatbox.make_beatbox` lays them on the
grid). Deterministic by seed; written only by the evaluation, never part of a training corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import beatbox

VOICES = ("en", "en-us", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan")
PATTERNS = (
    ("[[b@]]", "[[ts]]", "[[k@]]", "[[ts]]"),  # kick, hat, snare, hat
    ("[[b@]]", "[[ts]]", "[[k@]]", "[[ts]]", "[[b@]]", "[[b@]]", "[[k@]]", "[[ts]]"),
    ("[[p@]]", "[[ts]]", "[[tS@]]", "[[ts]]"),  # a softer kick, a "ch" snare
)
BPM_RANGE = (70.0, 160.0)
SWING = 0.62  # where the swung off-beat falls in its beat (straight: 0.5)


@dataclass(frozen=True)
class HeldOutClip:
    """One take of the set and how it was made."""

    name: str
    clip: beatbox.BeatboxClip
    voice: str
    pitch: int
    swing: float
    lead_in: float
    snr_db: float
    room_rt60: float


def make_set(
    n: int = 24, seed: int = 20, seconds: float = 10.0, sample_rate: int = 44100, channels: int = 2
) -> list[HeldOutClip]:
    """`n` takes spread evenly over `BPM_RANGE` (jittered), every other one swung."""
    rng = np.random.default_rng(seed)
    lo, hi = BPM_RANGE
    out = []
    for i in range(n):
        bpm = float(np.round(lo + (hi - lo) * (i + rng.uniform(0.1, 0.9)) / n, 1))
        swing = SWING if i % 2 else 0.5
        voice = VOICES[int(rng.integers(len(VOICES)))]
        pitch = int(rng.integers(20, 81))
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
        lead_in = float(np.round(rng.uniform(0.0, 0.5) * 60.0 / bpm, 3))
        snr_db = float(rng.uniform(20.0, 35.0))
        rt60 = float(rng.uniform(0.15, 0.4))
        clip = beatbox.make_beatbox(
            bpm,
            seconds,
            pattern,
            sample_rate=sample_rate,
            channels=channels,
            voice=voice,
            pitch=pitch,
            swing=swing,
            lead_in=lead_in,
        )
        audio = _in_a_room(clip.audio, sample_rate, rt60, snr_db, rng)
        name = f"take{i:02d}_{bpm:g}bpm_{'swung' if swing != 0.5 else 'straight'}"
        out.append(HeldOutClip(name, replace(clip, audio=audio), voice, pitch, swing, lead_in, snr_db, rt60))
    return out


def _in_a_room(audio: np.ndarray, sr: int, rt60: float, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """`audio [C, N]` through a small room (exponentially decaying noise, -60 dB at `rt60`, 20 %
    wet) with pink noise `snr_db` under it, at the same peak level."""
    from scipy.signal import fftconvolve

    n_ir = int(rt60 * sr)
    t = np.arange(n_ir) / sr
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60)
    ir *= 0.2 / np.sqrt(np.sum(ir**2))
    ir[0] += 1.0  # the direct sound
    wet = np.stack([fftconvolve(ch, ir)[: audio.shape[1]] for ch in audio])
    white = rng.standard_normal(audio.shape[1])
    spectrum = np.fft.rfft(white)
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))  # 1/f power: pink
    pink = np.fft.irfft(spectrum, n=audio.shape[1])
    rms = np.sqrt(np.mean(wet**2))
    pink *= rms * 10 ** (-snr_db / 20) / max(float(np.sqrt(np.mean(pink**2))), 1e-12)
    out = wet + pink[None]
    peak = float(np.abs(audio).max())
    out *= peak / max(float(np.abs(out).max()), 1e-9)
    return out.astype(np.float32)
