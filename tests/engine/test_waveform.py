from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.waveform import peaks, waveform_png


def test_peaks_are_min_max_per_column() -> None:
    audio = np.zeros((2, 1000), dtype=np.float32)
    audio[0, 250] = 0.8
    audio[1, 999] = -0.5
    p = peaks(audio, 4)
    assert p.shape == (2, 4, 2)
    assert p[0, 1, 1] == np.float32(0.8) and p[0, 0].tolist() == [0.0, 0.0]
    assert p[1, 3, 0] == np.float32(-0.5)
    assert peaks(audio, 5000).shape == (2, 1000, 2)  # never more columns than samples


def test_png_is_written(tmp_path: Path) -> None:
    from PIL import Image

    t = np.linspace(0, 1, 44100)
    audio = np.stack([np.sin(2 * np.pi * 3 * t), 0.3 * np.sin(2 * np.pi * 5 * t)]).astype(np.float32)
    out = waveform_png(audio, tmp_path / "w.png", width=300, height=120, title="test")
    img = Image.open(out)
    assert img.size == (300, 120)
    assert len(img.getcolors(maxcolors=100_000) or []) > 2  # something was drawn
