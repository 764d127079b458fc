"""Seamless loops (engine/loops.py): exact bars, no seam when played end-to-start, the same loop
for the same seed, and a seam statistic that fails on a hard cut."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import Generator, RenderRequest, load_model
from engine.beats import hear
from engine.dit import beat_features
from engine.errors import RequestError
from engine.loops import GOLDEN, circular, plan, resample_periodic, seam_z

RATE = 44100
SEAM_Z = 6.0  # |z| a seam may read against the file's other beat lines (see seam_z)


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(load_model("longplay-mini"), device="cpu")


@pytest.mark.parametrize(
    "prompt,bpm,bars,seed",
    [("house, 124 BPM, drums, bass", 124.0, 4, 3), ("techno, 135 BPM", 135.0, 8, 1)],
)
def test_a_loop_is_bar_exact_and_has_no_seam(gen: Generator, prompt: str, bpm: float, bars: int, seed: int) -> None:
    result = gen.render(RenderRequest(prompt, bpm=bpm, bars=bars, seed=seed, steps=20, loop=True))[0]
    assert result.audio.shape == (2, round(bars * 4 * 60 / bpm * RATE))
    flux, level = seam_z(result.audio, bars * 4)
    assert abs(flux) <= SEAM_Z and abs(level) <= SEAM_Z, (flux, level)
    heard = hear(np.concatenate([result.audio] * 2, axis=1), RATE, bpm_hint=bpm)  # the tempo asked for
    assert heard is not None and heard.bpm == pytest.approx(bpm, rel=0.02)
    loop = result.recipe["loop"]
    assert abs(loop["stretch"] - 1) < 0.01 and loop["grid_bpm"] == pytest.approx(bpm * loop["stretch"], rel=1e-4)


def test_the_same_seed_renders_the_same_loop(gen: Generator) -> None:
    req = RenderRequest("lo-fi, 80 BPM", bpm=80.0, bars=1, seed=9, steps=6, loop=True)
    assert np.array_equal(gen.render(req)[0].audio, gen.render(req)[0].audio)


def test_the_seam_statistic_fails_on_a_hard_cut() -> None:
    """A tone whose last cycle is cut short, with a level that ramps over the file, is a hard
    cut when looped; the same tone with whole cycles and a level that returns is not."""
    beats, n = 16, 4 * RATE
    t = np.arange(n) / RATE
    whole = np.sin(2 * np.pi * 220 * t) * (0.6 + 0.3 * np.cos(2 * np.pi * t / 4))
    cut = np.sin(2 * np.pi * 220.37 * t) * np.linspace(0.2, 0.9, n)
    assert max(abs(z) for z in seam_z(whole[None], beats)) < SEAM_Z
    assert max(abs(z) for z in seam_z(cut[None], beats)) > 3 * SEAM_Z


def test_circular_sampling_rolls_the_tempo_grid_with_the_latents() -> None:
    """Every call sees a different roll; the grid the network is given matches the frames it sees."""
    frames, per_frame = 40, 0.25
    tempo = torch.tensor([[per_frame, 10.0, frames * per_frame]], dtype=torch.float64)  # wraps at 10 beats
    seen: list[float] = []

    def inner_for(grid: torch.Tensor | None):  # noqa: ANN202 - a test double
        assert grid is not None

        def inner(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            seen.append(float(x[0, 0, 0]))
            beat = beat_features(grid, frames)[0, :, -2]  # the 4-bar phrase's sine, as the DiT sees it
            return beat.to(x.dtype)[None, None].expand_as(x).clone()

        return inner

    net = circular(inner_for, tempo, frames)
    x = torch.arange(frames, dtype=torch.float64)[None, None]
    for _ in range(5):
        out = net(x, torch.zeros(1))
        expected = beat_features(tempo, frames)[0, :, -2].double()
        assert torch.allclose(out[0, 0], expected, atol=1e-6)  # rolled back: each frame its own grid position
    assert len(set(seen)) == 5 and seen[0] != 0.0  # five different rolls, the first one too


def test_a_short_loop_is_shown_to_the_network_as_long_as_it_trained_on() -> None:
    """A 2-bar loop (86 frames) of a model that trained on 1,024-frame crops is seen as 12 copies
    in a row, never past the window; each call's output is the mean over the copies, rolled back;
    a loop as long as the crop is seen once. (On its 86 frames alone longplay-mini v2 rendered 5 of
    10 seeds of a 2-bar "drums" loop as silence; issue 19.)"""
    assert plan(round(8 * 0.5 * 44100), 120.0, 2048, 2, 6144, 1024).tiles == 12
    assert plan(round(8 * 0.5 * 44100), 120.0, 2048, 2, 600, 1024).tiles == 6  # the window caps it
    assert plan(round(96 * 0.5 * 44100), 120.0, 2048, 2, 6144, 1024).tiles == 1
    frames, tiles = 10, 3
    lengths: list[int] = []

    def inner_for(grid: torch.Tensor | None):  # noqa: ANN202 - a test double
        def inner(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            lengths.append(x.shape[-1])
            copies = x.unflatten(-1, (tiles, frames))
            assert torch.equal(copies[..., 0, :], copies[..., 2, :])  # the same circle, thrice
            return x * torch.arange(1, 1 + tiles * frames, dtype=x.dtype)  # a different output per copy

        return inner

    x = torch.randn(2, 4, frames, dtype=torch.float64)
    out = circular(inner_for, None, frames, tiles)(x, torch.zeros(1))
    shift = round(GOLDEN * frames) % frames
    weights = torch.arange(1, 1 + tiles * frames, dtype=x.dtype).unflatten(-1, (tiles, frames)).mean(0)
    assert lengths == [tiles * frames]
    assert torch.allclose(out, torch.roll(torch.roll(x, -shift, -1) * weights, shift, -1))


def test_periodic_resampling_is_exact_for_a_periodic_signal() -> None:
    n, m = 2048 * 10, 20000
    x = np.stack([np.sin(2 * np.pi * 7 * np.arange(n) / n), np.cos(2 * np.pi * 3 * np.arange(n) / n)])
    y = resample_periodic(x, m)
    ref = np.stack([np.sin(2 * np.pi * 7 * np.arange(m) / m), np.cos(2 * np.pi * 3 * np.arange(m) / m)])
    assert y.shape == (2, m) and np.abs(y - ref).max() < 1e-4


def test_loop_requests_that_cannot_be_a_loop_are_refused(gen: Generator) -> None:
    with pytest.raises(RequestError, match="loop needs bars and a bpm"):
        gen.resolve(RenderRequest("house", seconds=4.0, loop=True))
    with pytest.raises(RequestError, match="cannot take init_audio"):
        gen.resolve(RenderRequest("house", bpm=120.0, bars=2, loop=True, init_audio="/x.wav"))
    with pytest.raises(RequestError, match="fit in one window"):
        gen.resolve(RenderRequest("house", bpm=60.0, bars=80, loop=True))  # 320 s > the 285 s window
    with pytest.raises(RequestError, match="fit in one window"):
        plan(10**8, 120.0, 2048, 2, 6144)
