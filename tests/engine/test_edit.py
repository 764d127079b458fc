"""Extend and replace (engine/edit.py): the source is kept bit for bit outside the regenerated span
and its crossfades, the new span is music at the source's level, the junctions read like the
file's other bar lines, and bad ranges are refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine import Generator, RenderRequest, load_model
from engine.beats import hear
from engine.edit import CROSSFADE_S, splice
from engine.errors import RequestError
from engine.loops import boundary_z

RATE = 44100
BPM = 124.0
BAR = 4 * 60 / BPM * RATE
FADE = round(CROSSFADE_S * RATE)
JUNCTION_Z = 6.0  # as a loop's seam (tests/engine/test_loops.py)


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(load_model("longplay-mini"), device="cpu")


@pytest.fixture(scope="module")
def source(gen: Generator, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    audio = gen.render(RenderRequest("house, 124 BPM, drums, bass", bpm=BPM, bars=8, seed=3, steps=12))[0].audio
    path = tmp_path_factory.mktemp("edit") / "take.wav"
    sf.write(str(path), audio.T, RATE, subtype="FLOAT")
    return path, audio


def level(a: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(a.astype(np.float64) ** 2) + 1e-12))


def test_extend_keeps_the_source_and_adds_exact_bars(gen: Generator, source: tuple[Path, np.ndarray]) -> None:
    path, audio = source
    req = RenderRequest(
        "house, 124 BPM, drums, bass", bpm=BPM, bars=4, seed=1, steps=12, edit="extend", edit_source=str(path)
    )
    out = gen.render(req)[0]
    n = audio.shape[1]
    assert out.audio.shape == (2, n + round(4 * BAR))
    assert np.array_equal(out.audio[:, : n - FADE], audio[:, : n - FADE])  # bit for bit before the crossfade
    assert abs(level(out.audio[:, n:]) - level(audio[:, n - round(2 * BAR) :])) < 6.0
    flux, step = boundary_z(out.audio, [round(k * BAR) for k in range(8, 12)] + [n], at=n)
    assert abs(flux) <= JUNCTION_Z and abs(step) <= JUNCTION_Z, (flux, step)
    assert out.recipe["edit_bpm"] == BPM and out.recipe["edit_bpm_heard"] is False
    heard = hear(out.audio[:, n - round(2 * BAR) :], RATE, bpm_hint=BPM)  # the tempo runs on into the new bars
    assert heard is not None and heard.bpm == pytest.approx(BPM, rel=0.02)
    assert np.array_equal(gen.render(req)[0].audio, out.audio)  # same seed, same extension


def test_replace_keeps_everything_outside_the_bars(gen: Generator, source: tuple[Path, np.ndarray]) -> None:
    """Outside the bars the source to the sample; at the two junctions no more change than at the
    source's own bar lines. The junction measure is judged over five seeds, at most one of them past
    the line: one seed alone was a coin toss (session 20, on the old source: seed 3's entry at
    z -9.6; on today's: seed 2's exit at -6.3, the other nine junctions under 3.8)."""
    path, audio = source
    lo, hi = round(2 * BAR), round(5 * BAR)
    past = []
    for seed in (1, 2, 3, 4, 5):
        req = RenderRequest(
            "techno, 124 BPM", bpm=BPM, seed=seed, steps=12, edit="replace", edit_source=str(path), from_bar=3, to_bar=5
        )
        out = gen.render(req)[0].audio
        assert out.shape == audio.shape
        assert np.array_equal(out[:, : lo - FADE], audio[:, : lo - FADE])
        assert np.array_equal(out[:, hi + FADE :], audio[:, hi + FADE :])
        assert np.abs(out[:, lo:hi] - audio[:, lo:hi]).mean() > 1e-3  # the bars were regenerated
        for at in (lo, hi):
            flux, step = boundary_z(out, [round(k * BAR) for k in range(1, 8)], at=at)
            if abs(flux) > JUNCTION_Z or abs(step) > JUNCTION_Z:
                past.append((seed, at, round(flux, 2), round(step, 2)))
    assert len(past) <= 1, past


def test_the_tempo_is_heard_when_not_given(gen: Generator, source: tuple[Path, np.ndarray]) -> None:
    path, audio = source
    out = gen.render(RenderRequest("house", bars=1, seed=1, steps=4, edit="extend", edit_source=str(path)))[0]
    assert out.recipe["edit_bpm_heard"] is True and out.recipe["edit_bpm"] == pytest.approx(BPM, rel=0.01)
    assert out.audio.shape[1] == pytest.approx(audio.shape[1] + BAR, abs=0.01 * BAR)


def test_bad_edits_are_refused_by_name(gen: Generator, source: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, _ = source
    with pytest.raises(RequestError, match=r"bars 7-12 end at .* past the source's end"):
        gen.render(RenderRequest("x", bpm=BPM, edit="replace", edit_source=str(path), from_bar=7, to_bar=12, steps=2))
    with pytest.raises(RequestError, match="replace needs from_bar and to_bar"):
        gen.resolve(RenderRequest("x", bpm=BPM, edit="replace", edit_source=str(path), from_bar=4, to_bar=2))
    with pytest.raises(RequestError, match="extend needs bars"):
        gen.resolve(RenderRequest("x", edit="extend", edit_source=str(path)))
    with pytest.raises(RequestError, match="edit must be one of"):
        gen.resolve(RenderRequest("x", edit="stretch", edit_source=str(path)))
    noise = tmp_path / "noise.wav"
    sf.write(str(noise), np.random.default_rng(0).standard_normal((RATE * 4, 2)) * 0.01, RATE)
    with pytest.raises(RequestError, match="no steady tempo could be heard"):
        gen.render(RenderRequest("x", bars=1, edit="extend", edit_source=str(noise), steps=2))


def test_splice_is_the_source_outside_and_crossfades_across() -> None:
    source = np.ones((1, 1000), dtype=np.float32)
    decoded = np.full((1, 1200), 2.0, dtype=np.float32)  # starts at sample 0 of the piece
    out = splice(source, decoded, 0, 400, 600, 1000, 50)
    assert np.array_equal(out[:, :350], source[:, :350]) and np.array_equal(out[:, 650:], source[:, 650:])
    assert np.array_equal(out[:, 400:600], decoded[:, 400:600])
    assert np.all(np.diff(out[0, 350:400]) >= 0) and np.all(np.diff(out[0, 600:650]) <= 0)  # smooth both ways
