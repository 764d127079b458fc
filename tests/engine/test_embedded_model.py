"""The shipped model, resources/models/longplay-mini: the default everywhere, small, and sound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine import Generator, RenderRequest, load_model
from engine.checkpoint import REPO_MODELS, resolve_model

FOLDER = REPO_MODELS / "longplay-mini"


def test_it_is_the_default_and_small_enough_to_commit() -> None:
    assert resolve_model(None) == FOLDER
    size = sum(f.stat().st_size for f in FOLDER.rglob("*") if f.is_file())
    assert size <= 40e6, f"{size / 1e6:.1f} MB"
    meta = json.loads((FOLDER / "model_config.json").read_text())["longplay"]
    assert meta["defaults"]["steps"] == 20 and meta["format_version"] == 1


def test_it_renders_deterministically_with_its_own_defaults() -> None:
    gen = Generator(load_model("longplay-mini"), device="cpu")
    assert gen.model.config.dit.attn_window and gen.model.config.dit.patch_size == 2
    assert gen.model.config.autoencoder.patch_size == 4 and gen.model.config.latent_rate == pytest.approx(
        21.533, abs=1e-3
    )
    req = RenderRequest("drum and bass, 174 BPM, drums", seconds=2.0, steps=3, seed=11)
    a, b = gen.render(req)[0].audio, gen.render(req)[0].audio
    assert a.shape == (2, 88200) and np.array_equal(a, b)
    rms = float(np.sqrt(np.mean(a**2)))
    assert 1e-3 < rms < 0.7 and np.abs(a).max() <= 1.0  # audible, not silent, not clipping


def test_generate_without_model_uses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.cli import main

    monkeypatch.delenv("LONGPLAY_MODELS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert (
        main(
            [
                "generate",
                "lo-fi piano, 80 BPM",
                "--seconds",
                "1",
                "--steps",
                "2",
                "--seed",
                "3",
                "--out",
                str(tmp_path / "x.wav"),
            ]
        )
        == 0
    )
    recipe = json.loads((tmp_path / "x.json").read_text())
    assert recipe["model"] == "longplay-mini" and recipe["steps"] == 2
    assert recipe["grid_bpm"] == 80.0  # the tempo grid takes the BPM the prompt names


def test_its_tempo_grid_moves_the_render() -> None:
    """The shipped DiT has a trained tempo grid: the same seed at another BPM is another render,
    and one without a BPM anywhere gets no grid."""
    gen = Generator(load_model("longplay-mini"), device="cpu")
    assert gen.model.config.dit.beat_phase
    assert gen.model.model.model.to_beat_embed.weight.abs().sum() > 0
    base = dict(seconds=2.0, steps=3, seed=5)
    at_90 = gen.render(RenderRequest("hip hop, drums", bpm=90, **base))[0]
    at_140 = gen.render(RenderRequest("hip hop, drums", bpm=140, **base))[0]
    none = gen.render(RenderRequest("hip hop, drums", **base))[0]
    assert at_90.recipe["grid_bpm"] == 90.0 and none.recipe["grid_bpm"] is None
    assert not np.array_equal(at_90.audio, at_140.audio) and not np.array_equal(at_90.audio, none.audio)


def test_a_long_render_stays_audible() -> None:
    """The README's demo prompt over a minute: every 10 s stays at a musical level. (A tempo-grid
    DiT trained on all stems rendered this at -45 dBFS beyond 20 s while 20 s renders were fine.)"""
    from lab.evaluation.music import window_levels

    gen = Generator(load_model("longplay-mini"), device="cpu")
    audio = gen.render(RenderRequest("warm analog house bed, 124 BPM, Rhodes, sub bass", seconds=60.0, seed=7))[0].audio
    levels = window_levels(audio, 44100, 10.0)
    assert levels.min() > -35.0, levels.round(1)
