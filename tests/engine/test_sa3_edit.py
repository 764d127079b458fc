"""Extend and replace with Stable Audio 3 models (engine/sa3/edit.py): through the DiT's inpainting
input, with engine/edit.py's bars and splice. Tiny random models with a 4 s window (32 latents a
second at 1,024 Hz); at 120 BPM a bar is 2 s."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("diffusers")

import engine  # noqa: E402
from engine import (  # noqa: E402
    Generator,
    Progress,
    RenderCancelled,
    RenderRequest,
    RequestError,
    RequestTooLong,
    edit as shared,
)
from engine.sa3 import edit as sa3_edit  # noqa: E402
from tests.engine import sa3_helpers as h  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
RATE = h.SAMPLE_RATE
BPM = 120.0
BAR = round(4 * 60 / BPM * RATE)  # 2,048 samples
FADE = round(shared.CROSSFADE_S * RATE)


@pytest.fixture(scope="module")
def t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers.utils import logging as tlog

    tlog.set_verbosity_error()
    return h.tiny_t5(tmp_path_factory.mktemp("t5") / "t5")


@pytest.fixture(scope="module")
def gen(t5: Path, tmp_path_factory: pytest.TempPathFactory) -> Generator:
    folder = h.write_original(h.tiny_model(same=h.TINY_SAME_CHUNKED), tmp_path_factory.mktemp("m") / "sa3", t5)
    return Generator(engine.load_model(folder), device="cpu", precision="fp32")


def source(folder: Path, bars: int) -> tuple[Path, np.ndarray]:
    """`bars` bars of a click track over a chord, written at 8,192 Hz (files under 8 kHz are
    refused), and the source `[2, N]` the edit reads from it at the model's 1,024 Hz."""
    file_rate = 8 * RATE
    t = np.arange(bars * BAR * 8) / file_rate
    tone = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 165 * t)
    clicks = 0.5 * np.exp(-40 * ((t * BPM / 60) % 1))
    audio = np.stack([tone + clicks, tone - clicks]).astype(np.float32)  # [2, N]
    path = folder / f"take{bars}.wav"
    sf.write(str(path), audio.T, file_rate, subtype="FLOAT")
    read = shared.read_source(RenderRequest("x", edit_source=str(path)), RATE, 2)
    assert read.shape == (2, bars * BAR)
    return path, read


def extend(path: Path, bars: int = 1, **kw: Any) -> RenderRequest:
    return RenderRequest("warm house", bpm=BPM, bars=bars, edit="extend", edit_source=str(path), **kw)


def test_sa3_extend_keeps_the_source_and_adds_exact_bars(gen: Generator, tmp_path: Path) -> None:
    path, audio = source(tmp_path, 2)  # 4 s: the extension's window starts inside the source
    req = extend(path, seed=3, steps=2)
    out = gen.render(req)[0]
    n = audio.shape[1]
    assert out.audio.shape == (2, n + BAR) and out.seconds == (n + BAR) / RATE
    assert np.array_equal(out.audio[:, : n - FADE], audio[:, : n - FADE])  # bit for bit before the crossfade
    assert np.isfinite(out.audio).all() and np.abs(out.audio[:, n:]).max() > 0
    r = out.recipe
    assert r["edit_span_s"] == [n / RATE, (n + BAR) / RATE] and r["edit_bpm"] == BPM and r["edit_bpm_heard"] is False
    assert r["model_kind"] == "stable-audio-3" and r["loudness"] is None and r["fade_ms"] == 0.0
    assert 0 < r["edit_window_s"][0] < n / RATE and r["edit_window_s"][1] - r["edit_window_s"][0] == 4.0
    assert "tempo_check" in r  # Generator.render's tempo check ran around it
    assert np.array_equal(gen.render(req)[0].audio, out.audio)  # same seed, same extension


def test_sa3_replace_keeps_everything_outside_the_bars(gen: Generator, tmp_path: Path) -> None:
    path, audio = source(tmp_path, 3)  # 6 s: the window (4 s) ends before the piece does
    events: list[Progress] = []
    req = RenderRequest("techno", bpm=BPM, seed=2, steps=2, edit="replace", edit_source=str(path), from_bar=2, to_bar=2)
    out = gen.render(req, events.append)[0].audio
    lo, hi = BAR, 2 * BAR
    assert out.shape == audio.shape
    assert np.array_equal(out[:, : lo - FADE], audio[:, : lo - FADE])
    assert np.array_equal(out[:, hi + FADE :], audio[:, hi + FADE :])
    assert np.abs(out[:, lo:hi] - audio[:, lo:hi]).mean() > 1e-3  # the bar was regenerated
    sampling = [e for e in events if e.stage == "sampling"]
    assert [e.step for e in sampling] == [0, 1, 2] and {e.total for e in sampling} == {2}
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and events[-1].stage == "done"
    # A short piece (the whole of it in the window): the last bar, conditioned on the piece's length.
    short, audio = source(tmp_path, 1)
    req = RenderRequest(
        "techno", bpm=BPM, seed=2, steps=2, edit="replace", edit_source=str(short), from_bar=1, to_bar=1
    )
    [res] = gen.render(req)
    assert res.audio.shape == audio.shape and res.recipe["edit_window_s"][0] == 0.0


