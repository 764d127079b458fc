"""Audio-to-audio that keeps the source's groove: hear the source first, then play on its grid.

A plain transform (re-noise the source's latents to the strength's sigma, sample down) loses a
rhythmic source's groove (issue 20, measured on the held-out beatbox set,
`lab/evaluation/beatbox_set.py`, with `scripts/measure_groove.py`): the tempo grid plays the
prompt's tempo, or none, so the model drifts onto a grid of its own (onset F1 0.41, tempo 12.6 %
off). So, before sampling, `prepare` hears the source:

- its BPM, first beat and downbeat and a confidence (`engine.beats.hear`, the tempo check's
  tracker), and its onsets (librosa's detector, `onsets`). The onsets settle two things the
  tracker can get wrong on a beatbox take (`swing_phase`): a tracker sitting on swung off-beats
  is moved to the on-beats, and a take whose onsets keep to the beat's two phases has a beat even
  when the tracker's confidence is low;
- the grid then plays the source's BPM with beat 0 on its first downbeat (metadata `beat_offset`,
  read by `ConditionedDiffusionModel.tempo_inputs`), `grid_lead_s` early (longplay-mini's hits
  sound ~60 ms after their grid line: median onset lag +15 ms at a lead of 45 ms, +1 ms at 60,
  -15 ms at 75),
  swung as the source swings (metadata `swing`: the grid's off-beat eighth where the source's
  falls, `engine.dit.swing_positions`), and at half the heard tempo when the take has nothing
  between its beats and was heard at 120 BPM or more (the tracker's double time);
- a request naming another BPM (`bpm`, or one in the prompt) has the source time-stretched to it
  first (pedalboard's Rubber Band, pitch kept); the recipe's `source_tempo` says what was heard and
  whether it was stretched, halved or swung.

Two ways of keeping the hits beside the grid were measured and are off by default (0.484 and 0.720
against 0.837 on the set at strength 0.7): holding onset frames to the source longer
(`hold`, "differential diffusion", Levin & Fried 2023: frame f's strength is
`s * (1 - hold * e_f)` and its denoised estimate is the source's latent while sigma is above that
strength's sigma, `HeldFrames`), which keeps this autoencoder's slow-rising rendering of the
syllables' attacks; and gating the output on the source's onsets (`gate_db`, `gate`).

librosa (onsets, beats) and pedalboard (stretch) are imported only when a source is heard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import sampling
from .beats import Beats, hear
from .request import RenderRequest

ANALYSIS_RATE = 22050
SWING_MIN = 0.04  # off-beats further than this from half a beat are swung
ON_GRID_MIN = 0.8  # a source with this share of its onsets on the beat's two phases has a beat
ONSET_HOP = 256


@dataclass(frozen=True)
class GrooveSettings:
    """How audio-to-audio treats a source. `DEFAULT` is what every door gets."""

    listen: bool = True  # hear the source's tempo and phase and play the grid on them
    hold: float = 0.0  # onset frames' strength is s * (1 - hold * onset strength)
    spread: int = 1  # frames after an onset frame that share its hold (a hit's body)
    min_confidence: float = 0.2  # under it the heard beat is not used for the grid
    max_stretch: float = 0.25  # a named BPM further than this from the heard one is not stretched to
    grid_lead_s: float = 0.06  # the grid's beats this much before the source's (the model's hits sound late)
    halve_above: float = 120.0  # a source heard this fast with nothing between its beats plays at half (0: never)
    swing: bool = True  # a swung source's grid swings too (its off-beat eighths where the source has them)
    gate_db: float | None = None  # gate the output on the source's hits: gain floor in dB (None: no gate)
    gate_decay: float = 0.5  # the gate's decay after a hit, as a share of the time to the next one


DEFAULT = GrooveSettings()


@dataclass
class Source:
    """An audio-to-audio source, heard and encoded: what `Generator` samples from."""

    latents: Tensor  # [1, C, L]
    onset_weight: np.ndarray | None  # [L] in [0, 1]: onset strength per latent frame (None: not held)
    onsets: np.ndarray | None  # the source's onset times in seconds (None: not heard)
    tempo: dict[str, Any] | None = None  # the recipe's source_tempo
    grid_bpm: float | None = None  # the tempo grid's BPM (None: leave it to the request)
    beat_offset: float = 0.0  # the grid's beat position at second 0 (the source's downbeat is beat 0)
    settings: GrooveSettings = field(default_factory=lambda: DEFAULT)

    def shape(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The decoded output `[C, N]`, gated on the source's hits when the settings ask for it."""
        if self.settings.gate_db is None or self.onsets is None or not len(self.onsets):
            return audio
        return gate(audio, sample_rate, self.onsets, self.settings.gate_db, self.settings.gate_decay)

    def meta(self) -> dict[str, Any]:
        """Metadata for the tempo grid (`ConditionedDiffusionModel.tempo_inputs`)."""
        out: dict[str, Any] = {"beat_offset": self.beat_offset} if self.beat_offset else {}
        if self.tempo and self.tempo.get("swing") and self.grid_bpm is not None:
            out["swing"] = float(self.tempo["swing"])
        return out

    def hold(self, denoiser: Callable[..., Tensor], req: RenderRequest, rf: bool) -> Callable[..., Tensor]:
        """`denoiser` with the per-frame strength schedule, or itself when nothing is held. The
        strengths map to sigmas as the transform's own (`Generator._schedule_and_start`)."""
        if self.settings.hold <= 0 or self.onset_weight is None or not np.any(self.onset_weight > 0):
            return denoiser
        assert req.sigma_min is not None and req.sigma_max is not None, "resolve() fills the sigmas"
        floor = max(req.sigma_min, 1e-3) if rf else req.sigma_min
        s = req.init_strength * (1.0 - self.settings.hold * np.clip(self.onset_weight, 0.0, 1.0))
        release = [sampling.init_sigma_for_strength(float(v), floor, req.sigma_max) for v in s]
        return HeldFrames(denoiser, self.latents, torch.tensor(release, dtype=torch.float32))


