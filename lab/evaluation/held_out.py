"""The held-out split as the evaluation reads it: its mixes, middle crops of them, and a mean that
skips what could not be measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.audio_io import conform, load_audio

from ..training.data import CorpusItem, read_index
from . import metrics


def held_out_mixes(corpus: Path) -> list[CorpusItem]:
    """The `test` split's full mixes (the paper scores songs), or its stems if it has no mixes."""
    items = read_index(corpus, "test")
    return [it for it in items if it.kind == "mix"] or items


def middle_crops(
    items: list[CorpusItem], n: int, seconds: float, rate: int, channels: int, hop: int
) -> list[tuple[str, np.ndarray]]:
    length = max(hop, int(seconds * rate) // hop * hop)
    clips = []
    for it in items[:n]:
        audio, sr = load_audio(it.path)
        clips.append((it.id, metrics.middle_crop(conform(audio, sr, rate, channels), length)))
    return clips


def mean_of(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None
