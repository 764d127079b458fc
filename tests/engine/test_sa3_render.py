"""Stable Audio 3 through `engine.load_model` + `engine.Generator` (engine/sa3/render.py): the render
path every door takes. Tiny random SA3 folders in both release layouts, written to tmp folders;
nothing is downloaded.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

import engine  # noqa: E402
from engine import Generator, Progress, RenderCancelled, RenderRequest, RequestError, RequestTooLong  # noqa: E402
from engine.sa3 import SA3Model  # noqa: E402
from tests.engine import sa3_helpers as h  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
RATE = h.SAMPLE_RATE
FAST = dict(steps=3)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A SAME-S-style model (chunked attention) as an original folder, a SAME-L-style one (band)
    as a diffusers folder, side by side in one model search path."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    root = tmp_path_factory.mktemp("sa3render")
    t5 = h.tiny_t5(root / "t5")
    models = root / "models"
    original = h.write_original(h.tiny_model(differential=True, same=h.TINY_SAME_CHUNKED), models / "sa3-orig", t5)
    diffusers_dir = h.write_diffusers(h.tiny_model(seed=3), models / "sa3-diff", t5)
    return {"original": original, "diffusers": diffusers_dir}


@pytest.fixture(scope="module")
def gens(folders: dict[str, Path]) -> dict[str, Generator]:
    return {k: Generator(engine.load_model(p), device="cpu", precision="fp32") for k, p in folders.items()}


@pytest.fixture(scope="module")
def gen(gens: dict[str, Generator]) -> Generator:
    return gens["original"]


def _one(g: Generator, **kw: object) -> np.ndarray:
    [res] = g.render(RenderRequest("warm house, 124 bpm", **{"seed": 1, **FAST, **kw}))  # type: ignore[arg-type]
    return res.audio


def test_sa3_folders_load_and_are_listed_by_kind(
    folders: dict[str, Path], gens: dict[str, Generator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LONGPLAY_MODELS", str(folders["original"].parent))
    for name, path in (("sa3-orig", folders["original"]), ("sa3-diff", folders["diffusers"])):
        assert engine.resolve_model(name) == path  # by name, either layout
    assert isinstance(engine.load_model("sa3-diff", require_text_encoder=False), SA3Model)
    listed = {m.name: m for m in engine.find_models()}
    # A diffusers folder does not say its longest render: 120 s for a small DiT (docs/sa3.md).
    for name, window in (("sa3-orig", 4.0), ("sa3-diff", 120.0)):
        assert listed[name].kind == "stable-audio-3"
        assert listed[name].sample_rate == RATE and listed[name].window_seconds == window
    g = gens["original"]
    # Its DiT has the inpainting input: windows continue each other past the 4 s window (test_sa3_long.py).
    assert g.sa3 is not None and g.max_seconds == 1200.0 and g.can_continue()
    assert g.defaults == {"sampler": "pingpong", "steps": 8, "cfg": 1.0, "sigma_min": 0.0, "sigma_max": 1.0}


@pytest.mark.parametrize("layout", ["original", "diffusers"])
def test_sa3_renders_the_requested_length_with_its_defaults(gens: dict[str, Generator], layout: str) -> None:
    [res] = gens[layout].render(RenderRequest("warm analog house", seconds=1.5, seed=4))
    assert res.audio.shape == (2, int(1.5 * RATE)) and res.audio.dtype == np.float32
    assert np.isfinite(res.audio).all() and np.abs(res.audio).max() > 0
    assert res.sample_rate == RATE and res.seconds == 1.5 and res.seed == 4
    r = res.recipe
    assert r["model_kind"] == "stable-audio-3" and r["steps"] == 8 and r["cfg"] == 1.0 and r["sampler"] == "pingpong"
    assert r["prompt"] == "warm analog house" and r["seed"] == 4 and r["variation"] == 0 and "variations" not in r


def test_sa3_bar_exact_length(gen: Generator) -> None:
    [res] = gen.render(RenderRequest("drums", bpm=92.5, bars=1, seed=0, **FAST))  # type: ignore[arg-type]
    assert res.audio.shape[1] == round(4 * 60 / 92.5 * RATE)
    assert res.recipe["bpm"] == 92.5 and res.recipe["bars"] == 1


def test_sa3_seeds_and_variations(gen: Generator) -> None:
    a, b, c = _one(gen, seconds=1.0), _one(gen, seconds=1.0), _one(gen, seconds=1.0, seed=2)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    both = gen.render(RenderRequest("warm house, 124 bpm", seconds=1.0, seed=1, variations=2, **FAST))  # type: ignore[arg-type]
    assert [r.seed for r in both] == [1, 2] and [r.variation for r in both] == [0, 1]
    assert np.array_equal(both[0].audio, a) and np.array_equal(both[1].audio, c)  # variation i: seed + i


def test_sa3_progress_stages_in_order(gen: Generator) -> None:
    events: list[Progress] = []
    gen.render(RenderRequest("x", seconds=1.0, seed=0, variations=2, **FAST), events.append)  # type: ignore[arg-type]
    stages = [e.stage for i, e in enumerate(events) if i == 0 or events[i - 1].stage != e.stage]
    assert stages == ["conditioning", "sampling", "decoding"] * 2 + ["done"]
    steps = [e.step for e in events if e.stage == "sampling" and e.variation == 0]
    assert steps == [0, 1, 2, 3] and all(e.total == 3 for e in events if e.stage == "sampling")
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_sa3_cancel_mid_sampling(gen: Generator) -> None:
    cancel = threading.Event()
    seen: list[Progress] = []

    def on_progress(p: Progress) -> None:
        seen.append(p)
        if p.stage == "sampling" and p.step == 1:
            cancel.set()

    with pytest.raises(RenderCancelled):
        gen.render(RenderRequest("x", seconds=1.0, seed=0, steps=6), on_progress, cancel)
    assert max(p.step for p in seen if p.stage == "sampling") == 1
    assert not any(p.stage in ("decoding", "done") for p in seen)


def test_sa3_negative_prompt_and_cfg(gen: Generator) -> None:
    plain = _one(gen, seconds=1.0)
    # cfg 1 (the default): guidance off, so a negative prompt changes nothing, as released.
    assert np.array_equal(_one(gen, seconds=1.0, negative="drums"), plain)
    guided = _one(gen, seconds=1.0, negative="drums", cfg=3.0)
    assert not np.allclose(guided, plain) and not np.allclose(guided, _one(gen, seconds=1.0, cfg=3.0))
    [res] = gen.render(RenderRequest("house, no drums", seconds=1.0, seed=1, cfg=3.0, **FAST))  # type: ignore[arg-type]
    assert res.recipe["conditioned_on"] == {"prompt": "house", "negative": "drums"}


def test_sa3_audio_to_audio_strength(gen: Generator, tmp_path: Path) -> None:
    import soundfile as sf

    from engine.audio_io import conform

    t = np.arange(2 * 8000) / 8000  # files are read at 8 kHz and up, then resampled to the model's rate
    src = (0.4 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    wav = tmp_path / "src.wav"
    sf.write(str(wav), np.stack([src, src], axis=1), 8000, subtype="FLOAT")
    a2a = dict(seconds=1.0, init_audio=str(wav))

    # Strength 0: the source through the autoencoder, whatever the seed, without sampling.
    keep0 = _one(gen, init_strength=0.0, **a2a)
    assert np.array_equal(keep0, _one(gen, init_strength=0.0, seed=7, **a2a))
    model = gen.sa3.model if gen.sa3 is not None else None
    assert model is not None
    frames = model.latent_frames(1.0)
    x = torch.from_numpy(conform(np.stack([src, src]), 8000, RATE, 2))
    ref = model.decode(model.encode_audio(x, frames), precision="fp32")[0, :, :RATE].clamp(-1, 1).numpy()
    np.testing.assert_allclose(keep0, ref, atol=1e-5)
    # Strength 1: the source forgotten, the text-to-audio render of the same seed.
    assert np.array_equal(_one(gen, init_strength=1.0, **a2a), _one(gen, seconds=1.0))
    # In between: the release's init_noise_level, recorded; nearer the source than a fresh render.
    [mid] = gen.render(RenderRequest("warm house, 124 bpm", seed=1, init_strength=0.3, **FAST, **a2a))  # type: ignore[arg-type]
    assert mid.recipe["init_noise_level"] == 0.3 and mid.audio.shape == keep0.shape
    assert not np.allclose(mid.audio, keep0)
    assert np.abs(mid.audio - keep0).mean() < np.abs(_one(gen, seconds=1.0) - keep0).mean()


def test_sa3_audio_to_audio_hears_its_source(gen: Generator, tmp_path: Path) -> None:
    """Issue 20 at the Stable Audio 3 door: the source's tempo is heard (engine/groove.py) and,
    this DiT having no tempo grid, named in the prompt it is conditioned on, as a user would type
    it; a BPM the request names stretches the source to it instead."""
    import soundfile as sf

    pytest.importorskip("librosa")
    sr, bpm = 22050, 132.0
    y = np.zeros(6 * sr, dtype=np.float32)
    t = np.arange(int(0.2 * sr)) / sr
    kick = (np.sin(2 * np.pi * 60 * t) * np.exp(-t * 20)).astype(np.float32)
    hat = (np.random.default_rng(0).standard_normal(int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / 150)).astype(
        np.float32
    )
    for at in np.arange(0.1, 5.8, 60 / bpm):  # a kick on the beats, a hat between (heard at 132, not halved)
        y[int(at * sr) : int(at * sr) + len(kick)] += kick
        y[int((at + 30 / bpm) * sr) : int((at + 30 / bpm) * sr) + len(hat)] += 0.3 * hat
    wav = tmp_path / "take.wav"
    sf.write(str(wav), np.stack([y, y], axis=1), sr)
    a2a = dict(seconds=4.0, init_audio=str(wav), init_strength=0.8, seed=2, **FAST)
    [heard] = gen.render(RenderRequest("drums", **a2a))  # type: ignore[arg-type]
    assert heard.recipe["source_tempo"]["bpm"] == pytest.approx(bpm, rel=0.01)
    assert heard.recipe["conditioned_on"]["prompt"] == "drums, 132 BPM"
    [typed] = gen.render(RenderRequest("drums, 132 BPM", **a2a))  # type: ignore[arg-type]
    assert np.array_equal(heard.audio, typed.audio) and "conditioned_on" not in typed.recipe
    [asked] = gen.render(RenderRequest("drums, 120 BPM", **a2a))  # type: ignore[arg-type]
    assert asked.recipe["source_tempo"]["stretched"]["to_bpm"] == 120.0
    assert "conditioned_on" not in asked.recipe and not np.array_equal(asked.audio, typed.audio)


def test_sa3_fades_and_loudness(gen: Generator) -> None:
    [res] = gen.render(RenderRequest("x", seconds=1.0, seed=0, fade_ms=50.0, loudness=-20.0, **FAST))  # type: ignore[arg-type]
    assert res.audio[:, 0].tolist() == [0.0, 0.0] and res.audio[:, -1].tolist() == [0.0, 0.0]
    assert res.recipe["loudness"] == -20.0 and "loudness_in" in res.recipe


def test_sa3_refuses_what_it_cannot_do(gen: Generator) -> None:
    with pytest.raises(RequestTooLong, match="longest render, 1200 s"):
        gen.render(RenderRequest("x", seconds=1200.5))
    with pytest.raises(RequestTooLong):
        gen.render(RenderRequest("x", bpm=20.0, bars=101))  # 1212 s
    bad_ones = (dict(seconds_start=1.0), dict(cfg_rescale=0.5), dict(key_cfg=2.0), dict(sampler="dpmpp-3m-sde"))
    for bad in (*bad_ones, dict(loop=True)):
        with pytest.raises(RequestError):
            gen.render(RenderRequest("x", seconds=1.0, **bad))  # type: ignore[arg-type]
