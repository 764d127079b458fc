"""Session-wide test setup: headless Qt, a CPU thread budget that fits CI, an output folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before any Qt import: widgets render offscreen, no display needed.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

try:
    import torch
except ImportError:  # the rooms/bridge tests run without torch
    pass
else:
    # CI has 2 cores; more threads only oversubscribe them.
    torch.set_num_threads(2)


@pytest.fixture
def tmp_out(tmp_path: Path) -> Path:
    """A fresh, empty output folder for renders written by a test."""
    out = tmp_path / "out"
    out.mkdir()
    return out
