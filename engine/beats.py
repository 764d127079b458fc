"""Hearing a tempo: where the beats of a piece of audio fall, at what BPM, and where bar 1 starts.

One tracker serves two jobs: the tempo check after a render (`engine.tempo_check`: did the model
play the BPM asked for, and where is its first downbeat) and hearing a source before
audio-to-audio (a beatbox take's tempo and phase become the tempo grid the model plays on).

The beats come from librosa's dynamic-programming tracker (Ellis 2007) on its onset-strength
envelope; librosa is imported only here, when audio is heard, so `import engine` stays light.
What is written here is what librosa does not do:
- the BPM and the first beat's offset are a least-squares line through the tracked beats
  (beat k at ``t0 + k * period``), not librosa's tempogram estimate, whose lag grid is ~2 % coarse
  at 120 BPM; with a tempo hint the tracker starts at it (and at its half/double, picking the
  steadier), so a render is not heard at half time when it plays the asked tempo;
- the downbeat: of the ``beats_per_bar`` phases, the one whose beats carry the most low-frequency
  onset energy (a kick on beat 1 is the commonest cue in the music Longplay makes);
- a confidence in [0, 1]: the share of tracked beats within ``BEAT_TOLERANCE_S`` of the fitted
  grid (or halfway between its beats), times how far the onset envelope's autocorrelation at the beat period stands above its
  mean (0 for noise or silence, near 1 for a steady groove).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from .audio_io import conform

RATE = 22050  # analysis sample rate
HOP = 256  # onset envelope hop: 11.6 ms
BEAT_TOLERANCE_S = 0.05  # a tracked beat "on the grid" when within +-50 ms of it
LOW_HZ = 200.0  # the band a kick drum lives in
MIN_SECONDS = 2.0  # shorter audio has too few beats to fit a line through
END_GUARD_S = 0.03  # a tracked beat this close to the end is the tracker's, not the audio's
HINT_REACH = 0.08  # the hinted period is searched when within this of the heard one
MAX_PAIRS = 600  # lines tried by the grid fit (pairs of beats), spread over the piece


@dataclass(frozen=True)
class Beats:
    """What the tracker heard. Times in seconds from the audio's first sample."""

    bpm: float
    first_beat: float  # the fitted grid's first beat at or after 0, in [0, 60/bpm)
    first_downbeat: float  # the first beat that starts a bar, in [0, beats_per_bar * 60/bpm)
    confidence: float
    beats: tuple[float, ...]  # the tracked beats themselves

    def as_dict(self) -> dict[str, float]:
        return {
            "bpm": round(self.bpm, 3),
            "first_beat_s": round(self.first_beat, 4),
            "first_downbeat_s": round(self.first_downbeat, 4),
            "confidence": round(self.confidence, 3),
        }


# Set once `warm_up` has heard its clicks: librosa imported, its numba functions compiled.
WARM = threading.Event()
_warming = threading.Lock()


