"""The beat tracker (engine/beats.py) hears the tempo, phase and bar line of audio with known beats."""

from __future__ import annotations

import numpy as np
import pytest

from engine.beats import hear

pytest.importorskip("librosa")

RATE = 44100


def groove(bpm: float, seconds: float, offset: float = 0.0, beats_per_bar: int = 4) -> np.ndarray:
    """A kick on every beat (beat 1 accented, with a chord that changes each bar) and off-beat hats."""
    n = int(seconds * RATE)
    y = np.zeros(n, dtype=np.float32)
    rng = np.random.default_rng(0)
    period = 60.0 / bpm
    t = np.arange(int(0.25 * RATE)) / RATE
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-t * 18)
    hat = rng.standard_normal(int(0.03 * RATE)) * np.exp(-np.arange(int(0.03 * RATE)) / 200) * 0.2
    chords = [(220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (164.8, 207.7, 246.9)]
    k = 0
    while offset + k * period < seconds:
        at = int((offset + k * period) * RATE)
        gain = 1.0 if k % beats_per_bar == 0 else 0.5
        y[at : at + len(kick)] += (gain * kick)[: n - at]
        half = int((offset + (k + 0.5) * period) * RATE)
        if half < n:
            y[half : half + len(hat)] += hat[: n - half]
        if k % beats_per_bar == 0:  # a new chord each bar, held for the bar
            bar = int(beats_per_bar * period * RATE)
            tt = np.arange(min(bar, n - at)) / RATE
            y[at : at + len(tt)] += 0.05 * sum(np.sin(2 * np.pi * f * tt) for f in chords[(k // beats_per_bar) % 4])
        k += 1
    return np.stack([y, y])


@pytest.mark.parametrize("bpm,offset", [(92.0, 0.0), (124.0, 0.21), (171.0, 0.05)])
def test_hears_the_tempo_phase_and_bar_line(bpm: float, offset: float) -> None:
    beats = hear(groove(bpm, 20.0, offset), RATE, bpm_hint=bpm)
    assert beats is not None
    period = 60.0 / bpm
    assert beats.bpm == pytest.approx(bpm, rel=0.005)
    assert abs((beats.first_beat - offset + period / 2) % period - period / 2) < 0.03
    bar = 4 * period
    assert abs((beats.first_downbeat - offset + bar / 2) % bar - bar / 2) < 0.03
    assert beats.confidence > 0.5


def test_without_a_hint_and_off_the_hint() -> None:
    """Blind, the tracker finds a steady 124; told 120, it still reports what is played."""
    audio = groove(124.0, 20.0)
    for hint in (None, 120.0):
        beats = hear(audio, RATE, bpm_hint=hint)
        assert beats is not None and beats.bpm == pytest.approx(124.0, rel=0.01)


def test_silence_noise_and_short_audio_have_no_confident_beat() -> None:
    assert hear(np.zeros((2, RATE * 5), dtype=np.float32), RATE) is None
    assert hear(groove(120.0, 1.0), RATE) is None  # under MIN_SECONDS
    noise = np.random.default_rng(1).standard_normal((2, RATE * 10)).astype(np.float32) * 0.1
    beats = hear(noise, RATE)
    assert beats is None or beats.confidence < 0.3
