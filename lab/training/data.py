"""Training data: the corpus index (`metadata.jsonl`) and random crops drawn from it.

Audio is decoded once into RAM as int16 (1 h of stereo 44.1 kHz is ~635 MB), because random
crops from compressed files would spend more time decoding than training on 2 cores.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio_io import conform, load_audio
from engine.errors import EngineError


class CorpusError(EngineError):
    """The corpus folder is missing, empty or malformed."""


@dataclass
class CorpusItem:
    id: str
    path: Path
    seconds: float
    split: str
    kind: str
    prompts: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)


def read_index(corpus_dir: str | Path, split: str | None = "train") -> list[CorpusItem]:
    """Items of `metadata.jsonl` (paths resolved against the corpus folder), optionally one split."""
    root = Path(corpus_dir)
    index = root / "metadata.jsonl"
    if not index.is_file():
        raise CorpusError(
            f"{root} is not a corpus folder: metadata.jsonl is missing (build one with `longplay corpus {root}`)"
        )
    items = []
    for n, line in enumerate(index.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            item = CorpusItem(
                str(d["id"]),
                root / d["path"],
                float(d["seconds"]),
                str(d.get("split", "train")),
                str(d.get("kind", "mix")),
                list(d.get("prompts") or []),
                dict(d.get("metadata") or {}),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CorpusError(f"{index}:{n}: malformed line ({exc})") from exc
        if split is None or item.split == split:
            items.append(item)
    if not items:
        raise CorpusError(f"{index} has no items in split {split!r}")
    return items


class AudioBank:
    """All items' audio in RAM as int16 `[C, N]`, conformed to one rate and channel count."""

    def __init__(self, items: list[CorpusItem], sample_rate: int, channels: int):
        self.items = items
        self.sample_rate = sample_rate
        self.audio: list[np.ndarray] = []
        for item in items:
            audio, sr = load_audio(item.path)
            audio = conform(audio, sr, sample_rate, channels)
            self.audio.append(np.clip(audio * 32767.0, -32768, 32767).astype(np.int16))

    def crop(self, rng: random.Random, length: int, min_rms_db: float | None = None, tries: int = 8) -> np.ndarray:
        """A random `[C, length]` float32 crop (zero-padded when an item is shorter).

        With `min_rms_db`, crops quieter than that are redrawn (up to `tries` times): rendered
        stems hold long digital silences, whose log-spectra no decoder can match, and a batch of
        them teaches nothing but costs a step."""
        for _ in range(tries):
            out = self._crop(rng, length)
            if min_rms_db is None or 20 * np.log10(np.sqrt(np.mean(out.astype(np.float64) ** 2)) + 1e-12) >= min_rms_db:
                return out
        return out  # the last draw, quiet or not

    def _crop(self, rng: random.Random, length: int) -> np.ndarray:
        i = rng.randrange(len(self.audio))
        a = self.audio[i]
        if a.shape[1] <= length:
            out = np.zeros((a.shape[0], length), dtype=np.float32)
            out[:, : a.shape[1]] = a / 32768.0
            return out
        start = rng.randrange(a.shape[1] - length + 1)
        return a[:, start : start + length].astype(np.float32) / 32768.0
