"""`longplay extend` with a Stable Audio 3 folder (a tiny random one): the CLI door's one request
path ends in `Generator.render`, which extends through SA3's inpainting (engine/sa3/edit.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("diffusers")

from bridge.cli import main  # noqa: E402
from tests.engine import sa3_helpers as h  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
RATE = h.SAMPLE_RATE
BAR = 2 * RATE  # one bar at 120 BPM


def test_cli_sa3_extend(tmp_path: Path, tmp_out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = h.write_original(h.tiny_model(), tmp_path / "models" / "sa3-tiny", h.tiny_t5(tmp_path / "t5"))
    source = tmp_path / "take.wav"
    audio = np.random.default_rng(0).uniform(-0.3, 0.3, (2 * BAR * 8, 2)).astype(np.float32)
    sf.write(str(source), audio, 8 * RATE, subtype="FLOAT")  # 8,192 Hz: files under 8 kHz are refused
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    argv = ["extend", str(source), "--bars", "1", "--bpm", "120", "--seed", "4", "--steps", "2"]
    assert main([*argv, "--device", "cpu", "--model", str(folder), "--out", str(tmp_out)]) == 0, capsys.readouterr()
    out = capsys.readouterr()
    [wav] = [Path(p) for p in out.out.split() if p.endswith(".wav")]
    info = sf.info(str(wav))
    assert info.samplerate == RATE and info.frames == 3 * BAR  # the source's two bars and one more
    recipe = json.loads(wav.with_suffix(".json").read_text())
    assert recipe["model_kind"] == "stable-audio-3" and recipe["edit"] == "extend"
    assert recipe["edit_span_s"] == [4.0, 6.0] and recipe["edit_bpm"] == 120.0
    assert recipe["parent"] == {"file": str(source.resolve()), "sha256": before}
    assert "sampling" in out.err and hashlib.sha256(source.read_bytes()).hexdigest() == before