def test_sa3_the_inpainting_input_carries_the_held_latents_and_mask(
    gen: Generator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gen.sa3 is not None
    model = gen.sa3.model
    path, audio = source(tmp_path, 3)
    seen: list[tuple[float, Any]] = []
    conditioning = model.conditioning

    def spy(prompt: Any, seconds: float, *args: Any, **kw: Any) -> Any:
        seen.append((seconds, kw.get("local")))
        return conditioning(prompt, seconds, *args, **kw)

    dit_locals: list[torch.Tensor | None] = []
    forward = model.dit.forward

    def dit_spy(*args: Any, **kw: Any) -> Any:
        dit_locals.append(kw.get("local_add_cond"))
        return forward(*args, **kw)

    monkeypatch.setattr(model, "conditioning", spy)
    monkeypatch.setattr(model.dit, "forward", dit_spy)
    req = RenderRequest("x", bpm=BPM, seed=1, steps=2, edit="replace", edit_source=str(path), from_bar=2, to_bar=2)
    gen.render(req)
    [(seconds, local)] = seen
    # What engine/edit.py's shared rules say the window and the kept frames are.
    sp = shared.span(gen.resolve(req), audio, RATE)
    start, frames, said = sa3_edit.plan(model, sp)
    hop = model.config.same.downsampling_ratio
    assert (start, frames, said, seconds) == (1024, 128, 4.0, 4.0)  # centred: 768 samples of context either side
    held = sp.held(frames, start, hop)
    assert local is not None and local.shape == (1, 1 + model.config.dit.io_channels, frames)
    assert torch.equal(local[0, 0].bool(), held)
    lo_f, hi_f = (sp.lo - start) // hop, (sp.hi - start) // hop
    assert not held[lo_f - 1 : hi_f + 1].any() and held[: lo_f - 1].all() and held[hi_f + 1 :].all()
    known = model.encode_audio(torch.from_numpy(audio[:, start : start + frames * hop]), frames)
    torch.testing.assert_close(local[:, 1:], known * held, atol=0, rtol=0)
    # ... and that is what the DiT is given at every step.
    assert len(dit_locals) == 2 and all(d is not None and torch.equal(d, local) for d in dit_locals)


def test_sa3_edits_refused_by_name(gen: Generator, t5: Path, tmp_path: Path) -> None:
    path, _ = source(tmp_path, 2)
    bad = RenderRequest("x", bpm=BPM, edit="replace", edit_source=str(path), from_bar=2, to_bar=3, steps=2)
    with pytest.raises(RequestError, match=r"bars 2-3 end at .* past the source's end"):
        gen.render(bad)
    with pytest.raises(RequestError, match="extend needs bars"):
        gen.resolve(RenderRequest("x", edit="extend", edit_source=str(path)))
    with pytest.raises(RequestError, match="cannot be combined with init_audio"):
        gen.resolve(extend(path, init_audio=str(path)))
    with pytest.raises(RequestTooLong, match="longer than this model's window"):
        gen.render(extend(path, bars=2, steps=2))  # 4 s and the margins: more than the 4 s window
    folder = h.write_original(h.tiny_model(inpaint=False), tmp_path / "noinpaint", t5)
    plain = Generator(engine.load_model(folder), device="cpu", precision="fp32")
    with pytest.raises(RequestError, match="extend needs an inpainting-capable Stable Audio 3 model"):
        plain.resolve(extend(path))


def test_sa3_edit_cancel(gen: Generator, tmp_path: Path) -> None:
    path, _ = source(tmp_path, 2)
    cancel = threading.Event()
    seen: list[Progress] = []

    def on_progress(p: Progress) -> None:
        seen.append(p)
        if p.stage == "sampling" and p.step == 1:
            cancel.set()

    with pytest.raises(RenderCancelled):
        gen.render(extend(path, seed=0, steps=2), on_progress, cancel)
    assert max(p.step for p in seen if p.stage == "sampling") == 1
    assert not any(p.stage in ("decoding", "done") for p in seen)
