"""Engine features the bridge asked for: extra RIFF chunks in atomic WAV writes, and edge fades."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine import (Generator, RenderRequest, RequestError, build_model, fade_edges, tiny_config,
                    write_audio_atomic)


def _chunks(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and struct.unpack("<I", data[4:8])[0] == len(data) - 8
    out, pos = [], 12
    while pos < len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        out.append((cid, data[pos + 8:pos + 8 + size]))
        pos += 8 + size + size % 2
    assert pos == len(data)
    return out


@pytest.mark.parametrize(("frames", "channels", "subtype"), [(1001, 1, "pcm24"), (1000, 2, "pcm16"),
                                                               (7, 2, "float32")])
def test_riff_chunks_are_appended_and_the_file_still_reads(tmp_path: Path, frames: int, channels: int,
                                                           subtype: str) -> None:
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
