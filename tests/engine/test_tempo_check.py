"""The tempo check (engine/tempo_check.py): renders with a tempo are heard, judged and, with
`snap`, stretched onto the exact grid at their exact length."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from engine import Generator, Progress, RenderCancelled, RenderRequest, RequestError, load_model
from engine.beats import hear
from engine.request import RenderResult
from engine.tempo_check import Checking, judge, measure, snap_reason
from tests.engine.test_beats import RATE, groove

pytest.importorskip("librosa")
pytest.importorskip("pedalboard")


def test_verdicts() -> None:
    assert judge(124.0, 124.1, 0.0, 0.8).verdict == "on tempo"
    off = judge(124.0, 126.48, 0.0, 0.8)
    assert off.verdict == "off by +2.0 %" and off.error == pytest.approx(0.02)
    assert judge(124.0, 121.0, 0.0, 0.8).verdict == "off by -2.4 %"
    assert judge(124.0, 124.5, 0.0, 0.8).verdict == "off by +0.40 %"
    half = judge(124.0, 62.05, 0.0, 0.8)
    assert half.verdict == "half time" and half.level == 0.5 and abs(half.error or 1) < 0.002
    assert judge(90.0, 183.6, 0.0, 0.8).verdict == "double time, off by +2.0 %"
    assert judge(124.0, 100.0, 0.0, 0.8).verdict == "off by -19.4 %"
    assert judge(124.0, 124.0, 0.0, 0.05).verdict == "no clear beat"
    short = measure(np.zeros((2, RATE), dtype=np.float32), RATE, 120.0)
    assert short.bpm is None and short.verdict == "too short to hear"


def test_why_not_snapped() -> None:
    req = RenderRequest("x", bpm=124.0, bars=8, snap=True)
    assert snap_reason(judge(124.0, 126.48, 0.0, 0.8), req) is None
    assert snap_reason(judge(124.0, 124.1, 0.0, 0.8), req) == "on tempo already"
    assert "more than a snap corrects" in str(snap_reason(judge(124.0, 140.0, 0.0, 0.8), req))
    assert "not clear enough" in str(snap_reason(judge(124.0, 126.48, 0.0, 0.25), req))
    assert "loop" in str(snap_reason(judge(124.0, 126.48, 0.0, 0.8), dataclasses.replace(req, loop=True)))
    extend = dataclasses.replace(req, edit="extend")
    assert "extend or replace" in str(snap_reason(judge(124.0, 126.48, 0.0, 0.8), extend))


def test_snap_needs_a_tempo_and_a_bar() -> None:
    with pytest.raises(RequestError, match="snap needs a tempo"):
        Checking(RenderRequest("ambient pads", seconds=4.0, snap=True), None, None)
    Checking(RenderRequest("house, 124 BPM", seconds=4.0, snap=True), None, None)  # the prompt names one
    with pytest.raises(RequestError, match="beats_per_bar must be"):
        Checking(RenderRequest("house", bpm=124.0, seconds=4.0, beats_per_bar=0), None, None)


@pytest.mark.parametrize("off", [0.02, -0.03])
def test_snap_puts_an_off_tempo_groove_on_the_grid_at_its_length(off: float) -> None:
    """8 bars asked at 124 BPM, played 2 % fast (or 3 % slow): snapped, the groove is heard at 124
    within 0.2 %, is exactly the 8 bars' samples long, and the recipe says what was done."""
    asked, bars = 124.0, 8
    n = round(bars * 4 * 60 / asked * RATE)
    audio = groove(asked * (1 + off), n / RATE + 1.0)[:, :n]  # [2, n]: the off-tempo take, cut bar-exact
    req = RenderRequest("house", bpm=asked, bars=bars, snap=True, fade_ms=3.0, loudness=-14.0)
    result = RenderResult(audio.copy(), RATE, 1, n / RATE, 0, {})
    stages: list[Progress] = []
    [out] = Checking(req, stages.append, None).finish([result])
    check = out.recipe["tempo_check"]
    assert check["snapped"]["from_bpm"] == pytest.approx(asked * (1 + off), rel=0.002)
    assert check["snapped"]["ratio"] == pytest.approx(1 / (1 + off), rel=0.002)
    assert out.audio.shape == (2, n) and out.audio.dtype == np.float32
    again = hear(out.audio, RATE, asked)
    assert again is not None and again.bpm == pytest.approx(asked, rel=0.002)
    assert check["bpm"] == pytest.approx(asked, rel=0.002) and check["verdict"] == "on tempo"
    assert np.abs(out.audio[:, -1]).max() == 0  # the end fade is there again: no click at the cut
    # Normalized again after the stretch: peaks under -1 dBFS (this groove's crest factor stops the gain).
    assert out.recipe["loudness_out"] is not None and np.abs(out.audio).max() <= 10 ** (-1 / 20) + 1e-6
    assert [p.stage for p in stages] == ["checking", "checking", "done"]


