"""Mix rendered stems into a finished stereo track with pedalboard.

Each stem is levelled by its own loudness (General MIDI patches differ by 20 dB), then gets a
channel strip (high-pass, EQ, compression), a pan and a reverb send. The master is normalised
and brick-wall limited to a true-peak ceiling.

Freeverb is linear and time-invariant, so one reverb on the summed sends equals the sum of one
reverb per stem. The mix therefore uses a single reverb bus, and only the stems that are asked
for get their own wet signal: stems and mix still add up, at a fifth of the reverb cost.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pedalboard as pb

CEILING_DBTP = -1.0  # true-peak ceiling of every written file (streaming-platform practice)


@dataclass(frozen=True)
class Strip:
    """One stem's channel strip."""

    level_db: float  # target RMS over the stem's active frames, dBFS
    highpass_hz: float
    pan: float  # -1 left … +1 right
    send: float  # reverb send, linear
    comp_threshold_db: float
    comp_ratio: float
    shelf_hz: float  # high shelf: air on the melody, tamer GM hi-hats, darker pads
    shelf_db: float


BASE: dict[str, Strip] = {
    "drums": Strip(-17.0, 30.0, 0.0, 0.06, -20.0, 3.0, 8000.0, -1.5),
    "bass": Strip(-19.0, 28.0, 0.0, 0.0, -22.0, 4.0, 3000.0, -3.0),
    "chords": Strip(-22.0, 140.0, 0.3, 0.18, -22.0, 2.0, 6000.0, -1.0),
    "melody": Strip(-21.0, 180.0, 0.1, 0.22, -20.0, 2.5, 7000.0, 1.5),
    "extra": Strip(-24.0, 200.0, -0.35, 0.3, -24.0, 2.0, 7000.0, 0.0),
}
# Where the genre's idiom moves the balance, in dB (level) or absolute (send).
LEVEL_SHIFT: dict[str, dict[str, float]] = {
    "ambient": {"chords": 4.0, "extra": 2.0, "melody": -1.0},
    "cinematic": {"chords": 4.0, "melody": 1.0, "extra": 1.0},
    "techno": {"drums": 1.5, "extra": 2.0, "melody": -2.0},
    "house": {"drums": 1.0},
    "jazz": {"drums": -4.0, "melody": 2.0, "chords": 1.0},
    "rock": {"chords": 3.0, "drums": 1.0},
    "lo-fi": {"drums": -1.0, "chords": 2.0},
    "drum and bass": {"drums": 1.5, "bass": 1.0},
    "reggae": {"bass": 1.5, "chords": -1.0},
}
ROOM = {
    "ambient": (0.92, 2.2),
    "cinematic": (0.85, 1.6),
    "jazz": (0.45, 0.8),
    "lo-fi": (0.5, 0.9),
    "rock": (0.55, 1.0),
    "techno": (0.7, 1.0),
    "house": (0.6, 1.0),
    "drum and bass": (0.65, 1.0),
}
LOWPASS = {"lo-fi": (5500.0, 8500.0)}  # the genre's tape-and-vinyl darkness, per stem so stems sum


@dataclass(frozen=True)
class MixPlan:
    strips: dict[str, Strip]
    room_size: float
    send_scale: float
    lowpass_hz: float | None
    loudness_db: float  # target RMS of the master before limiting


def plan_mix(genre: str, stems: Sequence[str], rng: random.Random) -> MixPlan:
    """Per-song mix decisions: balance jitter, mirrored pans, room, loudness."""
    side = rng.choice((-1.0, 1.0))  # chords and extra sit on opposite sides, which side varies
    strips = {}
    for stem in stems:
        base = BASE[stem]
        level = base.level_db + LEVEL_SHIFT.get(genre, {}).get(stem, 0.0) + rng.uniform(-1.5, 1.5)
        pan = base.pan * side * rng.uniform(0.6, 1.2)
        strips[stem] = Strip(
            level,
            base.highpass_hz,
            max(-1.0, min(1.0, pan)),
            base.send,
            base.comp_threshold_db,
            base.comp_ratio,
            base.shelf_hz,
            base.shelf_db,
        )
    room, send_scale = ROOM.get(genre, (0.6, 1.0))
    lp = LOWPASS.get(genre)
    return MixPlan(
        strips, room, send_scale * rng.uniform(0.8, 1.2), rng.uniform(*lp) if lp else None, rng.uniform(-17.0, -13.0)
    )


def active_rms_db(audio: np.ndarray, sr: int) -> float:
    """RMS in dBFS over the frames where the stem actually plays (-120 for silence).

    A melody that enters in the first chorus would read 10 dB quiet over the whole song and
    then be pushed too loud; measuring only where it sounds levels what a listener hears.
    """
    frame = sr // 10
    n = audio.shape[-1] // frame
    if n == 0:
        return -120.0
    energy = (audio[:, : n * frame].reshape(audio.shape[0], n, frame) ** 2).mean(axis=(0, 2))  # [n]
    loud = energy[energy > max(energy.max() * 1e-4, 1e-10)]
    return 10 * math.log10(float(loud.mean())) if loud.size else -120.0


