"""The CLI door renders a Stable Audio 3 folder (a tiny random one, original layout): the same
`Generator.render` path as every other door, so the WAV and its recipe come out as for any model."""

from __future__ import annotations

import json
from pathlib import Path

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
