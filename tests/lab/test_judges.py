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
