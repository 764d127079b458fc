"""The held-out beatbox set (lab/evaluation/beatbox_set.py): what issue 20 asks of it."""

from __future__ import annotations

import numpy as np
import pytest

from lab.evaluation import beatbox, beatbox_set
from lab.evaluation.groove_eval import spectrum_distance
from lab.evaluation.music import detect_onsets, onset_f_measure

pytestmark = pytest.mark.skipif(not beatbox.espeak_available(), reason="espeak-ng is not installed (make apt)")


def test_the_set_spans_voices_tempos_and_swing_and_is_deterministic() -> None:
    takes = beatbox_set.make_set(24, seconds=4.0, sample_rate=22050, channels=1)
    assert len(takes) == 24 and len({t.name for t in takes}) == 24
    bpms = [t.clip.bpm for t in takes]
    assert min(bpms) >= 70 and max(bpms) <= 160 and max(bpms) - min(bpms) > 70
    assert {t.swing for t in takes} == {0.5, beatbox_set.SWING} and len({t.voice for t in takes}) >= 4
    assert len({t.pitch for t in takes}) >= 10
    again = beatbox_set.make_set(24, seconds=4.0, sample_rate=22050, channels=1)
    assert all(np.array_equal(a.clip.audio, b.clip.audio) for a, b in zip(takes, again, strict=True))
    for t in takes[::6]:  # the onsets are where the audio's attacks are, room and noise included
        assert onset_f_measure(t.clip.onsets, detect_onsets(t.clip.audio, 22050)).f_measure >= 0.85
        assert t.clip.onsets[0] == pytest.approx(t.lead_in)


def test_swung_offbeats_fall_where_asked() -> None:
    clip = beatbox.make_beatbox(bpm=100.0, seconds=2.4, sample_rate=22050, channels=1, swing=0.62, lead_in=0.1)
    assert np.allclose(clip.onsets[:4], [0.1, 0.1 + 0.62 * 0.6, 0.7, 0.7 + 0.62 * 0.6])


def test_spectrum_distance_is_zero_for_the_same_audio_and_grows_with_a_filter() -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((1, 22050)).astype(np.float32)
    dull = np.cumsum(noise, axis=1).astype(np.float32)  # a low-passed copy
    assert spectrum_distance(noise, noise, 22050) == 0.0
    assert spectrum_distance(noise, dull, 22050) > 5.0
