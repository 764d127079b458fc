"""Desktop fixtures: the real app (queue, engine, tiny model) in offscreen Qt, with the dialogs
and the audio device replaced by fakes so nothing blocks and nothing plays."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QSettings

from desktop.main_window import MainWindow, build_controller
from desktop.player import Player
from desktop.settings import Settings

WAIT_MS = 90_000  # the CI box is shared; renders of the tiny model take ~1 s when it is not


class FakeDialogs:
    """Answers every dialog from fields the test sets, and records what was asked."""

    def __init__(self) -> None:
        self.audio = ""
        self.folder = ""
        self.confirm_answer = True
        self.revealed: list[str] = []
        self.asked: list[str] = []

    def open_audio(self, start: str = "") -> str:
        self.asked.append("open_audio")
        return self.audio

    def pick_folder(self, title: str, start: str = "") -> str:
        self.asked.append(title)
        return self.folder

    def confirm(self, title: str, text: str) -> bool:
        self.asked.append(title)
        return self.confirm_answer

    def reveal(self, path: str) -> None:
        self.revealed.append(path)


class FakeStream:
    """Stands in for a sounddevice OutputStream: the test pulls blocks through the callback."""

    def __init__(self, sample_rate: int, channels: int, callback: Callable[..., None]) -> None:
        self.sample_rate, self.channels, self.callback = sample_rate, channels, callback
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def pull(self, frames: int) -> np.ndarray:
        out = np.full((frames, self.channels), np.nan, dtype=np.float32)
        self.callback(out, frames, None, None)
        return out


class StreamFactory:
    def __init__(self) -> None:
        self.streams: list[FakeStream] = []

    def __call__(self, sample_rate: int, channels: int, callback: Callable[..., None]) -> FakeStream:
        self.streams.append(FakeStream(sample_rate, channels, callback))
        return self.streams[-1]


@pytest.fixture
def isolated_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No model is found by name (LONGPLAY_MODELS, the user data dir and the embedded models'
    folder point at empty folders)."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("LONGPLAY_MODELS", str(models))
    monkeypatch.setenv("LONGPLAY_BUILTIN_MODELS", str(models))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return models


@pytest.fixture
def settings(tmp_path: Path, qapp: Any) -> Settings:
    return Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def streams() -> StreamFactory:
    return StreamFactory()


@pytest.fixture
def make_window(
    qtbot: Any, settings: Settings, tmp_path: Path, tiny_model_dir: Path, isolated_models: Path, streams: StreamFactory
) -> Iterator[Callable[..., MainWindow]]:
    """Open the main window on the tiny model (or ``model=...``) and wait until it is idle."""

    def make(model: str | Path | None = tiny_model_dir, *, osc: bool = False, out: Path | None = None) -> MainWindow:
        controller = build_controller(
            settings,
            out or tmp_path / "out",
            osc_enabled=osc,
            osc_port=0,
            dialogs=FakeDialogs(),
            player=Player(stream_factory=streams),
            device="cpu",
        )
        controller.trash = lambda p: (
            Path(p).unlink(missing_ok=True),
            Path(p).with_suffix(".json").unlink(missing_ok=True),
        )
        window = MainWindow(controller)
        qtbot.addWidget(window)  # closed (and so shut down) at teardown
        window.show()
        controller.start(str(model) if model is not None else None)
        qtbot.waitUntil(controller.is_idle, timeout=WAIT_MS)
        return window

    yield make


def write_wav(path: Path, seconds: float = 0.5, sr: int = 44100, channels: int = 2) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    sf.write(path, np.stack([tone] * channels, axis=1).astype(np.float32), sr)
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
