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
from lab.training.bank import LatentBank
from lab.training.diffusion import DiTTrainConfig, train_dit
from lab.training.errors import TrainingError
from lab.training.gaps import crop_starts, lead_in, silent_frames

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


def test_lead_in_is_the_leading_silent_run_with_the_encoders_first_frame() -> None:
    cases = {(): 0, (1,): 1, (0,): 0, (0, 0, 1): 0, (1, 0, 0): 1, (0, 1, 1, 0): 3, (1, 1, 1): 3, (0, 1, 1, 1): 4}
    for silent, lead in cases.items():
        assert lead_in(np.array(silent, bool)) == lead, silent


def test_trim_lead_starts_every_item_at_its_first_sound(tmp_path: Path) -> None:
    """A drum stem entering 6 s in (its first frame off the silence, as the encoder leaves it), one
    of silence, one playing from the start: with `trim_lead` a crop told `seconds_start` 0 begins
    with sound, the late stem is told the 14 s it plays, and the silent one is never drawn; without
    it, the start is the silent intro."""
    late = np.zeros(200, bool)
    late[1:60] = True
    root = _bank(tmp_path, {"late": late, "quiet": np.ones(200, bool), "prompt": np.zeros(200, bool)})
    frames, silence = 48, SILENCE[:D]

    def crops(trim: bool) -> list[tuple[np.ndarray, dict]]:
        bank = LatentBank(root, root / "lat", 10.0, trim_lead=trim)
        x, metas = bank.batch(random.Random(5), 300, frames, sample=False)
        return [(silent_frames(row.numpy(), silence, 0.05), m) for row, m in zip(x, metas)]

    trimmed = crops(True)
    starts = [s for s, m in trimmed if m["seconds_start"] == 0]
    assert starts and not any(s[0] for s in starts)
    assert {m["seconds_total"] for _, m in trimmed} == {14.0, 20.0}
    assert not any(s.all() for s, _ in trimmed)  # "quiet" is never a crop
    assert any(m["seconds_start"] == 0 and s[1:30].all() for s, m in crops(False))


def test_mask_padding_leaves_the_frames_after_an_items_end_out_of_the_loss(tmp_path: Path) -> None:
    """The bank says how many of a crop's frames come before its item's end; with `mask_padding`
    the network's output after the end gets no gradient (it still sees those frames), the output
    before it does, and with nothing padded the loss is the plain one."""
    import torch

    from engine import build_model
    from lab.training.diffusion import v_loss

    root = _bank(tmp_path, {"short": np.zeros(30, bool)})
    bank = LatentBank(root, root / "lat", 10.0)
    _, metas = bank.batch(random.Random(0), 2, 48, sample=False)
    assert [m["frames_before_end"] for m in metas] == [30, 30]
    model = build_model(tiny_config())
    x0 = torch.randn(2, model.config.dit.io_channels, 48)
    outs: list[torch.Tensor] = []
    model.model.register_forward_hook(lambda _m, _i, out: outs.append(out) or out.retain_grad())

    def loss(ms: list[dict], mask: bool) -> torch.Tensor:
        torch.manual_seed(0)
        return v_loss(model, x0, ms, random.Random(1), 0.0, mask_padding=mask)

    loss(metas, True).backward()
    grad = outs[-1].grad
    assert grad is not None and not grad[..., 30:].any() and grad[..., :30].abs().min() > 0
    whole = [{**m, "frames_before_end": 48} for m in metas]
    assert loss(whole, True).item() == pytest.approx(loss(whole, False).item(), rel=1e-5)


def test_a_corpus_of_silence_is_refused_by_name(tmp_path: Path) -> None:
    root = _bank(tmp_path, {"quiet": np.ones(100, bool)})
    with pytest.raises(TrainingError, match="no crop of 48 latent frames without a silent gap over 5 frames"):
        LatentBank(root, root / "lat", 10.0, max_gap=5).batch(random.Random(0), 1, 48)
    with pytest.raises(TrainingError, match="max_gap_frames must be 0"):
        train_dit(tiny_config(), root, root / "lat", root, tmp_path / "o", DiTTrainConfig(max_gap_frames=-1))


def test_train_dit_silence_flags_reach_the_training_through_the_cli(tmp_path: Path) -> None:
    """`longplay train dit --max-gap` / `--trim-lead` on a corpus whose drum stem is all silence: a
    clear error naming the cause, no traceback (the flags reach the bank; without them the same run
    trains). `--mask-padding` reaches the run's recorded config."""
    from engine import build_model
    from engine.checkpoint import save_model

    root = _bank(tmp_path / "c", {"quiet": np.ones(400, bool)})
    save_model(build_model(tiny_config()), tmp_path / "ae", {})
    base = [sys.executable, "-m", "bridge.cli", "train", "dit", "--corpus", str(root), "--latents", str(root / "lat")]
    base += ["--ae", str(tmp_path / "ae"), "--out", str(tmp_path / "o"), "--steps", "1", "--batch", "1", "--crop", "1"]
    run = subprocess.run([*base, "--max-gap", "0.5"], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "without a silent gap over 86 frames" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    run = subprocess.run([*base, "--trim-lead"], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "after the silent lead-ins" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert subprocess.run(base, capture_output=True, text=True, timeout=300).returncode == 0
    assert subprocess.run([*base, "--mask-padding"], capture_output=True, text=True, timeout=300).returncode == 0
    trained = json.loads((tmp_path / "o" / "model" / "model_config.json").read_text())["longplay"]["train"]
    assert trained["mask_padding"] is True