class HeldFrames:
    """A denoiser whose estimate of frame f is the source's latent while sigma > `release[f]`."""

    def __init__(self, denoiser: Callable[..., Tensor], source: Tensor, release: Tensor) -> None:
        self.denoiser, self.source, self.release = denoiser, source, release
        self.sigma_data = getattr(denoiser, "sigma_data", 1.0)

    def __call__(self, x: Tensor, sigma: Tensor, **extra: Any) -> Tensor:
        denoised = self.denoiser(x, sigma, **extra)  # [B, C, L]
        held = (float(sigma.max()) > self.release.to(denoised.device))[: denoised.shape[-1]]  # [L]
        if bool(held.any()):
            n = held.shape[0]
            src = self.source[..., :n].to(denoised.dtype)
            denoised[..., :n] = torch.where(held[None, None, :], src, denoised[..., :n])
        return denoised


def prepare(
    audio: np.ndarray,
    sample_rate: int,
    asked_bpm: float | None,
    beats_per_bar: int,
    seconds: float,
    settings: GrooveSettings | None = None,
) -> tuple[np.ndarray, dict[str, Any] | None, float | None, float]:
    """Hear `audio [C, N]`; stretch it to `asked_bpm` when that differs from what was heard.

    -> (the audio to encode, the recipe's `source_tempo` or None, the grid's BPM or None, the
    grid's beat offset). `seconds` is how much of the (stretched) source the render uses."""
    st = settings or DEFAULT
    if not st.listen:
        return audio, None, None, 0.0
    window = audio[:, : int(round(min(seconds, audio.shape[1] / sample_rate) * sample_rate))]
    beats = hear(window, sample_rate)
    if beats is None:
        return audio, {"heard": "no clear beat"}, None, 0.0
    tempo: dict[str, Any] = beats.as_dict()
    shift, share, swing = swing_phase(onsets(window, sample_rate)[0], beats.bpm, beats.first_beat)
    if shift:  # the tracker sat on the swung off-beats: move it to the on-beats
        tempo["first_beat_s"] = round(beats.first_beat + shift, 4)
    if st.swing and swing and abs(swing - 0.5) > SWING_MIN:
        tempo["swing"] = round(swing, 3)
    if beats.confidence < st.min_confidence and share < ON_GRID_MIN:
        tempo["heard"] = "no clear beat"
        return audio, tempo, None, 0.0
    tempo["onsets_on_grid"] = round(share, 3)
    bpm, downbeat = beats.bpm, beats.first_downbeat + shift
    if st.halve_above and swing == 0.0 and bpm >= st.halve_above and asked_bpm is None:
        # Every hit on a beat and none between, this fast: the hits are eighths of half the tempo
        # (a tracker's double time), and a grid at double tempo has the model play 16ths over them.
        bpm /= 2
        tempo["halved_from"] = round(beats.bpm, 3)
    if asked_bpm is not None:
        ratio = asked_bpm / _nearest_octave(beats, asked_bpm)
        if abs(ratio - 1.0) > 0.005:
            if abs(ratio - 1.0) > st.max_stretch:
                tempo["not_stretched"] = f"the source plays {beats.bpm:.1f} BPM, too far from {asked_bpm:g} to stretch"
                return audio, tempo, None, 0.0
            audio = stretch(audio, sample_rate, ratio)
            tempo["stretched"] = {"from_bpm": round(beats.bpm, 3), "to_bpm": asked_bpm, "ratio": round(ratio, 5)}
            downbeat /= ratio
        bpm = asked_bpm
    tempo["first_downbeat_s"] = round(downbeat, 4)
    return audio, tempo, bpm, -(downbeat - st.grid_lead_s) * bpm / 60.0


