"""Renders longer than the window: windows that continue each other (engine/longform.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from engine import Generator, Progress, RenderCancelled, RenderRequest, RequestError, build_model, sampling, tiny_config
from engine.longform import KnownPrefix, Segment, plan_segments, window_timing
from tests.engine.test_variants import _rf_tiny


@pytest.fixture(scope="module")
def gen() -> Generator:
    torch.manual_seed(0)
    return Generator(build_model(tiny_config(window_seconds=3.0)), device="cpu")


def test_windows_cover_the_render_and_overlap_by_the_context() -> None:
    assert plan_segments(500, 517, 258) == [Segment(0, 500, 0)]
    segs = plan_segments(1222, 517, 258, unit=517)  # full attention: whole windows only
    assert segs[0] == Segment(0, 517, 0) and all(s.frames == 517 and s.known == 258 for s in segs[1:])
    for a, b in zip(segs, segs[1:]):
        assert b.start == a.start + a.frames - 258  # each re-hears the last 258 frames of the one before
    assert segs[-1].start + segs[-1].frames >= 1222 > segs[-2].start + segs[-2].frames
    local = plan_segments(1000, 512, 128, unit=64)  # local attention: the last window only as long as needed
    assert local[-1] == Segment(768, 256, 128) and local[-1].start + local[-1].frames == 1024
    with pytest.raises(ValueError, match="context"):
        plan_segments(1000, 512, 512)


@pytest.mark.parametrize(
    ("start", "total", "seg", "beat"),
    [(100.0, 600.0, 200.0, 0.5), (250.0, 900.0, 285.0, 60 / 124), (700.0, 1000.0, 100.0, None)],
)
def test_a_window_past_the_trained_range_keeps_its_distance_to_the_end_and_its_beat(
    start: float, total: float, seg: float, beat: float | None
) -> None:
    window = 285.0
    fake_start, fake_total = window_timing(start, total, seg, window, beat)
    # Inside the range the model was trained on, or (a whole window, which fits only at 0) within
    # one phrase of its start, where the beat grid still lines up.
    assert 0 <= fake_start <= max(window - seg, 0) + 1e-9 or (beat and fake_start < 16 * beat)
    assert fake_total - fake_start == pytest.approx(total - start)  # the music ends where the render does
    if beat:  # the tempo grid's phrase (16 beats) runs on unbroken
        phase = ((start - fake_start) / (16 * beat)) % 1
        assert min(phase, 1 - phase) < 1e-9
    assert window_timing(10.0, 200.0, 100.0, window, beat) == (10.0, 200.0)  # inside: the real values


@pytest.mark.parametrize("sampler", ["dpmpp-3m-sde", "dpmpp-2m", "euler"])
def test_the_sampler_lands_on_the_known_prefix(sampler: str) -> None:
    """The continued window's first frames come out as the frames it continues, so stitching at
    the first new frame leaves no seam in the latents."""
    g = torch.Generator().manual_seed(0)
    known = torch.randn(1, 4, 10, generator=g)
    denoiser = KnownPrefix(lambda x, sigma: torch.tanh(x) * 0.5, known)
    sigmas = sampling.get_sigmas_polyexponential(8, 0.03, 80.0)
    x = torch.randn(1, 4, 30, generator=g) * 80.0
    out = sampling.sample(sampler, denoiser, x, sigmas, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out[..., :10], known, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[..., 10:], torch.zeros_like(out[..., 10:]))


def test_a_render_longer_than_the_window_is_exact_deterministic_and_reports_every_window(gen: Generator) -> None:
    assert gen.can_continue() and gen.max_seconds >= 1200
    req = RenderRequest("warm analog house", seconds=7.0, steps=2, seed=5, bpm=124.0)
    segments = gen.segments(7.0)
    assert len(segments) == 4 and gen.model.config.window_seconds < 3.1
    seen: list[Progress] = []
    [a] = gen.render(req, on_progress=seen.append)
    [b] = gen.render(req)
    assert a.audio.shape == (2, 7 * 44100) and np.array_equal(a.audio, b.audio)
    assert np.isfinite(a.audio).all() and np.abs(a.audio).max() > 0
    steps = [p.step for p in seen if p.stage == "sampling"]
    assert steps == list(range(0, 2 * len(segments) + 1))  # one bar over all windows, in order
    assert {p.total for p in seen if p.stage == "sampling"} == {2 * len(segments)}
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # Another seed is another render, all the way to the end (later windows are seeded too).
    [c] = gen.render(RenderRequest("warm analog house", seconds=7.0, steps=2, seed=6, bpm=124.0))
    assert not np.allclose(a.audio[:, -44100:], c.audio[:, -44100:])


def test_each_window_continues_the_latents_before_it(gen: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real pipeline and DiT: every later window comes out of the sampler with its
    first frames equal to the frames of the windows before it at those positions (so the render
    has no seam in its latents), and its new frames are new."""
    import engine.pipeline as pipeline

    outs: list[torch.Tensor] = []
    real = pipeline.sampling.sample

    def recording(*args: object, **kw: object) -> torch.Tensor:
        out = real(*args, **kw)  # type: ignore[arg-type]
        outs.append(out.clone())
        return out

    monkeypatch.setattr(pipeline.sampling, "sample", recording)
    gen.render(RenderRequest("x", seconds=7.0, steps=3, seed=2))
    segments = gen.segments(7.0)
    assert len(outs) == len(segments) > 2
    stitched = outs[0]
    for seg, out in zip(segments[1:], outs[1:]):
        prior = stitched[..., seg.start : seg.start + seg.known]
        torch.testing.assert_close(out[..., : seg.known], prior, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(out[..., seg.known : 2 * seg.known], prior, atol=1e-2)
        stitched = torch.cat([stitched[..., : seg.start + seg.known], out[..., seg.known :]], dim=-1)


def test_a_long_render_cancels_in_a_later_window(gen: Generator) -> None:
    cancel = threading.Event()

    def on_progress(p: Progress) -> None:
        if p.stage == "sampling" and p.step == 5:  # inside the third window
            cancel.set()

    with pytest.raises(RenderCancelled):
        gen.render(RenderRequest("x", seconds=7.0, steps=2, seed=1), on_progress=on_progress, cancel=cancel)


def test_what_cannot_continue_is_refused_naming_why(gen: Generator, tmp_path: object) -> None:
    with pytest.raises(RequestError, match="longer than the longest render, 1200 s"):
        gen.render(RenderRequest("x", seconds=1500.0, steps=2))
    with pytest.raises(RequestError, match="a render with seconds_start is limited to this model's window"):
        gen.render(RenderRequest("x", seconds=5.0, seconds_start=1.0, steps=2))
    torch.manual_seed(0)
    small = Generator(build_model(_rf_tiny()), device="cpu")  # SAO Small's timing: seconds_total only
    assert not small.can_continue() and small.max_seconds == small.model.config.window_seconds
    with pytest.raises(RequestError, match="longer than this model's window"):
        small.render(RenderRequest("x", seconds=5.0, steps=2))
