"""Training crops without long silent gaps (`lab/training/gaps.py`): the DiT never learns that a
prompt may be played as seconds of the encoded silence (issue 19: the v2 candidate rendered 4 of
10 "drums" prompts at 4 s as digital silence)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import tiny_config
from lab.training.diffusion import DiTTrainConfig, LatentBank, train_dit
from lab.training.errors import TrainingError
from lab.training.gaps import crop_starts, silent_frames

D = 8  # tiny_config's latent channels
SILENCE = np.full(2 * D, -0.5, np.float32)  # mean and scale of the encoded silence


def _longest_run(silent: np.ndarray) -> int:
    best = run = 0
    for s in silent:
        run = run + 1 if s else 0
        best = max(best, run)
    return best


def test_crop_starts_leave_out_exactly_the_crops_with_a_long_silent_run() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        length, frames, gap = int(rng.integers(5, 80)), int(rng.integers(4, 40)), int(rng.integers(0, 6))
        silent = rng.random(length) < rng.choice([0.2, 0.6, 0.9])
        allowed = set(crop_starts(silent, frames, gap).tolist())
        for s in range(max(length - frames + 1, 1)):  # the bank's starts; padding past the end is not silence
            assert (s in allowed) == (_longest_run(silent[s : s + frames]) <= gap), (silent, frames, gap, s)


def _bank(root: Path, items: dict[str, np.ndarray]) -> Path:
    """A corpus index and a latent folder holding `items` (`[L]` bool: silent frames)."""
    rng = np.random.default_rng(1)
    (root / "lat").mkdir(parents=True)
    lines = []
    for name, silent in items.items():
        lat = rng.normal(0, 1, (2 * D, len(silent))).astype(np.float32)
        lat[:, silent] = SILENCE[:, None]
        np.save(root / "lat" / f"{name}.npy", lat.astype(np.float16))
        seconds = len(silent) / 10
        lines.append(json.dumps({"id": name, "path": f"audio/{name}.flac", "seconds": seconds, "split": "train",
                                 "kind": "stem:drums", "prompts": ["drums"]}))  # fmt: skip
    np.save(root / "lat" / "_silence.npy", SILENCE)
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_the_bank_draws_no_crop_across_a_long_silent_gap_and_keeps_the_padding(tmp_path: Path) -> None:
    """A stem that enters late and rests for a break (10 latent frames a second): with a 5-frame
    limit no crop holds more than 5 silent frames before its item's end; without it, crops do. A
    crop past a short item's end is still padded with the silence."""
    late = np.zeros(200, bool)
    late[:60] = late[120:140] = True  # 6 s silent intro, a 2 s break
    short = np.zeros(30, bool)  # shorter than a crop: padded after its end
    root = _bank(tmp_path, {"late": late, "short": short})
    frames, silence = 48, SILENCE[:D]

    def crops(max_gap: int) -> list[tuple[np.ndarray, float]]:
        bank = LatentBank(root, root / "lat", 10.0, max_gap=max_gap)
        x, metas = bank.batch(random.Random(3), 200, frames, sample=False)
        return [(silent_frames(row.numpy(), silence, 0.05), m["seconds_total"]) for row, m in zip(x, metas)]

    def longest_inside(silent: np.ndarray, seconds: float) -> int:
        return _longest_run(silent[: round(seconds * 10)])

    assert max(longest_inside(s, sec) for s, sec in crops(0)) > 30  # the intro, drawn as it is
    limited = crops(5)
    assert max(longest_inside(s, sec) for s, sec in limited) <= 5
    assert any(sec == 3.0 and s[30:].all() for s, sec in limited)  # the padding after "short" ends
    assert any(sec == 20.0 for _, sec in limited)  # "late" still trains, from where it plays


def test_a_corpus_of_silence_is_refused_by_name(tmp_path: Path) -> None:
    root = _bank(tmp_path, {"quiet": np.ones(100, bool)})
    with pytest.raises(TrainingError, match="no crop of 48 latent frames without a silent gap over 5 frames"):
        LatentBank(root, root / "lat", 10.0, max_gap=5).batch(random.Random(0), 1, 48)
    with pytest.raises(TrainingError, match="max_gap_frames must be 0"):
        train_dit(tiny_config(), root, root / "lat", root, tmp_path / "o", DiTTrainConfig(max_gap_frames=-1))


def test_train_dit_max_gap_reaches_the_bank_through_the_cli(tmp_path: Path) -> None:
    """`longplay train dit --max-gap` on a corpus whose drum stem is all silence: a clear error
    naming the gap, no traceback (the flag reaches the bank; without it the same run trains)."""
    from engine import build_model
    from engine.checkpoint import save_model

    root = _bank(tmp_path / "c", {"quiet": np.ones(400, bool)})
    save_model(build_model(tiny_config()), tmp_path / "ae", {})
    base = [sys.executable, "-m", "bridge.cli", "train", "dit", "--corpus", str(root), "--latents", str(root / "lat")]
    base += ["--ae", str(tmp_path / "ae"), "--out", str(tmp_path / "o"), "--steps", "1", "--batch", "1", "--crop", "1"]
    run = subprocess.run([*base, "--max-gap", "0.5"], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "without a silent gap over 86 frames" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert subprocess.run(base, capture_output=True, text=True, timeout=300).returncode == 0