def swing_phase(
    times: np.ndarray, bpm: float, first_beat: float, tolerance: float = 0.06
) -> tuple[float, float, float]:
    """(seconds to move the beat by, share of onsets on the grid, where the off-beat falls in the
    beat: 0.5 straight, more when swung, 0 when no onsets fall between the beats) from the source's
    onsets.

    Onsets of a groove fall on two phases of the beat: 0 and the off-beat, at 0.5 when straight,
    later when swung (2/3 for triplet swing), so the on-beat is followed by the longer gap. A
    tracker can lock onto swung off-beats (beatbox "ts" hats carry the most flux); it then hears
    the beat at phase 0 and the on-beats earlier than half a beat after it. Then this moves the
    beat there. The share counts onsets within `tolerance` beats of either phase: a second
    opinion on whether there is a beat to play on when the tracker's confidence is low (a swung
    take's tracked beats wander between on- and off-beats)."""
    if len(times) < 8:
        return 0.0, 0.0, 0.5
    period = 60.0 / bpm
    phase = ((times - first_beat) / period) % 1.0

    def near(c: float) -> np.ndarray:
        d = np.abs(phase - c)
        return np.asarray(np.minimum(d, 1 - d) <= tolerance)

    on = near(0.0)
    grid = np.arange(0.15, 0.851, 0.01)
    counts = np.array([int(np.sum(near(float(c)) & ~on)) for c in grid])
    # The off-beat: the middle of the phases where the most onsets sit (a plateau as wide as the tolerance).
    if counts.max() < 0.25 * len(times):  # no off-beat to speak of: on-beats only, or no groove
        return 0.0, float(np.mean(on)), 0.0
    best = grid[counts == counts.max()]
    middle = phase[~on & (np.abs(phase - best.mean()) <= tolerance)]
    c = float(np.median(middle)) if middle.size else float(best[0])
    share = float(np.mean(on | near(c)))
    if c < 0.45:
        return c * period, share, 1.0 - c
    return 0.0, share, c


def _nearest_octave(beats: Beats, asked: float) -> float:
    """The heard BPM, halved or doubled to the octave nearest the asked one."""
    bpm = beats.bpm
    while bpm * 1.5 < asked:
        bpm *= 2
    while bpm / 1.5 > asked:
        bpm /= 2
    return bpm


def stretch(audio: np.ndarray, sample_rate: int, ratio: float) -> np.ndarray:
    """`audio [C, N]` played `ratio` times as fast, pitch kept (pedalboard's Rubber Band)."""
    import pedalboard

    out = pedalboard.time_stretch(np.ascontiguousarray(audio, dtype=np.float32), sample_rate, stretch_factor=ratio)
    return np.asarray(out, dtype=np.float32)


def onsets(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The source's onsets -> (times in seconds, strengths in [0, 1]): librosa's spectral-flux
    onset strength and peak picking (`onset_detect`), each peak over the 95th percentile of them."""
    import librosa

    from .audio_io import conform

    y = conform(audio, sample_rate, ANALYSIS_RATE, 1)[0]
    if not np.any(np.abs(y) > 1e-4):
        return np.zeros(0), np.zeros(0)
    env = librosa.onset.onset_strength(y=y, sr=ANALYSIS_RATE, hop_length=ONSET_HOP)
    peaks = librosa.onset.onset_detect(onset_envelope=env, sr=ANALYSIS_RATE, hop_length=ONSET_HOP, units="frames")
    if len(peaks) == 0:
        return np.zeros(0), np.zeros(0)
    level = np.clip(env[peaks] / max(float(np.percentile(env[peaks], 95)), 1e-9), 0.0, 1.0)
    return np.asarray(librosa.frames_to_time(peaks, sr=ANALYSIS_RATE, hop_length=ONSET_HOP)), level


def onset_weight(times: np.ndarray, level: np.ndarray, rate: float, frames: int, spread: int = 1) -> np.ndarray:
    """Onset strength per latent frame (`rate` frames per second) -> `[frames]` in [0, 1]: each
    onset on the frame centred nearest it (an encoder frame f is centred on sample f * hop) and
    `spread` frames either side."""
    out = np.zeros(frames, dtype=np.float32)
    for t, w in zip(times, level, strict=True):
        f = int(round(t * rate))
        for g in range(max(f - spread, 0), min(f + spread + 1, frames)):
            out[g] = max(out[g], float(w))
    return out


def gate(audio: np.ndarray, sample_rate: int, times: np.ndarray, floor_db: float, decay: float) -> np.ndarray:
    """`audio [C, N]` through a gate opened by the source's hits: full gain from each onset
    (2 ms attack), falling exponentially (time constant `decay` x the time to the next onset) to
    `floor_db` below, so the output's hits sound where the source's did and what the model
    played between them sits under them."""
    n = audio.shape[-1]
    floor = 10 ** (-abs(floor_db) / 20)
    env = np.full(n, floor, dtype=np.float32)
    attack = max(1, int(0.002 * sample_rate))
    ts = np.sort(times)
    for k, t in enumerate(ts):
        start = int(round(t * sample_rate)) - attack
        nxt = ts[k + 1] if k + 1 < len(ts) else t + 0.5
        tau = max(decay * (nxt - t), 0.01) * sample_rate
        end = min(n, int(round(nxt * sample_rate)) - attack)
        if end <= max(start, 0):
            continue
        i = np.arange(max(start, 0), end)
        g = np.where(i < start + attack, (i - start + 1) / attack, np.exp(-(i - start - attack) / tau))
        env[i] = np.maximum(env[i], floor + (1 - floor) * g.astype(np.float32))
    return (audio * env[None]).astype(np.float32)