def test_not_snapped_says_why() -> None:
    n = round(8 * 4 * 60 / 124 * RATE)
    req = RenderRequest("house", bpm=124.0, bars=8, snap=True)
    [out] = Checking(req, None, None).finish([RenderResult(groove(124.0, 16.0)[:, :n], RATE, 1, 1.0, 0, {})])
    assert out.recipe["tempo_check"]["not_snapped"] == "on tempo already"
    assert "snapped" not in out.recipe["tempo_check"]


@pytest.fixture(scope="module")
def mini() -> Generator:
    return Generator(load_model("longplay-mini"), device="cpu")


def test_the_embedded_model_is_heard_at_the_tempo_asked(mini: Generator) -> None:
    """longplay-mini keeps its tempo within ~1 %: a render asked at 124 BPM is heard within 3 % of
    it, the progress bar runs through "checking" to "done" last, and a render without a tempo has
    no check."""
    seen: list[Progress] = []
    [res] = mini.render(RenderRequest("house, drums", bpm=124.0, seconds=8.0, steps=4, seed=3), seen.append)
    check = res.recipe["tempo_check"]
    assert check["asked_bpm"] == 124.0 and check["bpm"] == pytest.approx(124.0, rel=0.03)
    precision = 2 if abs(check["error"]) < 0.01 else 1  # the verdict's own format: "+0.23 %", "+1.4 %"
    verdicts = ("on tempo", f"off by {check['error'] * 100:+.{precision}f} %")
    assert check["confidence"] > 0.3 and check["verdict"] in verdicts
    assert 0 <= check["first_downbeat_s"] < 4 * 60 / 124
    stages = [p.stage for p in seen]
    assert stages[-1] == "done" and stages.count("done") == 1 and "checking" in stages
    assert stages.index("checking") > max(i for i, s in enumerate(stages) if s == "decoding")
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0

    [plain] = mini.render(RenderRequest("house, drums", seconds=3.0, steps=2, seed=3))
    assert "tempo_check" not in plain.recipe


def test_a_real_render_is_snapped_onto_a_grid_two_percent_away(mini: Generator) -> None:
    """8 bars of longplay-mini asked at 124 with snap: on tempo, left alone (or snapped), exactly
    8 bars long. The same audio checked against 126.5 BPM (2 % away) is stretched onto that grid:
    heard again within 0.2 % of it, at the same length."""
    req = RenderRequest("house, drums", bpm=124.0, bars=8, steps=4, seed=3, snap=True)
    [res] = mini.render(req)
    check = res.recipe["tempo_check"]
    assert res.audio.shape[-1] == round(8 * 4 * 60 / 124 * 44100)
    assert ("snapped" in check) != ("not_snapped" in check) and check["bpm"] == pytest.approx(124.0, rel=0.03)
    faster = dataclasses.replace(req, bpm=126.5)
    [out] = Checking(faster, None, None).finish([dataclasses.replace(res, recipe={})])
    assert out.recipe["tempo_check"]["snapped"]["ratio"] == pytest.approx(126.5 / check["bpm"], rel=0.002)
    again = hear(out.audio, RATE, 126.5)
    assert out.audio.shape == res.audio.shape and again is not None and again.bpm == pytest.approx(126.5, rel=0.002)


def test_cancel_during_the_check(mini: Generator) -> None:
    cancel = threading.Event()

    def on_progress(p: Progress) -> None:
        if p.stage == "checking":
            cancel.set()

    with pytest.raises(RenderCancelled):
        mini.render(RenderRequest("house, drums", bpm=124.0, seconds=3.0, steps=2, seed=1), on_progress, cancel)


def test_audio_to_audio_without_a_bpm_is_checked_against_its_source(mini: Generator, tmp_path) -> None:  # noqa: ANN001
    """A transform with no bpm plays the tempo heard in its source: that is what it is checked
    against, and the progress bar still ends with one "done"."""
    import soundfile as sf

    path = tmp_path / "groove.wav"
    sf.write(str(path), groove(124.0, 10.0).T, RATE)
    seen: list[Progress] = []
    [res] = mini.render(RenderRequest("drums", init_audio=str(path), seconds=10.0, steps=4, seed=1), seen.append)
    check = res.recipe["tempo_check"]
    assert check["asked_bpm"] == pytest.approx(res.recipe["grid_bpm"]) and check["asked_bpm"] == pytest.approx(
        124.0, rel=0.02
    )
    assert [p.stage for p in seen].count("done") == 1 and seen[-1].stage == "done"
