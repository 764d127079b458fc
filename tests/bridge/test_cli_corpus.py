"""`longplay corpus`: arguments checked at the door (no engine import), then the engine builds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bridge.cli import main


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("longplay: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--songs", "0"], "--songs must be between 1 and 100000 (got 0)"),
        (["--seed", "-1"], "--seed must be >= 0 (got -1)"),
        (["--max-seconds", "300"], "--max-seconds must be between 1 and 285 (got 300)"),
        (["--max-seconds", "20", "--min-seconds", "30"], "--min-seconds must be between 1 and 20 (got 30)"),
        (["--stems", "6"], "--stems must be between 0 and 5 (got 6)"),
        (["--transpose", "12"], "--transpose must be between 0 and 11 (got 12)"),
        (["--held-out", "1.5"], "--held-out must be between 0 and 1 (got 1.5)"),
        (["--jobs", "0"], "--jobs must be between 1 and 16 (got 0)"),
        (["--songs", "ten"], "argument --songs: expected an integer (got 'ten')"),
    ],
)
def test_corpus_rejects_bad_input_at_the_door(
    args: list[str],
    expected: str,
    no_torch: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["corpus", str(tmp_path / "c"), *args]) == 2
    assert expected in _error_line(capsys)


def test_corpus_out_dir_must_be_a_folder(no_torch: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["corpus", str(file)]) == 2
    assert "exists and is not a folder" in _error_line(capsys)


def test_missing_fluidsynth_is_a_one_line_failure(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["corpus", str(tmp_path / "c"), "--songs", "1", "--max-seconds", "5"]) == 1
    assert "fluidsynth" in _error_line(capsys)


def test_corpus_builds_a_tiny_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("fluidsynth") is None:
        pytest.skip("FluidSynth is not installed (`make apt` installs it)")
    out = tmp_path / "c"
    assert main(["corpus", str(out), "--songs", "1", "--max-seconds", "4", "--stems", "0", "--transpose", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / "metadata.jsonl")
    assert "[1/1]" in captured.err
    moved, item = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert item["kind"] == "mix" and (out / item["path"]).is_file()
    assert moved["kind"] == "mix:transposed" and (out / moved["path"]).is_file()  # the song is in the train split
