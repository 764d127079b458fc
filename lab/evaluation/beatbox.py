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


def speak(text: str, speed: int = 220, voice: str = "en", pitch: int = 50) -> tuple[np.ndarray, int]:
    """espeak-ng's rendering of `text` in `voice` at `pitch` (0-99) -> (mono float32 `[N]`, sample rate)."""
    import soundfile as sf

    exe = shutil.which(ESPEAK)
    if exe is None:
        raise EvalDependencyError(
            "espeak-ng is not installed; on Debian/Ubuntu run "
            "`apt-get install --no-install-recommends espeak-ng` (or `make apt`)"
        )
    try:
        done = subprocess.run(
            [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
            capture_output=True,
            check=True,
            timeout=30,
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
    voice: str = "en",
    pitch: int = 50,
    swing: float = 0.5,
    lead_in: float = 0.0,
) -> BeatboxClip:
    """`seconds` of `pattern` repeated on a grid of `steps_per_beat` steps per beat at `bpm`.

    Onsets are at `lead_in + k * step` for every step that starts inside the clip (the first
    downbeat sits at `lead_in`); each syllable is cut (with a short fade) where the next step
    begins. With two steps per beat, `swing` is where in the beat the off-beat step falls (0.5:
    straight eighths, 2/3: triplet swing). `voice` and `pitch` are espeak-ng's.
    """
    if not (bpm > 0 and seconds > 0 and steps_per_beat >= 1 and pattern):
        raise ValueError("bpm, seconds and steps_per_beat must be positive and the pattern non-empty")
    if not (0.25 <= swing < 0.9 and lead_in >= 0):
        raise ValueError("swing must be in [0.25, 0.9) and lead_in >= 0")
    cache: dict[str, np.ndarray] = {}
    for text in set(pattern):
        y, sr = speak(text, voice=voice, pitch=pitch)
        cache[text] = trim_attack(conform(y[None], sr, sample_rate, 1)[0], sample_rate)
    beat = 60.0 / bpm
    step = beat / steps_per_beat
    times = []
    k = 0
    while lead_in + k * step < seconds:
        t = lead_in + k * step
        if steps_per_beat == 2 and k % 2:  # the off-beat, swung
            t = lead_in + (k // 2) * beat + swing * beat
        if t < seconds:
            times.append(t)
        k += 1
    total = int(round(seconds * sample_rate))
    out = np.zeros(total, dtype=np.float32)
    onsets, said = [], []
    fade = int(FADE * sample_rate)
    for k, t in enumerate(times):
        text = pattern[k % len(pattern)]
        room = (times[k + 1] if k + 1 < len(times) else t + step) - t
        syl = cache[text][: int(room * sample_rate)].copy()
        if fade and syl.shape[0] > fade:
            syl[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        # The attack (PREROLL after the syllable's first sample) lands on the grid.
        at = int(round(t * sample_rate)) - int(PREROLL * sample_rate)
        lo = max(at, 0)
        seg = syl[lo - at :][: max(0, total - lo)]
        out[lo : lo + seg.shape[0]] += seg
        onsets.append(t)
        said.append(text)
    out *= peak / max(float(np.abs(out).max()), 1e-9)
    audio = np.repeat(out[None], channels, axis=0)  # [C, N]
    return BeatboxClip(audio, sample_rate, np.asarray(onsets), float(bpm), tuple(said))
