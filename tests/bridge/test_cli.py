"""The CLI door: bad input ends with exit 2 and one line naming the argument, before the engine.

Validation tests run with the engine made unimportable, proving they need no torch; the render
path runs the real engine on a tiny random model saved as a model folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bridge.cli import main


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("longplay: error: "), lines[0]
    assert captured.out == ""
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seconds", "0"], "--seconds must be greater than 0 (got 0)"),
        (["--seconds", "-3"], "--seconds must be greater than 0 (got -3)"),
        (["--seconds", "nan"], "argument --seconds: expected a finite number (got 'nan')"),
        (["--seconds", "ten"], "argument --seconds: expected a number (got 'ten')"),
        (["--steps", "0"], "--steps must be between 1 and 500 (got 0)"),
        (["--steps", "501"], "--steps must be between 1 and 500 (got 501)"),
        (["--steps", "2.5"], "argument --steps: expected an integer (got '2.5')"),
        (["--cfg", "-0.5"], "--cfg must be between 0 and 25 (got -0.5)"),
        (["--cfg", "25.5"], "--cfg must be between 0 and 25 (got 25.5)"),
        (["--seed", "-2"], "--seed must be >= 0, or -1 for a random seed (got -2)"),
        (["--init-audio", "{wav}", "--init-strength", "1.5"], "--init-strength must be between 0 and 1 (got 1.5)"),
        (["--init-audio", "{wav}", "--init-strength", "-0.1"], "--init-strength must be between 0 and 1 (got -0.1)"),
        (["--init-strength", "0.5"], "--init-strength requires --init-audio"),
        (["--init-audio", "{missing}"], "--init-audio: no such file:"),
        (["--bpm", "19", "--bars", "8"], "--bpm must be between 20 and 300 BPM (got 19)"),
        (["--bpm", "301"], "--bpm must be between 20 and 300 BPM (got 301)"),
        (["--bpm", "120", "--bars", "0"], "--bars must be between 1 and 512 (got 0)"),
        (["--bpm", "120", "--bars", "513"], "--bars must be between 1 and 512 (got 513)"),
        (["--bars", "8"], "--bars requires --bpm"),
        (["--seconds", "30", "--bpm", "120", "--bars", "8"], "--seconds and --bars are mutually exclusive"),
        (["--variations", "0"], "--variations must be between 1 and 16 (got 0)"),
        (["--variations", "17"], "--variations must be between 1 and 16 (got 17)"),
        (["--device", "gpu"], "--device must be auto, cpu, cuda, cuda:N or mps (got 'gpu')"),
        (["--out", "{wav}"], "already exists"),
        (["--loudness", "3"], "argument --loudness: must be between -60 and 0 LUFS (got 3)"),
        (["--loudness", "loud"], "argument --loudness: must be a number of LUFS or \"off\" (got 'loud')"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_generate_rejects_bad_input_at_the_door(
    args: list[str],
    expected: str,
    tmp_path: Path,
    no_torch: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"RIFF")
    args = [a.format(wav=wav, missing=tmp_path / "nope.wav") for a in args]
    assert main(["generate", "drums", *args]) == 2
    assert expected in _error_line(capsys)


@pytest.mark.parametrize("argv", [["generate"], ["generate", "  "], [], ["remix"]])
def test_missing_or_unknown_pieces_are_one_line_errors(
    argv: list[str],
    no_torch: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(argv) == 2
    _error_line(capsys)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--osc-port", "70000"], "--osc-port must be between 0 and 65535"),
        (["--device", "tpu"], "--device must be auto"),
        (["--smoke", "shot.jpg"], "--smoke must name a .png file"),
        (["--colour", "red"], "unrecognized arguments: --colour red"),
    ],
)
def test_app_rejects_bad_input_at_the_door(
    args: list[str],
    expected: str,
    no_torch: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["app", *args]) == 2
    assert expected in _error_line(capsys)


def test_app_arguments_are_passed_on_to_the_desktop_process() -> None:
    from bridge.cli import app_argv, build_parser

    args = build_parser().parse_args(["app", "--model", "m", "--osc-port", "0", "--no-osc", "--smoke", "a.png"])
    assert app_argv(args) == ["--model", "m", "--osc-port", "0", "--smoke", "a.png", "--no-osc"]


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--help"]) == 0
    assert "--init-strength" in capsys.readouterr().out


def test_missing_engine_is_a_one_line_failure(no_torch: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 1
    assert "the engine is not available" in _error_line(capsys)


# --- the render path, with a real (tiny, random) model built in memory and saved as a folder ---


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[Path], str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, [Path(p) for p in out.out.splitlines()], out.err


def test_generate_renders_names_and_writes_recipes(
    tiny_model_dir: Path,
    tmp_out: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import soundfile as sf

    argv = [
        "generate",
        "Dusty lo-fi drums!",
        "--bpm",
        "92.5",
        "--bars",
        "1",
        "--seed",
        "41",
        "--variations",
        "2",
        "--steps",
        "3",
        "--device",
        "cpu",
        "--model",
        str(tiny_model_dir),
        "--out",
        str(tmp_out),
    ]
    code, paths, err = _run(argv, capsys)
    assert code == 0, err
    assert [p.name for p in paths] == [
        "dusty-lo-fi-drums_92.5bpm_1bar_s41_v1.wav",
        "dusty-lo-fi-drums_92.5bpm_1bar_s42_v2.wav",
    ]
    info = sf.info(str(paths[0]))
    # Bar-exact: 1 bar of 4 beats at 92.5 BPM, in samples; 24-bit stereo WAV.
    assert info.frames == round(4 * 60 / 92.5 * 44100) and info.channels == 2
    assert info.subtype == "PCM_24" and info.samplerate == 44100
    recipe = json.loads(paths[1].with_suffix(".json").read_text())
    assert recipe["seed"] == 42 and recipe["variation"] == 1 and recipe["model"] == tiny_model_dir.name
    assert recipe["prompt"] == "Dusty lo-fi drums!" and recipe["steps"] == 3 and recipe["sampler"]
    assert "sampling" in err and "decoding" in err
    # Brought to -14 LUFS unless a peak would pass -1 dBFS first; the recipe says how.
    assert recipe["loudness"] == -14.0 and recipe["loudness_in"] is not None
    peak = float(np.abs(sf.read(str(paths[1]))[0]).max())
    assert recipe["loudness_out"] == pytest.approx(-14.0, abs=0.01) or 20 * np.log10(peak) == pytest.approx(
        -1.0, abs=0.01
    )

    # Same seed again: new names, nothing overwritten, and the same audio (determinism).
    code, again, _ = _run(argv[:8] + ["--steps", "3", "--model", str(tiny_model_dir), "--out", str(tmp_out)], capsys)
    assert code == 0 and again[0].name == "dusty-lo-fi-drums_92.5bpm_1bar_s41_v1-1.wav"
    a, _ = sf.read(str(paths[0]))
    b, _ = sf.read(str(again[0]))
    assert (a == b).all()


def test_generate_to_an_explicit_file(
    tiny_model_dir: Path,
    tmp_out: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_out / "bed.flac"
    code, printed, err = _run(
        [
            "generate",
            "pads",
            "--seconds",
            "0.5",
            "--steps",
            "2",
            "--variations",
            "2",
            "--model",
            str(tiny_model_dir),
            "--out",
            str(target),
            "--waveform",
            "--loudness",
            "off",
        ],
        capsys,
    )
    assert code == 0, err
    recipe = json.loads((tmp_out / "bed_v1.json").read_text())
    assert recipe["loudness"] is None and "gain_db" not in recipe  # the model's own level
    assert sorted(p.name for p in tmp_out.iterdir() if not p.name.startswith(".")) == [
        "bed_v1.flac",
        "bed_v1.json",
        "bed_v1.png",
        "bed_v2.flac",
        "bed_v2.json",
        "bed_v2.png",
    ]
    assert (tmp_out / ".longplay" / "jobs.sqlite3").is_file()  # the folder's history holds the render
    assert [p.suffix for p in printed] == [".flac", ".png", ".flac", ".png"]


def test_engine_errors_are_one_line_failures(
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A request the model cannot do is bad input, as at the other doors (413 / 400 there): exit 2.
    assert main(["generate", "pads", "--seconds", "1500", "--model", str(tiny_model_dir)]) == 2
    assert "longer than the longest render, 1200 s" in _error_line(capsys)
    assert main(["generate", "pads", "--model", str(tmp_path / "nowhere")]) == 1
    assert "not found" in _error_line(capsys)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    assert (
        main(
            [
                "generate",
                "pads",
                "--seconds",
                "0.5",
                "--steps",
                "2",
                "--init-audio",
                str(bad),
                "--model",
                str(tiny_model_dir),
            ]
        )
        == 2
    )
    assert _error_line(capsys).startswith("longplay: error: --init-audio ")


def test_models_lists_what_the_engine_finds(
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LONGPLAY_MODELS", str(tiny_model_dir.parent))
    assert main(["models"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(tiny_model_dir.name))
    assert str(tiny_model_dir) in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--osc-port", "70000"], "--osc-port must be between 0 and 65535 (got 70000)"),
        (["--osc-port", "x"], "argument --osc-port: expected an integer (got 'x')"),
        (["--host", "0.0.0.0"], "--host 0.0.0.0 is not loopback: name the clients allowed to send requests"),
        (["--queue-limit", "0"], "--queue-limit must be between 1 and 100000 (got 0)"),
        (["--strength", "2"], "--strength must be between 0 and 1 (got 2)"),
        (["--device", "gpu"], "--device must be auto, cpu, cuda, cuda:N or mps (got 'gpu')"),
        (["--source-root", "/no/such/folder"], "--source-root: no such folder: /no/such/folder"),
    ],
)
def test_serve_rejects_bad_input_at_the_door(
    args: list[str],
    expected: str,
    no_torch: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", *args]) == 2
    assert expected in _error_line(capsys)


def test_serve_with_a_missing_model_is_a_one_line_failure(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--osc-port", "0", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 1
    assert "not found" in _error_line(capsys)
