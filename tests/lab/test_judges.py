"""The independent judges (lab/judges/run.py in .venv-judges) on audio whose answer is known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lab.evaluation import judges
from lab.evaluation.judges_eval import judges_section
from lab.evaluation.markdown import render_markdown

SR = 44100
needs_env = pytest.mark.skipif(judges.find_python() is None, reason=judges.missing_reason())


def _write(path: Path, audio: np.ndarray) -> str:
    import soundfile as sf

    sf.write(str(path), audio.astype(np.float32), SR)
    return str(path)


def _clicks(bpm: float, seconds: float) -> np.ndarray:
    x = np.zeros(int(seconds * SR))
    burst = np.random.default_rng(0).standard_normal(441) * np.exp(-np.linspace(0, 6, 441))
    for t in np.arange(0.0, seconds - 0.02, 60.0 / bpm):
        x[int(t * SR) : int(t * SR) + 441] += 0.8 * burst
    return x


def _chords(chords: list[tuple[int, ...]], seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    env = np.minimum(1.0, 20 * t) * np.exp(-1.5 * t)
    # Each note a sum of sines on its first four harmonics: a key CNN is trained on instruments.
    out = [
        sum(np.sin(2 * np.pi * k * 440 * 2 ** ((m - 69) / 12) * t) / k for m in c for k in (1, 2, 3, 4)) * env * 0.1
        for c in chords
    ]
    return np.concatenate(out)


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, str]]:
    d = tmp_path_factory.mktemp("judges")
    t = np.arange(4 * SR) / SR
    cadence = [(48, 64, 67, 72), (53, 65, 69, 72), (55, 62, 67, 71), (48, 64, 67, 72)] * 3
    rng = np.random.default_rng(1)
    files = {
        "clicks": _write(d / "clicks.wav", _clicks(120, 10)),
        "sine": _write(d / "sine.wav", 0.5 * np.sin(2 * np.pi * 440 * t)),
        "cadence": _write(d / "cadence.wav", _chords(cadence)),
    }
    for i in range(4):  # two sets of tone clips, one of noise
        notes = [tuple(int(m) for m in rng.integers(55, 80, 3)) for _ in range(6)]
        files[f"tones{i}"] = _write(d / f"tones{i}.wav", _chords(notes))
    for i in range(2):
        files[f"noise{i}"] = _write(d / f"noise{i}.wav", 0.3 * rng.standard_normal(6 * SR))
    jobs = [(files["clicks"], ("tempo",)), (files["sine"], ("f0", "notes")), (files["cadence"], ("key", "notes"))]
    jobs += [(files[k], ("embedding",)) for k in files if k.startswith(("tones", "noise"))]
    return judges.run_judges(jobs), files


@needs_env
def test_judges_hear_known_answers(answers: tuple[dict[str, Any], dict[str, str]]) -> None:
    answer, files = answers
    assert answer["unavailable"] == {}
    res = answer["results"]
    assert abs(res[files["clicks"]]["tempo"]["bpm"] / 120 - 1) <= 0.02
    assert abs(res[files["sine"]]["f0"]["f0_hz"] / 440 - 1) <= 0.01
    assert res[files["sine"]]["notes"]["longest_pitch"] == 69  # A4
    assert res[files["cadence"]]["key"]["key"] in ("C major", "A minor")
    assert res[files["cadence"]]["notes"]["key"] in ("C major", "A minor")


@needs_env
def test_frechet_distance_of_musicnn_embeddings(answers: tuple[dict[str, Any], dict[str, str]]) -> None:
    answer, files = answers

    def frames(*keys: str) -> np.ndarray:
        return np.concatenate([np.asarray(answer["results"][files[k]]["embedding"]["frames"]) for k in keys])

    same = judges.frechet_distance(frames("tones0", "tones1"), frames("tones2", "tones3"))
    other = judges.frechet_distance(frames("tones0", "tones1"), frames("noise0", "noise1"))
    assert same is not None and other is not None and same < other


def test_frechet_distance_and_key_agreement_arithmetic() -> None:
    rng = np.random.default_rng(0)
    a, b, c = rng.standard_normal((400, 8)), rng.standard_normal((400, 8)), rng.standard_normal((400, 8)) + 2
    assert judges.frechet_distance(a, b) < 0.5 < judges.frechet_distance(a, c)
    assert judges.key_agreement("C major", "C major") == "right"
    assert judges.key_agreement("C major", "A minor") == "relative"
    assert judges.key_agreement("D dorian", "C major") == "same_scale"
    assert judges.key_agreement("G dorian", "G minor") == "right"
    assert judges.key_agreement("C major", "F# major") == "other"


def test_missing_env_is_a_reason_in_eval_md(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(judges.ENV_VAR, str(tmp_path / "nowhere" / "python"))
    section = judges_section(object(), {"quick": True})
    assert "make judges" in section["skipped"]
    with pytest.raises(judges.JudgesUnavailable):
        judges.run_judges([str(tmp_path / "x.wav")])
    md = render_markdown({"model": "m", "corpus": "c", "created": "now", "judges": section})
    assert "## Independent judges" in md and "Skipped: no judges env" in md


def test_tonal_in_scale_share_counts_the_pitches_not_the_drums() -> None:
    """A C major triad with harmonics over loud noise bursts: its peaks are all in C major and none
    of them in F# major (which shares no note with C, E, G); silence has no share."""
    from lab.evaluation.music import tonal_in_scale_share

    sr = 44100
    t = np.arange(6 * sr) / sr
    chord = sum(
        0.1 / h * np.sin(2 * np.pi * f * h * t) for f in (261.63, 329.63, 392.0) for h in (1, 2, 3)
    )  # fmt: skip
    bursts = np.random.default_rng(0).standard_normal(t.size) * (np.mod(t, 0.5) < 0.05) * 0.5
    audio = np.stack([chord + bursts, chord + bursts]).astype(np.float32)
    assert tonal_in_scale_share(audio, sr, judges.scale_pitch_classes("C major")) > 0.95
    assert tonal_in_scale_share(audio, sr, judges.scale_pitch_classes("F# major")) < 0.05
    assert judges.scale_pitch_classes("D dorian") == judges.scale_pitch_classes("C major")
    assert judges.scale_pitch_classes("H major") is None
    assert tonal_in_scale_share(np.zeros((2, sr * 2), np.float32), sr, frozenset({0})) is None


