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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model saved as a real model folder (config + safetensors), built once."""
    import torch

    from engine import build_model, save_model, tiny_config

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-test"
    save_model(build_model(tiny_config(window_seconds=3.0)), folder, {"description": "tiny random test model"})
    return folder


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch cannot be imported, and the engine is imported afresh: the CLI's argument checks (and
    `from engine import LIMITS`) provably run without torch, and anything that needs it fails as
    on a machine without it."""
    import sys

    for name in [k for k in sys.modules if k == "engine" or k.startswith("engine.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)
