"""The DiT's training data: per-item latents in RAM and the crops drawn from them, with their
timing conditioning, silent lead-ins cut and long silent gaps left out on request (`gaps.py`)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .data import CorpusItem, read_index
from .errors import TrainingError
from .gaps import SILENT_TOLERANCE, crop_starts, lead_in, silent_frames


class LatentBank:
    """Per-item latents (mean, scale) in RAM, and training windows cropped from them."""

    def __init__(
        self,
        corpus_dir: str | Path,
        latent_dir: str | Path,
        latent_rate: float,
        split: str = "train",
        scale: float = 1.0,
        max_gap: int = 0,
        trim_lead: bool = False,
    ):
        root = Path(latent_dir)
        items = read_index(corpus_dir, split)
        # Items without latents (e.g. stems left out of a quicker encode) are skipped, not fatal.
        self.items = [it for it in items if (root / f"{it.id}.npy").is_file()]
        self.skipped = len(items) - len(self.items)
        if not self.items:
            raise FileNotFoundError(
                f"{root}: no latents for any {split} item of {corpus_dir}; run `longplay train encode` first"
            )
        self.latents = [np.load(root / f"{it.id}.npy") for it in self.items]
        self.silence = torch.from_numpy(np.load(root / "_silence.npy"))  # [2D]
        self.rate = latent_rate
        self.scale = scale  # the pretransform's: the DiT sees latents / scale
        # Crops never hold more than `max_gap` silent frames in a row before their item's end
        # (0: any crop; `lab/training/gaps.py`). The allowed starts per (item, crop length), lazily.
        self.max_gap = max_gap
        self._starts: dict[tuple[int, int], np.ndarray] = {}
        # With `trim_lead` an item begins at its first sound: a drum stem's silent lead-in is never
        # a crop's start, and `seconds_start` counts from where the stem enters (`gaps.lead_in`).
        self.trim_lead = trim_lead
        self._silent: dict[int, np.ndarray] = {}

    def latent_std(self) -> float:
        """Standard deviation of the VAE means over the whole bank (the pretransform scale that
        gives the DiT unit-variance latents, as stable-audio-tools' `scale`)."""
        total, sq, n = 0.0, 0.0, 0
        for lat in self.latents:
            mean = lat[: lat.shape[0] // 2].astype(np.float64)
            total, sq, n = total + mean.sum(), sq + (mean * mean).sum(), n + mean.size
        mu = total / max(n, 1)
        return float(math.sqrt(max(sq / max(n, 1) - mu * mu, 1e-12)))

    def batch(
        self, rng: random.Random, n: int, frames: int, fresh_prompts: float = 0.0, sample: bool = True
    ) -> tuple[Tensor, list[dict[str, Any]]]:
        """-> latents `[n, D, frames]` (sampled from the VAE posterior, or its mean when not
        `sample`) and conditioning metadata."""
        xs, metas = [], []
        for _ in range(n):
            i, start = self._draw(rng, frames)
            lead = self._lead(i)
            length = self.latents[i].shape[1] - lead  # frames from the first kept one to the end
            at = lead + start  # only the crop is converted: an item is up to ~6,000 frames
            crop = torch.from_numpy(self.latents[i][:, at : at + frames].astype(np.float32))  # [2D, <= frames]
            if crop.shape[1] < frames:  # silence after the end (with seconds_total: where to stop)
                fill = self.silence[:, None].expand(-1, frames - crop.shape[1])
                crop = torch.cat((crop, fill), dim=1)
            mean, scale = crop.chunk(2, dim=0)
            std = torch.nn.functional.softplus(scale) + 1e-4
            g = torch.Generator().manual_seed(rng.randrange(2**31))
            xs.append(((mean + std * torch.randn(mean.shape, generator=g)) if sample else mean) / self.scale)
            item = self.items[i]
            metas.append(
                {
                    "prompt": self._prompt(item, rng, fresh_prompts),
                    "seconds_start": start / self.rate,
                    "seconds_total": item.seconds - lead / self.rate,
                    "bpm": item.metadata.get("bpm"),
                    "frames_before_end": min(frames, length - start),  # the rest is padding
                }
            )
        return torch.stack(xs), metas

    def _silent_frames(self, i: int) -> np.ndarray:
        if i not in self._silent:
            lat = self.latents[i]
            half, tol = lat.shape[0] // 2, SILENT_TOLERANCE * self.scale  # the bank's units
            self._silent[i] = silent_frames(lat[:half], self.silence[:half].numpy(), tol)
        return self._silent[i]

    def _lead(self, i: int) -> int:
        """Frames cut from the start of item `i`: its silent lead-in with `trim_lead`, else none."""
        return lead_in(self._silent_frames(i)) if self.trim_lead else 0

    def _draw(self, rng: random.Random, frames: int) -> tuple[int, int]:
        """An item and where its crop starts (after its lead): uniform over items, then over the
        starts allowed."""
        if not self.max_gap and not self.trim_lead:
            i = rng.randrange(len(self.items))
            length = self.latents[i].shape[1]
            return i, rng.randrange(length - frames + 1) if length > frames else 0
        for _ in range(1000):
            i = rng.randrange(len(self.items))
            if (i, frames) not in self._starts:
                silent = self._silent_frames(i)[self._lead(i) :]
                if not len(silent):  # all silence: nothing of it is trained on
                    self._starts[i, frames] = np.zeros(0, dtype=np.int64)
                elif self.max_gap:
                    self._starts[i, frames] = crop_starts(silent, frames, self.max_gap)
                else:
                    self._starts[i, frames] = np.arange(max(len(silent) - frames + 1, 1))
            starts = self._starts[i, frames]
            if len(starts):
                return i, int(starts[rng.randrange(len(starts))])
        raise TrainingError(
            f"no crop of {frames} latent frames without a silent gap over {self.max_gap} frames "
            "in 1000 draws; allow a longer gap"
            if self.max_gap
            else f"no crop of {frames} latent frames after the silent lead-ins in 1000 draws: is the corpus silent?"
        )

    @staticmethod
    def _prompt(item: CorpusItem, rng: random.Random, fresh: float) -> str:
        if fresh > 0 and rng.random() < fresh:
            from ..data.prompts import make_prompt

            stem = item.kind.split(":", 1)[1] if item.kind.startswith("stem:") else None
            try:
                return make_prompt(item.metadata, rng, stem=stem)
            except (KeyError, TypeError):  # a corpus of the user's own, without Longplay metadata
                pass
        return rng.choice(item.prompts) if item.prompts else ""
