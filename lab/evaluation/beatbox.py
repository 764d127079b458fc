"""A vocal-percussion clip with known onsets, for the audio-to-audio (beatbox -> drums) check.

espeak-ng speaks each syllable once and numpy trims its leading silence and lays the copies on
a beat grid, so every onset time is known exactly. The default is "b ts k ts" on eighth notes
as espeak-ng phoneme strings ("[[b@]]" is a short "buh"): one attack per syllable. Words work
too ("boots", "and", "cats"), but "boots" and "cats" end in a second burst ("-ts") that onset
detection rightly counts, so their onset F-measure against the grid tops out near 0.65.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

from engine.audio_io import conform

from .errors import EvalDependencyError, EvaluationError

DEFAULT_PATTERN = ("[[b@]]", "[[ts]]", "[[k@]]", "[[ts]]")  # kick, hat, snare, hat
ESPEAK = "espeak-ng"
ONSET_DB = -30.0  # a syllable starts where it first comes within 30 dB of its peak
PREROLL = 0.004  # seconds kept before that point, so the attack itself is not cut
FADE = 0.01  # seconds of fade-out where a syllable is cut to fit its grid step


@dataclass(frozen=True)
class BeatboxClip:
    audio: np.ndarray  # [C, N] float32
    sample_rate: int
    onsets: np.ndarray  # seconds, where each syllable's attack sits
    bpm: float
    syllables: tuple[str, ...]  # the syllable at each onset

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def speak(text: str, speed: int = 220, voice: str = "en") -> tuple[np.ndarray, int]:
    """espeak-ng's rendering of `text` -> (mono float32 `[N]`, sample rate)."""
    import soundfile as sf

    exe = shutil.which(ESPEAK)
    if exe is None:
        raise EvalDependencyError(
            "espeak-ng is not installed; on Debian/Ubuntu run "
            "`apt-get install --no-install-recommends espeak-ng` (or `make apt`)"
        )
    try:
        done = subprocess.run(
            [exe, "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True, check=True, timeout=30
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise EvaluationError(f"espeak-ng could not speak {text!r}: {exc}") from exc
    data, sr = sf.read(io.BytesIO(done.stdout), dtype="float32", always_2d=True)  # [N, C]
    if data.shape[0] == 0 or not np.any(data):
        raise EvaluationError(f"espeak-ng returned no audio for {text!r}")
    return data.mean(axis=1), int(sr)


def trim_attack(y: np.ndarray, sr: int) -> np.ndarray:
    """`y` from `PREROLL` s before its first sample within `ONSET_DB` of the peak, trailing silence cut."""
    level = np.abs(y)
    loud = np.flatnonzero(level >= level.max() * 10 ** (ONSET_DB / 20))
    pre = int(PREROLL * sr)
    start = int(loud[0]) - pre
    head = np.zeros(max(0, -start), dtype=y.dtype)  # pad so the pre-roll is always exact
    return np.concatenate([head, y[max(start, 0) : int(loud[-1]) + 1]])


def make_beatbox(
    bpm: float = 100.0,
    seconds: float = 8.0,
    pattern: tuple[str, ...] = DEFAULT_PATTERN,
    steps_per_beat: int = 2,
    sample_rate: int = 44100,
    channels: int = 2,
    peak: float = 0.5,
) -> BeatboxClip:
    """`seconds` of `pattern` repeated on a grid of `steps_per_beat` steps per beat at `bpm`.

    Onsets are at k * step for every step that starts inside the clip; each syllable is cut
    (with a short fade) where the next step begins.
    """
    if not (bpm > 0 and seconds > 0 and steps_per_beat >= 1 and pattern):
        raise ValueError("bpm, seconds and steps_per_beat must be positive and the pattern non-empty")
    cache: dict[str, np.ndarray] = {}
    for text in set(pattern):
        y, sr = speak(text)
        cache[text] = trim_attack(conform(y[None], sr, sample_rate, 1)[0], sample_rate)
    step = 60.0 / (bpm * steps_per_beat)
    total = int(round(seconds * sample_rate))
    out = np.zeros(total, dtype=np.float32)
    onsets, said = [], []
    fade = int(FADE * sample_rate)
    k = 0
    while k * step < seconds:
        text = pattern[k % len(pattern)]
        syl = cache[text][: int(step * sample_rate)].copy()
        if fade and syl.shape[0] > fade:
            syl[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        # The attack (PREROLL after the syllable's first sample) lands on the grid.
        at = int(round(k * step * sample_rate)) - int(PREROLL * sample_rate)
        lo = max(at, 0)
        seg = syl[lo - at :][: max(0, total - lo)]
        out[lo : lo + seg.shape[0]] += seg
        onsets.append(k * step)
        said.append(text)
        k += 1
    out *= peak / max(float(np.abs(out).max()), 1e-9)
    audio = np.repeat(out[None], channels, axis=0)  # [C, N]
    return BeatboxClip(audio, sample_rate, np.asarray(onsets), float(bpm), tuple(said))