def _pan(audio: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power balance of a stereo signal; 0 leaves it untouched."""
    angle = (pan + 1) * math.pi / 4
    gains = np.array([math.cos(angle), math.sin(angle)], dtype=np.float32)[:, None] * math.sqrt(2)
    return audio * gains


def true_peak(audio: np.ndarray, floor: float = 0.5) -> float:
    """Peak of ``[C, N]`` audio 4x oversampled (ITU-R BS.1770 style), linear.

    Only samples above ``floor`` times the sample peak are interpolated around: an inter-sample
    peak sits next to large samples, and 6 dB of overshoot does not happen in band-limited
    music. That keeps a 285 s master to a fraction of a second.
    """
    sample_peak = float(np.abs(audio).max(initial=0.0))
    if sample_peak == 0.0:
        return 0.0
    taps = np.arange(-16, 16, dtype=np.float64)
    window = np.kaiser(32, 6.0)
    # [32, 3]: fractional-delay filters for the 1/4, 2/4, 3/4 positions between samples
    bank = np.stack([np.sinc(taps + phase) * window for phase in (0.25, 0.5, 0.75)], axis=1)
    bank = (bank / bank.sum(axis=0, keepdims=True)).astype(np.float32)
    peak = sample_peak
    for ch in audio:
        padded = np.pad(ch.astype(np.float32), (16, 16))
        views = np.lib.stride_tricks.sliding_window_view(padded, 32)  # [N + 1, 32], no copy
        loud = np.abs(ch) > floor * sample_peak
        loud[:-1] |= loud[1:]  # interpolate on both sides of each loud sample
        rows = np.flatnonzero(loud) + 1
        for lo in range(0, rows.size, 65536):
            peak = max(peak, float(np.abs(views[rows[lo : lo + 65536]] @ bank).max()))
    return peak


def _strip_board(strip: Strip, lowpass_hz: float | None) -> pb.Pedalboard:
    plugins: list[pb.Plugin] = [
        pb.HighpassFilter(cutoff_frequency_hz=strip.highpass_hz),
        pb.HighShelfFilter(cutoff_frequency_hz=strip.shelf_hz, gain_db=strip.shelf_db),
        pb.Compressor(threshold_db=strip.comp_threshold_db, ratio=strip.comp_ratio, attack_ms=8.0, release_ms=120.0),
    ]
    if lowpass_hz is not None:
        plugins.append(pb.LowpassFilter(cutoff_frequency_hz=lowpass_hz))
    return pb.Pedalboard(plugins)


def mix(
    dry: Mapping[str, np.ndarray], sr: int, plan: MixPlan, keep: Sequence[str] = ()
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """-> (master ``[2, N]``, processed stems ``[2, N]`` for the names in ``keep``).

    The kept stems carry their reverb and the master gain, but not the limiter, so
    ``sum(stems) ≈ master`` wherever the limiter is idle.
    """
    n = next(iter(dry.values())).shape[-1]
    bus = np.zeros((2, n), dtype=np.float32)
    sends = np.zeros((2, n), dtype=np.float32)
    wet_stems: dict[str, np.ndarray] = {}
    reverb = pb.Reverb(room_size=plan.room_size, damping=0.5, wet_level=1.0, dry_level=0.0, width=1.0)
    for stem, audio in dry.items():
        strip = plan.strips[stem]
        gain = 10 ** ((strip.level_db - active_rms_db(audio, sr)) / 20)
        processed = _strip_board(strip, plan.lowpass_hz)(audio * np.float32(min(gain, 1e3)), sr)
        # The compressor and filters take a different bite out of each stem; make-up gain after
        # the strip lands every stem on its planned level, so the balance is the plan's.
        makeup = 10 ** ((strip.level_db - active_rms_db(processed, sr)) / 20)
        processed = _pan(processed * np.float32(min(makeup, 1e3)), strip.pan)
        send = processed * np.float32(strip.send * plan.send_scale)
        bus += processed
        sends += send
        if stem in keep:
            reverb.reset()
            wet_stems[stem] = processed + reverb(send, sr)
    reverb.reset()
    bus += reverb(sends, sr)
    master_gain = np.float32(10 ** ((plan.loudness_db - active_rms_db(bus, sr)) / 20))
    # Sample-peak limiting 0.8 dB under the ceiling, then an exact true-peak check: pedalboard's
    # oversampled detector costs 20x more than the rest of the master and still needs the check.
    limiter = pb.BrickwallLimiter(ceiling_db=CEILING_DBTP - 0.8, release_ms=80.0, true_peak=False)
    master = limiter(bus * master_gain, sr)
    ceiling = 10 ** (CEILING_DBTP / 20)
    master = _under_ceiling(master, ceiling)
    stems = {name: _under_ceiling(audio * master_gain, ceiling) for name, audio in wet_stems.items()}
    return master.astype(np.float32), stems


def _under_ceiling(audio: np.ndarray, ceiling: float) -> np.ndarray:
    """Scale down whatever the limiter (or a lone stem) left above the true-peak ceiling."""
    sample_peak = float(np.abs(audio).max(initial=0.0))
    # Inter-sample peaks stay well within 6 dB of the sample peak; skip the costly check below.
    peak = true_peak(audio) if sample_peak > ceiling / 2 else sample_peak
    return (audio * np.float32(ceiling / peak)).astype(np.float32) if peak > ceiling else audio.astype(np.float32)
