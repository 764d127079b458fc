"""Stable Audio 3 renders longer than the model's window (engine/sa3/longform.py): windows that
continue each other through the DiT's inpainting input. Tiny random models with a 4 s window."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

import engine  # noqa: E402
from engine import Generator, Progress, RenderCancelled, RenderRequest, RequestTooLong  # noqa: E402
from engine.longform import MAX_LONG_SECONDS  # noqa: E402
from engine.sa3 import longform  # noqa: E402
from tests.engine import sa3_helpers as h  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
RATE = h.SAMPLE_RATE
WINDOW = 4.0


@pytest.fixture(scope="module")
def t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers.utils import logging as tlog

    tlog.set_verbosity_error()
    return h.tiny_t5(tmp_path_factory.mktemp("t5") / "t5")


@pytest.fixture(scope="module")
def gen(t5: Path, tmp_path_factory: pytest.TempPathFactory) -> Generator:
    folder = h.write_original(h.tiny_model(same=h.TINY_SAME_CHUNKED), tmp_path_factory.mktemp("m") / "sa3", t5)
    return Generator(engine.load_model(folder), device="cpu", precision="fp32")


def test_a_long_render_has_the_exact_length_and_monotonic_progress(gen: Generator) -> None:
    assert gen.can_continue() and gen.max_seconds == MAX_LONG_SECONDS
    seconds = 2.5 * WINDOW
    events: list[Progress] = []
    [res] = gen.render(RenderRequest("warm house", seconds=seconds, seed=2, steps=2), events.append)
    assert res.audio.shape == (2, int(seconds * RATE)) and res.seconds == seconds
    assert np.isfinite(res.audio).all() and np.abs(res.audio[:, -RATE:]).max() > 0  # music to the end
    assert gen.sa3 is not None
    n = len(longform.plan(gen.sa3.model, seconds))
    assert n >= 3 and res.recipe["windows"] == n
    sampling = [e for e in events if e.stage == "sampling"]
    assert [e.step for e in sampling] == list(range(2 * n + 1)) and {e.total for e in sampling} == {2 * n}
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # Same seed, same render.
    [again] = gen.render(RenderRequest("warm house", seconds=seconds, seed=2, steps=2))
    assert np.array_equal(again.audio, res.audio)


def test_held_frames_are_the_previous_windows(gen: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each window's held frames (its context) are the latents the window before sampled there,
    exactly; so the audio up to a window's new frames is the previous window's, except within the
    decoder's reach of the seam."""
    assert gen.sa3 is not None
    model = gen.sa3.model
    seconds = 2.5 * WINDOW
    windows: list[torch.Tensor] = []
    locals_seen: list[torch.Tensor | None] = []
    conditioning = model.conditioning

    def spy(*args: Any, **kw: Any) -> Any:
        locals_seen.append(kw.get("local"))
        return conditioning(*args, **kw)

    monkeypatch.setattr(model, "conditioning", spy)
    emb = model.encode_prompt(["warm house"])
    latents = longform.sample_long(model, emb, seconds, seed=5, steps=2, precision="fp32", windows=windows)
    segs = longform.plan(model, seconds)
    assert latents.shape[-1] == segs[-1].start + segs[-1].frames and len(windows) == len(segs)
    for prev, seg, out_prev, out in zip(segs, segs[1:], windows, windows[1:], strict=False):
        assert seg.known > 0 and out.shape[-1] == seg.frames
        at = seg.start - prev.start
        held = out_prev[..., at : at + seg.known]
        assert torch.equal(latents[..., seg.start : seg.start + seg.known], held)
        assert torch.equal(latents[..., seg.start + seg.known : seg.start + seg.frames], out[..., seg.known :])
        # It was told them through its inpainting input: mask 1 over the held frames, 0 after.
        local = locals_seen[len(windows) - len(segs) + segs.index(seg)]
        assert local is not None and local.shape == (1, 1 + held.shape[1], seg.frames)
        assert (local[:, 0, : seg.known] == 1).all() and (local[:, 0, seg.known :] == 0).all()
        assert torch.equal(local[:, 1:, : seg.known], held) and (local[:, 1:, seg.known :] == 0).all()
    assert locals_seen[0] is not None and (locals_seen[0] == 0).all()  # the first window: nothing held
    # Audio: the first window decoded alone equals the long render's start, short of the seam.
    ratio = model.config.same.downsampling_ratio
    first = model.decode(windows[0], precision="fp32")[0]
    whole = model.decode(latents, precision="fp32")[0]
    margin = 8  # latent frames: wider than the tiny SAME decoder's reach
    cut = (segs[1].start + segs[1].known - margin) * ratio
    torch.testing.assert_close(whole[:, :cut], first[:, :cut], atol=1e-5, rtol=0)


def test_cancel_in_a_later_window(gen: Generator) -> None:
    cancel = threading.Event()
    seen: list[Progress] = []

    def on_progress(p: Progress) -> None:
        seen.append(p)
        if p.stage == "sampling" and p.step == 3:  # the second window's first step (2 steps a window)
            cancel.set()

    with pytest.raises(RenderCancelled):
        gen.render(RenderRequest("x", seconds=2.5 * WINDOW, seed=0, steps=2), on_progress, cancel)
    assert max(p.step for p in seen if p.stage == "sampling") == 3
    assert not any(p.stage in ("decoding", "done") for p in seen)


def test_what_long_renders_refuse(gen: Generator, t5: Path, tmp_path: Path) -> None:
    with pytest.raises(RequestTooLong, match="longest render, 1200 s"):
        gen.resolve(RenderRequest("x", seconds=MAX_LONG_SECONDS + 1))
    with pytest.raises(RequestTooLong, match="audio-to-audio is limited to this model's window of 4 s"):
        gen.resolve(RenderRequest("x", seconds=5.0, init_audio="/any.wav"))
    # A DiT without the inpainting input stays at one window, and says why.
    folder = h.write_original(h.tiny_model(inpaint=False), tmp_path / "noinpaint", t5)
    g = Generator(engine.load_model(folder), device="cpu", precision="fp32")
    assert not g.can_continue() and g.max_seconds == WINDOW
    with pytest.raises(RequestTooLong, match="no inpainting input"):
        g.resolve(RenderRequest("x", seconds=5.0))
