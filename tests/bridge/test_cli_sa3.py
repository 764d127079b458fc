"""The CLI door renders a Stable Audio 3 folder (a tiny random one, original layout): the same
`Generator.render` path as every other door, so the WAV and its recipe come out as for any model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("diffusers")

from bridge.cli import main  # noqa: E402
from tests.engine import sa3_helpers as h  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def test_cli_generate_with_an_sa3_folder(
    tmp_path: Path, tmp_out: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import soundfile as sf

    folder = h.write_original(h.tiny_model(), tmp_path / "models" / "sa3-tiny", h.tiny_t5(tmp_path / "t5"))
    argv = ["generate", "warm house", "--bpm", "120", "--bars", "1", "--seed", "5", "--steps", "2"]
    argv += ["--device", "cpu", "--loudness", "off", "--model", str(folder), "--out", str(tmp_out)]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr()
    [wav] = [Path(p) for p in out.out.splitlines()]
    info = sf.info(str(wav))
    assert info.frames == 2 * h.SAMPLE_RATE and info.samplerate == h.SAMPLE_RATE and info.channels == 2
    recipe = json.loads(wav.with_suffix(".json").read_text())
    assert recipe["model_kind"] == "stable-audio-3" and recipe["model"] == "sa3-tiny"
    assert recipe["seed"] == 5 and recipe["steps"] == 2 and recipe["sampler"] == "pingpong"
    assert "sampling" in out.err and "decoding" in out.err

    monkeypatch.setenv("LONGPLAY_MODELS", str(folder.parent))
    assert main(["models"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("sa3-tiny"))
    assert "stable-audio-3" in line and str(folder) in line


def test_cli_generate_with_a_lora_and_past_the_window(
    tmp_path: Path, tmp_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--lora FILE[:SCALE]` (repeatable) through the real door: the LoRA changes the render, the
    recipe names it, and the same seed without it renders as before; a render 2.5x the 4 s window
    comes out at its length (windows continuing each other)."""
    import numpy as np
    import soundfile as sf

    model = h.tiny_model()
    folder = h.write_original(model, tmp_path / "models" / "sa3-tiny", h.tiny_t5(tmp_path / "t5"))
    style = h.write_lora(model, tmp_path / "loras" / "style.safetensors", seed=1)
    base = ["generate", "warm house", "--seconds", "1", "--seed", "5", "--steps", "2", "--device", "cpu"]
    base += ["--loudness", "off", "--model", str(folder)]

    def render(*extra: str, out: str) -> tuple[np.ndarray, dict[str, Any]]:
        assert main([*base, *extra, "--out", str(tmp_out / out)]) == 0, capsys.readouterr().err
        [wav] = [Path(p) for p in capsys.readouterr().out.splitlines()]
        audio, _ = sf.read(str(wav), dtype="float32")
        return audio, json.loads(wav.with_suffix(".json").read_text())

    plain, _ = render(out="plain.wav")
    styled, recipe = render("--lora", f"{style}:0.8", "--lora", str(style), out="styled.wav")
    assert not np.allclose(styled, plain, atol=1e-3)
    assert [(e["path"], e["scale"]) for e in recipe["lora"]] == [(str(style), 0.8), (str(style), 1.0)]
    again, recipe = render(out="again.wav")
    assert np.array_equal(again, plain) and recipe["lora"] == []

    long, recipe = render("--seconds", "10", out="long.wav")
    assert long.shape == (10 * h.SAMPLE_RATE, 2) and recipe["windows"] == 4

    for bad, said in (
        (["--lora", str(tmp_path / "none.safetensors")], "--lora: no such file"),
        (["--lora", f"{style}:12"], "--lora scale must be between 0 and 10"),
        (["--lora", str(style)] * 5, "--lora: at most 4 files"),
    ):
        assert main([*base, *bad, "--out", str(tmp_out / "bad.wav")]) == 2
        assert said in capsys.readouterr().err
