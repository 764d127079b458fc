"""The CLI door: bad input ends with exit 2 and one line naming the argument, before the engine.

The engine is never imported here: validation tests run before any import, and the render path
is driven through a fake ``engine`` module that follows the public API the CLI is written against.
"""

from __future__ import annotations

import json
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("longplay: error: "), lines[0]
    assert captured.out == ""
    return lines[0]


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to import the engine fails, so validation provably runs without it."""
    monkeypatch.setitem(sys.modules, "engine", None)


@pytest.mark.parametrize(("args", "expected"), [
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
    (["--bpm", "19", "--bars", "8"], "--bpm must be between 20 and 300 (got 19)"),
    (["--bpm", "301"], "--bpm must be between 20 and 300 (got 301)"),
    (["--bpm", "120", "--bars", "0"], "--bars must be between 1 and 512 (got 0)"),
    (["--bpm", "120", "--bars", "513"], "--bars must be between 1 and 512 (got 513)"),
    (["--bars", "8"], "--bars requires --bpm"),
    (["--seconds", "30", "--bpm", "120", "--bars", "8"], "--seconds and --bars are mutually exclusive"),
    (["--variations", "0"], "--variations must be between 1 and 16 (got 0)"),
    (["--variations", "17"], "--variations must be between 1 and 16 (got 17)"),
    (["--device", "gpu"], "--device must be auto, cpu, cuda, cuda:N or mps (got 'gpu')"),
    (["--out", "{wav}"], "already exists"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_generate_rejects_bad_input_at_the_door(
    args: list[str], expected: str, tmp_path: Path, no_engine: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"RIFF")
    args = [a.format(wav=wav, missing=tmp_path / "nope.wav") for a in args]
    assert main(["generate", "drums", *args]) == 2
    assert expected in _error_line(capsys)


@pytest.mark.parametrize("argv", [["generate"], ["generate", "  "], [], ["remix"]])
def test_missing_or_unknown_pieces_are_one_line_errors(
    argv: list[str], no_engine: None, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(argv) == 2
    _error_line(capsys)


@pytest.mark.parametrize("command", ["serve", "app", "train", "eval"])
def test_later_commands_say_not_available_yet(
    command: str, no_engine: None, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([command, "--osc-port", "9030"]) == 2
    assert f"{command} is not available yet: arrives with" in _error_line(capsys)


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--help"]) == 0
    assert "--init-strength" in capsys.readouterr().out


def test_missing_engine_is_a_one_line_failure(no_engine: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 1
    assert "the engine is not available" in _error_line(capsys)


# --- the render path, against a fake engine with the expected public API -------------------


class FakeEngineError(Exception):
    pass


@dataclass
class FakeResult:
    audio: list[list[float]]
    sample_rate: int
    seed: int
    seconds: float


class FakeRequest:
    def __init__(self, prompt: str, **kwargs: Any) -> None:
        self.prompt = prompt
        self.seconds = kwargs.pop("seconds", None)
        self.seed = kwargs.pop("seed", None)
        self.variations = kwargs.pop("variations", 1)
        self.extra = kwargs


def _fake_engine(calls: dict[str, Any], fail: str | None = None) -> types.ModuleType:
    engine = types.ModuleType("engine")

    class Generator:
        def __init__(self, model: object, device: str | None = None) -> None:
            calls["model"], calls["device"] = model, device

        def render(self, request: FakeRequest, *, on_progress: Any, cancel: threading.Event) -> list[FakeResult]:
            calls["request"] = request
            assert not cancel.is_set()
            if fail:
                raise FakeEngineError(fail)
            for step in range(1, 4):
                on_progress(step, 3, "sampling")
            on_progress(1, 1, "decoding")
            seed = 7 if request.seed is None else request.seed
            return [FakeResult([[0.0] * 4] * 2, 44100, seed + i, request.seconds or 1.0)
                    for i in range(request.variations)]

    def load_model(name_or_path: str | None) -> object:
        calls["load"] = name_or_path
        return types.SimpleNamespace(folder=Path("/models/fake-mini"))

    def write_audio_atomic(path: Path, audio: Any, sample_rate: int) -> Path:
        Path(path).write_bytes(b"RIFFfake")
        return Path(path)

    def find_models() -> list[object]:
        return calls.get("models", [])

    engine.EngineError = FakeEngineError  # type: ignore[attr-defined]
    engine.Generator = Generator  # type: ignore[attr-defined]
    engine.RenderRequest = FakeRequest  # type: ignore[attr-defined]
    engine.load_model = load_model  # type: ignore[attr-defined]
    engine.write_audio_atomic = write_audio_atomic  # type: ignore[attr-defined]
    engine.find_models = find_models  # type: ignore[attr-defined]
    return engine


def test_generate_renders_names_and_writes_recipes(
    tmp_out: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    calls: dict[str, Any] = {}
    monkeypatch.setitem(sys.modules, "engine", _fake_engine(calls))
    code = main(["generate", "Dusty lo-fi drums!", "--bpm", "92.5", "--bars", "8", "--seed", "41",
                 "--variations", "2", "--steps", "20", "--device", "cpu", "--out", str(tmp_out)])
    assert code == 0
    assert calls["load"] is None and calls["device"] == "cpu"
    assert calls["request"].extra == {"bpm": 92.5, "bars": 8, "steps": 20}
    out = capsys.readouterr()
    paths = [Path(p) for p in out.out.splitlines()]
    assert [p.name for p in paths] == ["dusty-lo-fi-drums_92.5bpm_8bar_s41_v1.wav",
                                       "dusty-lo-fi-drums_92.5bpm_8bar_s42_v2.wav"]
    recipe = json.loads(paths[1].with_suffix(".json").read_text())
    assert recipe["seed"] == 42 and recipe["variation"] == 2 and recipe["model"] == "fake-mini"
    assert "sampling" in out.err and "decoding" in out.err

    # Same seed again: new names, nothing overwritten.
    assert main(["generate", "Dusty lo-fi drums!", "--bpm", "92.5", "--bars", "8", "--seed", "41",
                 "--out", str(tmp_out)]) == 0
    assert Path(capsys.readouterr().out.strip()).name == "dusty-lo-fi-drums_92.5bpm_8bar_s41_v1-1.wav"


def test_generate_to_an_explicit_file(
    tmp_out: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "engine", _fake_engine({}))
    target = tmp_out / "bed.flac"
    assert main(["generate", "pads", "--seconds", "30", "--variations", "2", "--out", str(target)]) == 0
    assert sorted(p.name for p in tmp_out.iterdir()) == ["bed_v1.flac", "bed_v1.json", "bed_v2.flac", "bed_v2.json"]


def test_engine_errors_are_one_line_failures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "engine", _fake_engine({}, fail="out of memory:\n  try fewer seconds"))
    assert main(["generate", "pads"]) == 1
    assert _error_line(capsys) == "longplay: error: out of memory: try fewer seconds"


def test_models_lists_what_the_engine_finds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    calls: dict[str, Any] = {}
    monkeypatch.setitem(sys.modules, "engine", _fake_engine(calls))
    assert main(["models"]) == 0
    assert "no models found" in capsys.readouterr().out
    calls["models"] = [types.SimpleNamespace(name="longplay-mini", path="/m/mini", description="demo")]
    assert main(["models"]) == 0
    assert capsys.readouterr().out.split() == ["longplay-mini", "/m/mini", "demo"]