def warm_up() -> None:
    """Hear two seconds of clicks once per process, so the first render's tempo check does not
    wait for it: librosa's tracker is numba code, compiled on first use — 64 s on this 2-core CPU
    with no compiled cache on disk (a fresh install; it made a CI render miss a 50 s wait), 8 s of
    librosa import with one. `make venv` runs this once, which writes that cache; `Generator`
    starts it in the background (`warm_up_in_background`). Idempotent and thread-safe."""
    with _warming:
        if WARM.is_set():
            return
        clicks = np.zeros(int(RATE * MIN_SECONDS * 2), np.float32)
        clicks[:: RATE // 2] = 1.0
        hear(clicks, RATE, 120.0)
        WARM.set()


def warm_up_in_background() -> None:
    """`warm_up` on a daemon thread, unless this process has already begun it. A failure there is
    only logged: the tempo check that needs the tracker reports its own (a background thread's
    traceback would reach the user's terminal with nothing to act on)."""

    def quietly() -> None:
        try:
            warm_up()
        except Exception as err:  # noqa: BLE001 - see the docstring
            logging.getLogger("longplay.beats").debug("beat tracker warm-up failed: %s", err)

    if not WARM.is_set() and not _warming.locked():
        threading.Thread(target=quietly, name="longplay-beats-warm-up", daemon=True).start()


def hear(audio: np.ndarray, sample_rate: int, bpm_hint: float | None = None, beats_per_bar: int = 4) -> Beats | None:
    """The beats of `audio` (`[C, N]` or `[N]`), or None when it is too short or has no pulse.

    With `bpm_hint` (the tempo asked for) the tracker starts there, so a steady render is heard at
    the tempo it plays rather than at half or double it; without one it starts at 120 BPM."""
    import librosa  # the one place the runtime uses it (see the module doc)

    a = np.asarray(audio, dtype=np.float32)
    y = conform(a if a.ndim == 2 else a[None, :], sample_rate, RATE, 1)[0]
    if len(y) < MIN_SECONDS * RATE or not np.any(np.abs(y) > 1e-4):
        return None
    # Onset strength (spectral flux of a 64-band mel spectrogram, librosa's alignment) over all
    # bands and over the bands below LOW_HZ, where a kick lives.
    n_low = int(np.sum(librosa.mel_frequencies(n_mels=66, fmax=RATE / 2)[1:-1] < LOW_HZ))
    n_low = max(1, n_low)
    low, rest = librosa.onset.onset_strength_multi(y=y, sr=RATE, hop_length=HOP, n_mels=64, channels=[0, n_low, 64])
    env = (low * n_low + rest * (64 - n_low)) / 64
    if not np.any(env > 0):
        return None
    _, frames = librosa.beat.beat_track(
        onset_envelope=env, sr=RATE, hop_length=HOP, start_bpm=bpm_hint or 120.0, units="frames", trim=False
    )
    times = np.asarray(librosa.frames_to_time(frames, sr=RATE, hop_length=HOP), dtype=np.float64)
    seeds = _period_seeds(times, len(y) / RATE, bpm_hint)
    if not seeds:
        return None
    # The grid: the period (within 3 % of a seed) and phase whose beats sit on the most onset
    # energy (the low band's twice over, a kick being the surest beat), so a groove with hats on
    # the off-beats is not heard on them and a skipped beat does not bend the line.
    weight = env / (env.max() or 1.0) + 2 * low / (low.max() or 1.0)
    period, first_beat = max(
        (_phase(weight, p) for seed in seeds for p in seed * (1 + np.linspace(-0.03, 0.03, 121))),
        key=lambda r: r[2],
    )[:2]
    # The tracker's own beats confirm the period when they sit on the grid or halfway between its
    # beats (a tracker that followed the off-beat hats still heard the tempo).
    on_grid = _on_grid(times, period / 2, first_beat)
    chroma = librosa.feature.chroma_stft(y=y, sr=RATE, hop_length=HOP)
    downbeat = _downbeat(low, chroma, first_beat, period, beats_per_bar, len(y) / RATE)
    return Beats(
        bpm=60.0 / period,
        first_beat=first_beat,
        first_downbeat=downbeat,
        confidence=float(np.clip(on_grid * _pulse_clarity(env, period * RATE / HOP), 0.0, 1.0)),
        beats=tuple(float(t) for t in times),
    )


def _period_seeds(times: np.ndarray, seconds: float, bpm_hint: float | None) -> list[float]:
    """Beat periods to search around: the line through the tracked beats (`_fit_grid`), their
    median interval, and the hinted tempo's period when it is near them. The tracker can slip,
    e.g. onto a swung off-beat for half a take, or stray at either end; one of these lands
    within the search's 3 % when the line alone misses by 4-5 % (held-out beatbox outputs)."""
    fit = _fit_grid(times, seconds)
    if fit is None:
        return []
    seeds = [fit[0], float(np.median(np.diff(times[times < seconds - END_GUARD_S])))]
    if bpm_hint:
        hinted = 60.0 / bpm_hint
        if any(abs(hinted / s - 1.0) <= HINT_REACH for s in seeds):
            seeds.append(hinted)
    return seeds


def _phase(env: np.ndarray, period: float) -> tuple[float, float, float]:
    """(period, offset in [0, period), score): the offset whose grid `offset + k * period` sits on
    the most onset energy, and that energy per beat."""
    offsets = np.arange(0.0, period, 0.005)
    k = np.arange(0.0, len(env) * HOP / RATE - period, period)
    idx = np.round((offsets[:, None] + k[None, :]) * RATE / HOP).astype(int)
    score = env[np.minimum(idx, len(env) - 1)].mean(axis=1)
    best = int(np.argmax(score))
    return period, float(offsets[best]), float(score[best])


def _on_grid(times: np.ndarray, period: float, offset: float) -> float:
    """Share of the tracked beats within `BEAT_TOLERANCE_S` of the grid `offset + k * period`."""
    off = (times - offset) % period
    return float(np.mean(np.minimum(off, period - off) <= BEAT_TOLERANCE_S))


def _fit_grid(times: np.ndarray, seconds: float) -> tuple[float, float, float] | None:
    """(period, t0, share of beats within tolerance) of the line beat k = t0 + k * period.

    The line is the one through the most tracked beats (a consensus fit: every line through two
    beats is tried, the one most beats sit on is refitted by least squares on those), because the
    tracker can slip, e.g. onto a swung off-beat for half a take, and a least-squares line through
    both halves misses the period by several per cent."""
    times = times[times < seconds - END_GUARD_S]  # trim=False can put a beat on the last frame
    if len(times) < 4:
        return None
    intervals = np.diff(times)
    period = float(np.median(intervals))
    if period <= 0:
        return None
    # Beat numbers from the intervals: a skipped beat counts two, a slip moves later beats only.
    k = np.concatenate([[0.0], np.cumsum(np.maximum(1.0, np.round(intervals / period)))])
    i, j = np.triu_indices(len(times), 1)
    pairs = np.flatnonzero(k[j] - k[i] >= 2)
    if len(pairs) == 0:
        return None
    pairs = pairs[np.linspace(0, len(pairs) - 1, min(len(pairs), MAX_PAIRS)).astype(int)]
    i, j = i[pairs], j[pairs]
    slopes = (times[j] - times[i]) / (k[j] - k[i])
    resid = np.abs(times[None, :] - (times[i][:, None] + slopes[:, None] * (k[None, :] - k[i][:, None])))
    best = int(np.argmax((resid <= BEAT_TOLERANCE_S).sum(axis=1) - resid.mean(axis=1) / 1e3))
    keep = resid[best] <= BEAT_TOLERANCE_S
    if keep.sum() < 4:
        return None
    slope, intercept = np.polyfit(k[keep], times[keep], 1)
    if slope <= 0:
        return None
    return float(slope), float(intercept), float(np.mean(np.abs(times - (intercept + slope * k)) <= BEAT_TOLERANCE_S))


def _pulse_clarity(env: np.ndarray, lag: float) -> float:
    """How far the envelope's normalized autocorrelation at `lag` frames stands above its mean."""
    x = env - env.mean()
    denom = float(np.dot(x, x))
    if denom <= 0 or lag < 1 or lag * 2 >= len(x):
        return 0.0
    ac = np.correlate(x, x, mode="full")[len(x) - 1 :] / denom
    lo, hi = int(np.floor(lag)), int(np.ceil(lag))
    at = float(max(ac[lo], ac[min(hi, len(ac) - 1)]))
    rest = float(np.mean(ac[1 : int(lag * 4)]))
    return float(np.clip((at - rest) / max(1e-9, 1.0 - rest), 0.0, 1.0))


def _downbeat(
    low: np.ndarray, chroma: np.ndarray, first_beat: float, period: float, beats_per_bar: int, seconds: float
) -> float:
    """The first beat of the bar phase (of `beats_per_bar`) where the harmony changes most and the
    low band hits hardest: chords and bass change on bar lines, and a kick marks beat 1."""
    beat_times = np.arange(first_beat, seconds, period)
    frames = np.clip(np.round(beat_times * RATE / HOP).astype(int), 0, chroma.shape[1] - 1)
    # Harmonic change at each beat: 1 - cosine between the mean chroma of the beat before and after.
    change = np.zeros(len(frames))
    for i in range(1, len(frames) - 1):
        a = chroma[:, frames[i - 1] : frames[i]].mean(axis=1)
        b = chroma[:, frames[i] : frames[i + 1]].mean(axis=1)
        change[i] = 1.0 - float(a @ b) / (float(np.linalg.norm(a) * np.linalg.norm(b)) or 1.0)
    kick = low[np.minimum(frames, len(low) - 1)]
    score = change / (change.max() or 1.0) + kick / (kick.max() or 1.0)
    phases = [
        float(score[p::beats_per_bar].mean()) if len(score[p::beats_per_bar]) else 0.0 for p in range(beats_per_bar)
    ]
    return float(first_beat + int(np.argmax(phases)) * period)
