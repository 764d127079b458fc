"""Engine features the bridge asked for: extra RIFF chunks in atomic WAV writes, edge fades, and
loudness normalisation."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine import Generator, RenderRequest, RequestError, build_model, fade_edges, tiny_config, write_audio_atomic
from engine.audio_io import PEAK_CEILING_DB, normalize_loudness


def _chunks(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and struct.unpack("<I", data[4:8])[0] == len(data) - 8
    out, pos = [], 12
    while pos < len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        out.append((cid, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + size % 2
    assert pos == len(data)
    return out


@pytest.mark.parametrize(("frames", "channels", "subtype"), [(1001, 1, "pcm24"), (1000, 2, "pcm16"), (7, 2, "float32")])
def test_riff_chunks_are_appended_and_the_file_still_reads(
    tmp_path: Path, frames: int, channels: int, subtype: str
) -> None:
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (channels, frames)).astype(np.float32)
    payloads = [(b"LIST", b"INFOICMT\x04\x00\x00\x00abc\x00"), (b"acid", bytes(range(24))), (b"odd ", b"xyz")]
    path = write_audio_atomic(tmp_path / "a.wav", audio, 44100, subtype, riff_chunks=payloads)
    back, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == 44100 and back.shape == (frames, channels)
    assert np.abs(back.T - audio).max() < 1e-3
    chunks = _chunks(path)
    assert chunks[-3:] == payloads
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temp file left


def test_riff_chunks_are_refused_where_they_cannot_go(tmp_path: Path) -> None:
    audio = np.zeros((2, 10), np.float32)
    with pytest.raises(ValueError, match="only be added to a .wav"):
        write_audio_atomic(tmp_path / "a.flac", audio, 44100, riff_chunks=[(b"acid", b"")])
    with pytest.raises(ValueError, match="4 bytes"):
        write_audio_atomic(tmp_path / "a.wav", audio, 44100, riff_chunks=[(b"ac", b"")])
    assert list(tmp_path.iterdir()) == []


def test_fade_edges_zero_the_ends_and_leave_the_middle() -> None:
    audio = np.ones((2, 100), np.float32)
    fade_edges(audio, 10)
    assert (audio[:, 0] == 0).all() and (audio[:, -1] == 0).all()
    assert (np.diff(audio[0, :10]) > 0).all() and (np.diff(audio[0, -10:]) < 0).all()
    assert (audio[:, 10:90] == 1).all()
    short = np.ones((1, 5), np.float32)
    fade_edges(short, 100)  # longer than half the audio: capped, never overlapping
    assert short[0, 0] == 0 and short[0, -1] == 0 and short.max() <= 1


def test_render_fades_only_the_edges() -> None:
    torch.manual_seed(0)
    gen = Generator(build_model(tiny_config(window_seconds=1.0)), device="cpu")
    base = RenderRequest(prompt="x", seconds=0.25, steps=2, seed=3)
    plain = gen.render(base)[0].audio
    result = gen.render(RenderRequest(**{**base.__dict__, "fade_ms": 5.0}))[0]
    faded = result.audio
    n = round(0.005 * 44100)
    assert faded.shape == plain.shape
    assert (faded[:, 0] == 0).all() and (faded[:, -1] == 0).all()
    np.testing.assert_array_equal(faded[:, n:-n], plain[:, n:-n])
    assert result.recipe["fade_ms"] == 5.0
    with pytest.raises(RequestError, match="fade_ms"):
        gen.render(RenderRequest(**{**base.__dict__, "fade_ms": -1.0}))


def _sine(amplitude: float, seconds: float = 3.0, hz: float = 997.0) -> np.ndarray:
    t = np.arange(int(44100 * seconds)) / 44100
    return np.repeat((amplitude * np.sin(2 * np.pi * hz * t))[None], 2, 0).astype(np.float32)


def test_loudness_reaches_the_bs1770_level_by_one_gain() -> None:
    """BS.1770's calibration point: a 997 Hz sine at 0 dBFS in one channel reads -3.01 LUFS, so in
    both channels at amplitude a it reads 20*log10(a). -20 LUFS -> -14 is a gain of 2 (+6 dB)."""
    x = _sine(0.1)
    y, info = normalize_loudness(x.copy(), 44100, -14.0)
    assert info["loudness_in"] == pytest.approx(-20.0, abs=0.1)
    assert info["loudness_out"] == -14.0 and info["gain_db"] == pytest.approx(6.0, abs=0.1)
    ratio = y / np.where(x == 0, 1, x)
    assert np.allclose(ratio[x != 0], ratio[x != 0][0])  # a gain, nothing else
    assert np.abs(y).max() == pytest.approx(0.1 * 10 ** (info["gain_db"] / 20), rel=1e-3)  # gain_db: 2 decimals
    # Shorter than one 400 ms gating block: measured as one block, the same level.
    assert normalize_loudness(_sine(0.1, 0.2), 44100, -14.0)[1]["loudness_in"] == pytest.approx(-20.0, abs=0.2)


def test_loudness_never_lifts_a_peak_over_the_ceiling() -> None:
    """Sparse clicks: reaching -14 LUFS would need peaks far over full scale, so the gain stops at
    -1 dBFS and the file lands under the target instead of clipping."""
    x = np.zeros((2, 44100 * 2), np.float32)
    x[:, ::11025] = 0.5
    y, info = normalize_loudness(x, 44100, -14.0)
    assert np.abs(y).max() == pytest.approx(10 ** (PEAK_CEILING_DB / 20), rel=1e-5)
    assert info["loudness_out"] < -20 and info["gain_db"] == pytest.approx(
        PEAK_CEILING_DB - 20 * np.log10(0.5), abs=1e-3
    )
    silent, info = normalize_loudness(np.zeros((2, 44100), np.float32), 44100, -14.0)
    assert not silent.any() and info == {"loudness_in": None, "gain_db": 0.0, "loudness_out": None}
    with pytest.raises(ValueError, match="loudness must be between -60 and 0"):
        normalize_loudness(x, 44100, 6.0)


def test_render_loudness_is_a_gain_on_the_same_render() -> None:
    torch.manual_seed(0)
    gen = Generator(build_model(tiny_config(window_seconds=2.0)), device="cpu")
    base = RenderRequest(prompt="x", seconds=1.0, steps=2, seed=3)
    plain = gen.render(base)
    assert (
        "loudness_in" not in plain[0].recipe and plain[0].recipe["loudness"] is None
    )  # the engine's default: as rendered
    loud = gen.render(RenderRequest(**{**base.__dict__, "loudness": -30.0}))[0]
    big = np.abs(plain[0].audio) > 1e-3
    ratio = loud.audio[big] / plain[0].audio[big]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)  # one gain over the whole render
    assert ratio[0] == pytest.approx(10 ** (loud.recipe["gain_db"] / 20), rel=1e-3) and ratio[0] != 1
    assert loud.recipe["loudness_in"] == pytest.approx(
        normalize_loudness(plain[0].audio.copy(), 44100, -30.0)[1]["loudness_in"]
    )
    assert loud.recipe["loudness_out"] == pytest.approx(-30.0, abs=0.01) or np.abs(loud.audio).max() == pytest.approx(
        10 ** (PEAK_CEILING_DB / 20), rel=1e-5
    )
    with pytest.raises(RequestError, match="loudness must be between -60 and 0 LUFS"):
        gen.render(RenderRequest(**{**base.__dict__, "loudness": 1.0}))
