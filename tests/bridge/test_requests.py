"""Validation at the door: every bad value is refused with a code and a message naming it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from bridge.errors import UsageError
from bridge.requests import JobSpec, Limits, check_id, parse_request
from bridge.sniff import sniff_audio

LIMITS = Limits(max_seconds=3.0)


def _parse(values: dict[str, Any], limits: Limits = LIMITS) -> JobSpec:
    return parse_request(values, limits=limits, out_dir="/tmp/out")


@pytest.mark.parametrize(
    ("values", "code", "needle"),
    [
        ({}, 400, "prompt is required"),
        ({"prompt": "  "}, 400, "prompt must not be empty"),
        ({"prompt": 5}, 400, "prompt must be text (got int 5)"),
        ({"prompt": "x" * 1001}, 400, "prompt is too long (1001 characters; at most 1000)"),
        ({"prompt": "a\x00b"}, 400, "prompt must not contain NUL"),
        ({"prompt": "p", "seconds": 0}, 400, "seconds must be greater than 0"),
        ({"prompt": "p", "seconds": -2}, 400, "seconds must be between 0 and inf (got -2)"),
        ({"prompt": "p", "seconds": math.nan}, 400, "seconds must be a finite number"),
        ({"prompt": "p", "seconds": math.inf}, 400, "seconds must be a finite number"),
        ({"prompt": "p", "seconds": "5"}, 400, "seconds must be a number (got str '5')"),
        ({"prompt": "p", "seconds": True}, 400, "seconds must be a number (got bool True)"),
        ({"prompt": "p", "seconds": 3.5}, 413, "longer than this model's window of 3.00 s"),
        ({"prompt": "p", "bars": 4, "bpm": 120}, 413, "4 bars at 120 bpm is 8.00 s"),
        ({"prompt": "p", "bars": 1}, 400, "bars needs a bpm"),
        ({"prompt": "p", "bars": 1, "bpm": 120, "seconds": 2}, 400, "mutually exclusive"),
        ({"prompt": "p", "bars": 0, "bpm": 120}, 400, "bars must be an integer between 1 and 512 (got 0)"),
        ({"prompt": "p", "bars": 1.5, "bpm": 120}, 400, "bars must be a whole number (got 1.5)"),
        ({"prompt": "p", "bars": 1, "bpm": 19}, 400, "bpm must be between 20 and 300 (got 19)"),
        ({"prompt": "p", "bars": 1, "bpm": 120, "beats_per_bar": 0}, 400, "beats_per_bar must be an integer between 1"),
        ({"prompt": "p", "steps": 0}, 400, "steps must be an integer between 1 and 500 (got 0)"),
        ({"prompt": "p", "steps": 501}, 400, "steps must be an integer between 1 and 500 (got 501)"),
        ({"prompt": "p", "cfg": 25.5}, 400, "cfg must be between 0 and 25 (got 25.5)"),
        ({"prompt": "p", "seed": -2}, 400, "seed must be an integer between -1"),
        ({"prompt": "p", "variations": 17}, 400, "variations must be an integer between 1 and 16"),
        ({"prompt": "p", "name": "../up"}, 400, "name must be a plain file name"),
        ({"prompt": "p", "name": "a/b"}, 400, "name must be a plain file name"),
        ({"prompt": "p", "name": "a\\b"}, 400, "name must be a plain file name"),
        ({"prompt": "p", "name": ".hidden"}, 400, "name must be a plain file name"),
        ({"prompt": "p", "name": "a\x00b"}, 400, "name must not contain NUL"),
        ({"prompt": "p", "name": "n" * 65}, 400, "name is too long"),
        ({"prompt": "p", "format": "mp3"}, 400, "format must be one of wav"),
        ({"prompt": "p", "sampler": "magic"}, 400, "sampler must be one of"),
        ({"prompt": "p", "fade_ms": 500}, 400, "fade_ms must be between 0 and 100"),
        ({"prompt": "p", "loudness": 3}, 400, "loudness must be between -60 and 0 LUFS (got 3)"),
        ({"prompt": "p", "loudness": "loud"}, 400, 'loudness must be a number of LUFS or "off"'),
        ({"prompt": "p", "loudness": float("nan")}, 400, "loudness must be a finite number"),
        ({"prompt": "p", "volume": 11}, 400, "unknown argument 'volume'"),
        ({"prompt": "p", "strength": 0.5}, 400, "unknown argument 'strength'"),
    ],
)
def test_bad_values_are_refused_naming_the_argument(values: dict[str, Any], code: int, needle: str) -> None:
    with pytest.raises(UsageError) as err:
        _parse(values)
    assert err.value.code == code and needle in err.value.message, err.value.message


def test_a_good_request_becomes_a_render_request() -> None:
    spec = _parse(
        {
            "prompt": "Dusty Drums!",
            "bpm": 92,
            "bars": 1,
            "steps": 20.0,
            "cfg": 7,
            "seed": 4,
            "format": "FLAC",
            "variations": 2,
        }
    )
    req = spec.request
    assert (req.bpm, req.bars, req.beats_per_bar, req.steps, req.cfg, req.seed) == (92.0, 1, 4, 20, 7.0, 4)
    assert isinstance(req.bpm, float) and isinstance(req.steps, int)  # ints accepted for floats, whole floats for ints
    assert spec.name == "dusty-drums" and spec.suffix == ".flac" and spec.subtype == "pcm24"
    assert req.fade_ms == 3.0 and req.seconds is None and spec.out_dir == str(Path("/tmp/out").resolve())
    assert req.loudness == -14.0  # every door's default level
    assert JobSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("value", "want"), [("off", None), ("None", None), (None, None), (-16, -16.0), ("-9.5", -9.5), (0, 0.0)]
)
def test_loudness_takes_lufs_or_off(value: Any, want: float | None) -> None:
    assert _parse({"prompt": "p", "loudness": value}).request.loudness == want


def test_random_seeds_are_resolved_at_the_door() -> None:
    a, b = _parse({"prompt": "p"}), _parse({"prompt": "p", "seed": -1})
    assert a.request.seed >= 0 and b.request.seed >= 0 and a.random_seed and b.random_seed
    assert a.fingerprint() == _parse({"prompt": "p"}).fingerprint()  # same request, same fingerprint


@pytest.mark.parametrize("rid", ["", "a b", "../x", ".x", "-x", "x" * 65, 5, None, "a/b", "é"])
def test_request_ids_are_safe_file_names(rid: Any) -> None:
    with pytest.raises(UsageError, match="req_id must be"):
        check_id(rid)


def _wav(path: Path, seconds: float = 0.25, sr: int = 22050, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), np.zeros((int(seconds * sr), 2), np.float32), sr, subtype=subtype)
    return path


def test_transform_sources_are_checked(tmp_path: Path) -> None:
    wav = _wav(tmp_path / "in.wav")
    spec = _parse({"source_path": str(wav), "strength": 1})
    assert spec.request.init_audio == str(wav) and spec.request.init_strength == 1.0 and spec.name == "in"
    cases = [
        ({"source_path": "in.wav", "strength": 0.5}, 400, "must be an absolute path"),
        ({"source_path": str(tmp_path / "nope.wav"), "strength": 0.5}, 404, "no such file"),
        ({"source_path": str(tmp_path), "strength": 0.5}, 400, "not a readable file"),
        ({"source_path": str(wav), "strength": 1.5}, 400, "strength must be between 0 and 1"),
        ({"source_path": 3, "strength": 0.5}, 400, "source_path must be text"),
    ]
    (tmp_path / "notes.wav").write_text("not audio at all")
    cases.append(({"source_path": str(tmp_path / "notes.wav")}, 400, "is not readable audio"))
    for values, code, needle in cases:
        with pytest.raises(UsageError) as err:
            _parse(values)
        assert err.value.code == code and needle in err.value.message, (values, err.value.message)

    inside = tmp_path / "allowed"
    inside.mkdir()
    ok = _wav(inside / "ok.wav")
    limits = Limits(max_seconds=3.0, allowed_roots=(inside,))
    assert _parse({"source_path": str(ok)}, limits).request.init_audio == str(ok)
    for path in (wav, inside / ".." / "in.wav"):
        with pytest.raises(UsageError, match="outside the allowed source folders"):
            _parse({"source_path": str(path)}, limits)
    (inside / "link.wav").symlink_to(wav)  # a symlink out of the allowed folder is still outside
    with pytest.raises(UsageError, match="outside the allowed"):
        _parse({"source_path": str(inside / "link.wav")}, limits)


@pytest.mark.parametrize(
    ("fmt", "subtype", "seconds"),
    [("WAV", "PCM_16", 0.25), ("WAV", "PCM_24", 1.5), ("WAV", "FLOAT", 0.5), ("FLAC", "PCM_16", 0.75)],
)
def test_sniff_reads_container_and_length(tmp_path: Path, fmt: str, subtype: str, seconds: float) -> None:
    path = tmp_path / f"a.{fmt.lower()}"
    frames = int(seconds * 22050)
    sf.write(str(path), np.zeros((frames, 1), np.float32), 22050, subtype=subtype, format=fmt)
    kind, length = sniff_audio(path)
    assert kind == fmt.lower() and length == pytest.approx(frames / 22050)
