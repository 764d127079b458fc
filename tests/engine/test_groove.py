"""Audio-to-audio keeps the source's groove (engine/groove.py, issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine import Generator, RenderRequest, build_model, groove, tiny_config
from engine.beats import hear

SR = 44100


def click_take(bpm: float, seconds: float, lead_in: float, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """A drum-machine-like take: a kick (decaying 60 Hz sine + click) on every beat, louder on
    downbeats, a noise hat on every off-beat -> (`[2, N]`, onset times)."""
    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    out = np.zeros(n, dtype=np.float32)
    beat = 60.0 / bpm
    times = np.arange(lead_in, seconds - 0.05, beat / 2)
    for k, t in enumerate(times):
        i = int(round(t * sr))
        m = min(n - i, int(0.15 * sr))
        env = np.exp(-np.arange(m) / (0.03 * sr)).astype(np.float32)
        if k % 2 == 0:  # kick
            hit = np.sin(2 * np.pi * 60 * np.arange(m) / sr) * env * (1.0 if k % 8 == 0 else 0.7)
            hit[: int(0.002 * sr)] += rng.uniform(-0.5, 0.5, int(0.002 * sr))
        else:  # hat
            hit = rng.uniform(-0.3, 0.3, m) * env**3
        out[i : i + m] += hit.astype(np.float32)
    out *= 0.5 / np.abs(out).max()
    return np.stack([out, out]), times


def _beat_model(seed: int = 0) -> torch.nn.Module:
    cfg = tiny_config(window_seconds=4.0)
    cfg["model"]["diffusion"]["config"]["beat_phase"] = True
    torch.manual_seed(seed)
    return build_model(cfg).eval()


def test_prepare_hears_the_source_and_puts_its_downbeat_on_beat_zero() -> None:
    audio, _ = click_take(97.0, 8.0, lead_in=0.31)
    same, tempo, bpm, offset = groove.prepare(audio, SR, None, 4, 8.0)
    assert same is audio and tempo is not None and bpm is not None
    assert abs(bpm / 97.0 - 1) < 0.01 and "stretched" not in tempo
    d = tempo["first_downbeat_s"]
    beat = 60 / 97.0
    assert min((d - 0.31) % beat, -(d - 0.31) % beat) < 0.03 and d < 0.31 + 4 * beat  # on a beat of bar 1
    # Beat 0 of the grid at the downbeat (less the lead the model's late hits need).
    assert offset == pytest.approx(-(d - groove.DEFAULT.grid_lead_s) * bpm / 60, abs=1e-3)


def test_a_named_tempo_stretches_the_source_to_it() -> None:
    audio, _ = click_take(97.0, 8.0, lead_in=0.0)
    out, tempo, bpm, _ = groove.prepare(audio, SR, 104.0, 4, 8.0)
    assert bpm == 104.0 and tempo is not None
    assert tempo["stretched"]["to_bpm"] == 104.0 and abs(tempo["stretched"]["from_bpm"] / 97 - 1) < 0.01
    assert out.shape[1] == pytest.approx(audio.shape[1] * 97 / 104, rel=0.01)
    heard = hear(out, SR, bpm_hint=104.0)
    assert heard is not None and abs(heard.bpm / 104 - 1) < 0.01
    # The same tempo named (or its double): nothing stretched.
    for asked in (97.0, 194.0):
        same, tempo, _, _ = groove.prepare(audio, SR, asked, 4, 8.0)
        assert same is audio and tempo is not None and "stretched" not in tempo


def test_no_beat_leaves_the_grid_alone() -> None:
    noise = np.random.default_rng(1).uniform(-0.2, 0.2, (2, 4 * SR)).astype(np.float32)
    _, tempo, bpm, offset = groove.prepare(noise, SR, None, 4, 4.0)
    assert bpm is None and offset == 0.0 and tempo is not None and tempo.get("heard") == "no clear beat"


def test_beat_offset_shifts_the_grid() -> None:
    model = _beat_model()
    a, b = model.tempo_inputs([{"bpm": 120.0, "seconds_start": 0.0}, {"bpm": 120.0, "beat_offset": -1.5}])
    assert a[1] == 0.0 and b[1] == -1.5 and a[0] == b[0]


def test_held_frames_keep_the_source_until_their_sigma() -> None:
    source = torch.ones(1, 2, 6)
    release = torch.tensor([5.0, 1.0, 1.0, 0.1, 0.1, 0.1])
    held = groove.HeldFrames(lambda x, s: torch.zeros_like(x), source, release)
    out = held(torch.zeros(1, 2, 6), torch.tensor([2.0]))
    assert out[0, 0].tolist() == [0, 1, 1, 1, 1, 1]
    out = held(torch.zeros(1, 2, 6), torch.tensor([0.5]))
    assert out[0, 0].tolist() == [0, 0, 0, 1, 1, 1]


def test_the_gate_opens_on_the_source_hits() -> None:
    from lab.evaluation import music

    audio, times = click_take(120.0, 6.0, lead_in=0.2)
    rng = np.random.default_rng(2)
    steady = rng.uniform(-0.2, 0.2, audio.shape).astype(np.float32)  # a render with no hits of its own
    gated = groove.gate(steady, SR, times, 30.0, 0.5)
    assert music.onset_f_measure(times, music.detect_onsets(gated, SR)).f_measure > 0.9


def test_a_transform_records_how_the_source_was_heard(tmp_path: Path) -> None:
    audio, _ = click_take(133.0, 3.0, lead_in=0.12)
    src = tmp_path / "take.wav"
    sf.write(str(src), audio.T, SR)
    gen = Generator(_beat_model(), device="cpu")
    [res] = gen.render(RenderRequest("drums", seconds=3.0, steps=2, seed=1, init_audio=str(src)))
    heard = res.recipe["source_tempo"]
    assert abs(heard["bpm"] / 133 - 1) < 0.01 and res.recipe["grid_bpm"] == pytest.approx(heard["bpm"], abs=0.01)
    assert 0.0 <= heard["first_downbeat_s"] < 4 * 60 / 133
    json.dumps(res.recipe)  # the sidecar can hold it
    # A prompt naming another tempo: the source is stretched to it, and the recipe says so.
    [res] = gen.render(RenderRequest("drums, 126 BPM", seconds=3.0, steps=2, seed=1, init_audio=str(src)))
    assert res.recipe["grid_bpm"] == 126.0 and res.recipe["source_tempo"]["stretched"]["to_bpm"] == 126.0


def test_a_swung_take_swings_the_grid() -> None:
    from engine.dit import swing_positions

    beats = torch.tensor([[0.0, 0.31, 0.62, 0.81, 1.62, 2.0]], dtype=torch.float64)
    warped = swing_positions(beats, torch.tensor([[0.62]], dtype=torch.float64))
    assert torch.allclose(warped, torch.tensor([[0.0, 0.25, 0.5, 0.75, 1.5, 2.0]], dtype=torch.float64))
    same = swing_positions(beats, torch.tensor([[0.0]], dtype=torch.float64))  # 0: straight
    assert torch.allclose(same, beats)
    # The source's onsets say where its off-beats fall, even when the tracker sat on them.
    times = np.sort(np.concatenate([np.arange(0.2, 8, 0.5), np.arange(0.2 + 0.62 * 0.5, 8, 0.5)]))
    shift, share, swing = groove.swing_phase(times, 120.0, first_beat=0.2 + 0.31)  # tracker on the off-beats
    assert shift == pytest.approx(0.19, abs=0.01) and swing == pytest.approx(0.62, abs=0.02) and share > 0.95
    shift, _, swing = groove.swing_phase(times, 120.0, first_beat=0.2)
    assert shift == 0.0 and swing == pytest.approx(0.62, abs=0.02)
    model = _beat_model()
    row = model.tempo_inputs([{"bpm": 120.0, "swing": 0.62}])
    assert row.shape == (1, 4) and float(row[0, 3]) == pytest.approx(0.62)
