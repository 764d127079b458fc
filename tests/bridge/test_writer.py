"""Files a DAW can use: names that never overwrite, recipe and tempo inside the WAV."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.requests import Limits, parse_request
from bridge.writer import parse_riff, plan_paths, write_render
from engine import RenderResult


def _spec(out: Path, **values: object):  # type: ignore[no-untyped-def]
    return parse_request({"prompt": "Warm Keys", "seed": 11, **values}, limits=Limits(max_seconds=30), out_dir=out)


def _result(n: int, channels: int = 2, seed: int = 11) -> RenderResult:
    audio = (0.5 * np.sin(np.linspace(0, 200, n, dtype=np.float32)))[None].repeat(channels, 0)  # [C, N]
    return RenderResult(audio, 44100, seed, n / 44100, 0, {"prompt": "Warm Keys", "seed": seed, "steps": 2})


@pytest.mark.parametrize(
    ("fmt", "subtype"), [("wav", "PCM_24"), ("wav16", "PCM_16"), ("wav32f", "FLOAT"), ("flac", "PCM_24")]
)
def test_formats_and_the_recipe_inside_the_file(tmp_path: Path, fmt: str, subtype: str) -> None:
    spec = _spec(tmp_path, bpm=93.5, bars=2, beats_per_bar=3, format=fmt)
    n = round(2 * 3 * 60 / 93.5 * 44100)
    [path] = plan_paths(spec, [11])
    assert path.name == f"warm-keys_93.5bpm_2bar_s11_v1{spec.suffix}"
    result = _result(n)
    recipe = write_render(path, result, spec, {"model": "tiny", "job_id": "j"})
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    info = sf.info(str(path))
    assert info.subtype == subtype and data.shape == (n, 2) and sr == 44100
    # No per-file normalisation: the level written is the level rendered.
    assert np.abs(data).max() == pytest.approx(np.abs(result.audio).max(), abs=1e-3)
    side = json.loads(path.with_suffix(".json").read_text())
    assert side == recipe and side["model"] == "tiny" and side["seed"] == 11 and side["file"] == path.name
    if spec.suffix == ".wav":
        chunks = parse_riff(path)
        info_list = chunks[b"LIST"]
        assert info_list[:4] == b"INFO"
        icmt = info_list[info_list.index(b"ICMT") + 8 :]
        assert json.loads(icmt[: icmt.index(b"\0")]) == recipe
        flags, root, _, _, beats, den, num, tempo = struct.unpack("<IHHfIHHf", chunks[b"acid"])
        assert (beats, num, den) == (6, 3, 4) and tempo == pytest.approx(93.5) and not flags & 0x01


def test_odd_sized_data_stays_readable(tmp_path: Path) -> None:
    spec = _spec(tmp_path, seconds=1.0, bpm=120)
    [path] = plan_paths(spec, [11])
    write_render(path, _result(1001, channels=1), spec, {})  # 1001 frames x 3 bytes: odd data chunk
    assert sf.info(str(path)).frames == 1001
    acid = parse_riff(path)[b"acid"]
    assert struct.unpack("<IHHfIHHf", acid)[4] == 1  # beats: at least one
    assert set(parse_riff(path)) >= {b"fmt ", b"data", b"LIST", b"acid"}


def test_without_a_tempo_there_is_no_acid_chunk(tmp_path: Path) -> None:
    spec = _spec(tmp_path, seconds=1.0)
    [path] = plan_paths(spec, [11])
    write_render(path, _result(4410), spec, {})
    assert b"acid" not in parse_riff(path) and path.name == "warm-keys_s11_v1.wav"


def test_plans_never_overwrite_and_reuse_an_interrupted_attempt(tmp_path: Path) -> None:
    spec = _spec(tmp_path, seconds=1.0, name="take")
    (tmp_path / "take_s11_v1.wav").write_bytes(b"someone else's")
    (tmp_path / "take_s12_v2.json").write_text("{}")  # a sidecar alone also reserves its name
    first = plan_paths(spec, [11, 12])
    assert [p.name for p in first] == ["take_s11_v1-1.wav", "take_s12_v2-1.wav"]
    first[0].write_bytes(b"complete file from the killed attempt")
    assert plan_paths(spec, [11, 12], [str(p) for p in first]) == first
    assert [p.name for p in plan_paths(spec, [11, 12])] == ["take_s11_v1-2.wav", "take_s12_v2-1.wav"]