def test_the_eval_reports_the_in_scale_share_of_its_key_renders(tmp_path: Path) -> None:
    from lab.evaluation.judges_eval import _in_scale, judges_markdown

    chord = _chords([(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)])  # I IV V I in C major
    path = _write(tmp_path / "c.wav", np.stack([chord, chord], 1))
    got = _in_scale(
        [{"file": path, "key": "C major"}, {"file": path, "key": "F# major"}], [{"file": path, "key": "A minor"}]
    )
    assert got["renders"][0] > 0.95 and got["renders"][1] < 0.2 and got["held_out_median"] > 0.95
    none = {"right": 0, "relative": 0, "same_scale": 0, "other": 0, "n": 0}
    tempo = {"n": 0, "median_relative_error": None, "share_within": None, "share_octave_within": None}
    section = {
        "versions": {},
        "unavailable": {},
        "errors": [],
        "tempo": {"renders": tempo, "held_out": tempo},
        "key": {g: {"madmom": none, "basic_pitch": none} for g in ("renders", "held_out")} | {"in_scale": got},
        "notes": {"renders_mean_per_10s": None, "held_out_mean_per_10s": None},
        "frechet": {"render_frames": 0, "held_out_frames": 0, "renders_vs_held_out": None, "held_out_split_half": None},
        "tones": [],
        "beatbox": {"skipped": "none"},
    }
    row = next(line for line in judges_markdown(section) if "in the asked key's scale" in line)
    assert f"{got['renders_median']:.3f}" in row and f"{got['held_out_median']:.3f}" in row
