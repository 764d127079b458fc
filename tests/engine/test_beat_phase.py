"""Beat-phase conditioning: the tempo grid a `beat_phase` DiT plays on, and where renders get it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine import Generator, RenderRequest, build_model, tiny_config
from engine.config import ConfigError
from engine.dit import BEAT_FEATURES, BEAT_PERIODS, beat_features
from engine.pipeline import prompt_bpm


def _beat_config(**kw: object) -> dict:
    cfg = tiny_config(**kw)  # type: ignore[arg-type]
    cfg["model"]["diffusion"]["config"]["beat_phase"] = True
    return cfg


def _model(seed: int = 0, beat_scale: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(_beat_config()).eval()
    if beat_scale:  # as after training: the zero-initialised projection has learned something
        with torch.no_grad():
            model.model.model.to_beat_embed.weight.normal_(0.0, beat_scale)
    return model


def test_features_put_beats_on_the_grid_and_shift_with_the_start() -> None:
    bpf = 120 / 60 / (44100 / 256)  # 120 BPM at 172.3 latent frames per second
    f = beat_features(torch.tensor([[bpf, 0.0], [math.nan, 0.0]]), 400)
    assert f.shape == (2, 400, BEAT_FEATURES)
    assert torch.count_nonzero(f[1]) == 0  # no tempo: nothing
    assert torch.all(f[0, :, 0] == 1)
    # Frame 0 is a downbeat: every period's phase is 0 (sin 0, cos 1).
    assert torch.allclose(f[0, 0, 2::2], torch.zeros(len(BEAT_PERIODS)), atol=1e-6)
    assert torch.allclose(f[0, 0, 3::2], torch.ones(len(BEAT_PERIODS)), atol=1e-6)
    # A render starting 100 frames in (seconds_start) sees what frame 100 of the first saw.
    g = beat_features(torch.tensor([[bpf, 100 * bpf]]), 300)
    assert torch.allclose(g[0], f[0, 100:], atol=1e-5)
    # Long pieces keep exact phase: beat 864 (a phrase start near 285 s at 180 BPM) is on the grid.
    late = beat_features(torch.tensor([[0.2, 864.0 - 0.2 * 5]]), 6)[:, 5]  # reached after 5 frames
    assert torch.allclose(late[0, 2::2], torch.zeros(len(BEAT_PERIODS)), atol=1e-6)
    assert torch.allclose(late[0, 3::2], torch.ones(len(BEAT_PERIODS)), atol=1e-6)


def test_grid_changes_the_output_only_where_given() -> None:
    model = _model(beat_scale=0.0)
    net = model.model
    x = torch.randn(3, 8, 64)
    t = torch.full((3,), 0.5)
    ctx = torch.randn(3, 4, 32)
    glob = torch.randn(3, 64)
    tempo = torch.tensor([[0.01, 0.0], [0.02, 3.0], [math.nan, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        plain = net(x, t, ctx, glob)
        # Zero-initialised: adding the grid to a trained model changes nothing until it learns.
        assert torch.equal(net(x, t, ctx, glob, tempo), plain)
        model = _model(beat_scale=0.5)
        net = model.model
        plain = net(x, t, ctx, glob)
        gridded = net(x, t, ctx, glob, tempo)
    assert not torch.allclose(gridded[0], plain[0], atol=1e-4)
    assert not torch.allclose(gridded[1], plain[1], atol=1e-4)
    assert torch.equal(gridded[2], plain[2])  # NaN tempo: as if none was given


def test_config_adds_one_tensor_and_checks_its_type() -> None:
    plain = build_model(tiny_config()).state_dict()
    grid = build_model(_beat_config()).state_dict()
    assert sorted(set(grid) - set(plain)) == ["model.model.to_beat_embed.weight"]
    assert grid["model.model.to_beat_embed.weight"].shape == (64, BEAT_FEATURES)
    bad = _beat_config()
    bad["model"]["diffusion"]["config"]["beat_phase"] = "yes"
    with pytest.raises(ConfigError, match="beat_phase: expected bool"):
        build_model(bad)


@pytest.mark.parametrize(
    ("prompt", "bpm"),
    [
        ("warm analog house bed, 124 BPM, Rhodes", 124.0),
        ("Genre: hip hop|BPM: 93|Moods: dark", 93.0),
        ("lofi 90bpm", 90.0),
        ("bpm=172.5 drum and bass", 172.5),
        ("ambient, no drums", None),
        ("909 kick, 4 bpm", None),  # outside 20-300
        ("1999 nostalgia", None),
    ],
)
def test_prompt_bpm(prompt: str, bpm: float | None) -> None:
    assert prompt_bpm(prompt) == bpm


def test_renders_take_the_grid_from_the_request_or_the_prompt() -> None:
    gen = Generator(_model(beat_scale=0.5), device="cpu")
    kw = dict(seconds=0.5, steps=3, seed=4)
    named = gen.render(RenderRequest("drums, 120 BPM", **kw))[0]
    assert named.recipe["grid_bpm"] == 120.0
    asked = gen.render(RenderRequest("drums, 120 BPM", bpm=90.0, **kw))[0]
    assert asked.recipe["grid_bpm"] == 90.0  # the DAW's tempo wins over the prompt's
    again = gen.render(RenderRequest("drums", bpm=120.0, **kw))[0]
    none = gen.render(RenderRequest("drums", **kw))[0]
    assert none.recipe["grid_bpm"] is None
    assert not np.allclose(named.audio, asked.audio, atol=1e-6)
    assert not np.allclose(again.audio, none.audio, atol=1e-6)
    assert np.array_equal(gen.render(RenderRequest("drums, 120 BPM", **kw))[0].audio, named.audio)
    with pytest.raises(Exception, match="bpm must be between 20 and 300"):
        gen.render(RenderRequest("drums", bpm=12.0, **kw))


def test_models_without_the_grid_ignore_tempo() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    assert model.tempo_inputs([{"bpm": 120.0}]) is None
    res = Generator(model, device="cpu").render(RenderRequest("drums, 120 BPM", seconds=0.5, steps=2, seed=1))[0]
    assert "grid_bpm" not in res.recipe
