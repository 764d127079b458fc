"""What every training run shares: seeding, resumable checkpoints, EMA, logging with progress/ETA."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def linear_decay(step: int, steps: int, final: float) -> float:
    """Learning-rate factor falling linearly from 1 to `final` at `steps` (then held): a function of
    the step alone, so a resumed run follows the same schedule."""
    return 1.0 - (1.0 - final) * min(step / max(steps, 1), 1.0)


def check_finite(loss: torch.Tensor, step: int, folder: Path) -> None:
    """Stop a run whose loss went NaN/inf before it overwrites the last good checkpoint with it."""
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"training diverged at step {step + 1} (loss {loss.item()}); the last good "
            f"checkpoint in {folder} is kept: lower the learning rate and resume"
        )


class Deadline:
    """`time_limit_s` seconds from now (0: never); the loops stop, with a checkpoint, once it passed."""

    def __init__(self, time_limit_s: float):
        self.limit = time_limit_s
        self.started = time.monotonic()

    def passed(self) -> bool:
        return bool(self.limit) and time.monotonic() - self.started > self.limit


def make_ema(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of the weights (torch's AveragedModel, not hand-rolled)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Atomic checkpoint write: a crash mid-save leaves the previous checkpoint intact."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state(py_rng: random.Random) -> dict[str, Any]:
    return {"py": py_rng.getstate(), "torch": torch.get_rng_state(), "np": np.random.get_state()}


def set_rng_state(py_rng: random.Random, state: dict[str, Any]) -> None:
    py_rng.setstate(state["py"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["np"])


class Logger:
    """Appends one JSON line per log step to `train_log.jsonl` and prints a progress line."""

    def __init__(
        self,
        out_dir: Path,
        total_steps: int,
        name: str,
        quiet: bool = False,
        print_fn: Callable[[str], None] | None = None,
    ):
        self.path = out_dir / "train_log.jsonl"
        self.total = total_steps
        self.name = name
        self.quiet = quiet
        self.print = print_fn or (lambda s: print(s, file=sys.stderr, flush=True))
        self.t0 = time.perf_counter()
        self.start_step: int | None = None

    def begin(self, step: int) -> None:
        """Mark where this process started (a resumed run starts mid-way) for rate and ETA."""
        self.start_step, self.t0 = step, time.perf_counter()

    def log(self, step: int, **values: float) -> None:
        now = time.perf_counter()
        if self.start_step is None:
            self.begin(0)
        done = step - (self.start_step or 0)
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.total - step) / max(rate, 1e-9)
        rec = {
            "run": self.name,
            "step": step,
            "time": round(now - self.t0, 2),
            **{k: round(float(v), 6) for k, v in values.items()},
        }
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        if not self.quiet:
            parts = " ".join(f"{k} {v:.4f}" for k, v in values.items())
            self.print(f"[{self.name}] step {step}/{self.total} {parts} | {rate:.2f} it/s, eta {eta / 60:.1f} min")
