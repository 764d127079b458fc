"""The app end to end, offscreen: a real queue on the tiny model behind the real widgets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QDrag, QImage
from pythonosc.osc_message_builder import OscMessageBuilder

from desktop.history import EntryRole, HistoryEntry
from desktop.main_window import MainWindow

from .conftest import WAIT_MS

MakeWindow = Callable[..., MainWindow]
ROOT = Path(__file__).resolve().parents[2]


def _fill(window: MainWindow, qtbot: Any, prompt: str, seconds: float = 0.5, steps: int = 2) -> None:
    """Type into the widgets as a person would."""
    view = window.form_view
    view.prompt.setFocus()
    qtbot.keyClicks(view.prompt, prompt)
    view.by_seconds.click()
    view.seconds.setValue(seconds)
    view.steps.setValue(steps)
    view.variations.setValue(1)


def _finished(window: MainWindow, job_state: str = "done") -> HistoryEntry | None:
    return next((e for e in window.controller.history.entries if e.job.state == job_state), None)


def test_generate_adds_a_history_entry_with_its_file_and_waveform(
    make_window: MakeWindow, qtbot: Any, monkeypatch: Any
) -> None:
    window = make_window()
    c = window.controller
    _fill(window, qtbot, "dusty boom bap drums")
    assert c.form.values.prompt == "dusty boom bap drums" and c.form.values.steps == 2
    view = window.form_view
    view.normalize.setChecked(False)
    assert not c.form.values.normalize and not view.loudness.isEnabled()
    view.normalize.setChecked(True)
    view.loudness.setValue(-20.0)
    assert c.form.values.normalize and c.form.values.loudness == -20.0 and view.loudness.isEnabled()
    qtbot.keyClick(window.form_view.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Enter

    qtbot.waitUntil(lambda: _finished(window) is not None, timeout=WAIT_MS)
    entry = _finished(window)
    assert entry is not None and entry.prompt == "dusty boom bap drums"
    info = sf.info(entry.path)
    assert info.frames == 22050 and info.channels == 2  # 0.5 s at 44.1 kHz
    audio, rate = sf.read(entry.path)  # at the level the form asked for, or peaking at -1 dBFS
    lufs = pyloudnorm.Meter(rate).integrated_loudness(audio)
    assert lufs == pytest.approx(-20.0, abs=0.1) or 20 * np.log10(np.abs(audio).max()) == pytest.approx(-1.0, abs=0.01)
    assert entry.model == "tiny-test" and entry.job.source == "gui"
    assert c.form.values.seed == entry.seed == c.form.last_seed  # the used seed is shown
    assert f"seed {entry.seed}" in entry.details()

    # The new render is selected; its peaks arrive off the GUI thread and the preview draws them.
    qtbot.waitUntil(lambda: c.selected == entry and c.peaks.get(entry.path) is not None, timeout=WAIT_MS)
    peaks = c.peaks.get(entry.path)
    assert peaks is not None and peaks.peaks.shape[0] == 2 and peaks.frames == 22050
    assert window.preview.wave.path == entry.path and window.preview.wave.message() == ""
    assert c.progress.state.stage == "done"

    # Drag out of the history: the mime data holds the WAV's file URL.
    mime = c.history.mimeData([c.history.index(c.history.row_of(entry.job.id), 0)])
    assert [u.toLocalFile() for u in mime.urls()] == [entry.path]
    # ...and out of the waveform: a press and a move past the drag distance start a QDrag.
    dragged: list[list[str]] = []
    monkeypatch.setattr(
        QDrag,
        "exec",
        lambda self, *a: dragged.append([u.toLocalFile() for u in self.mimeData().urls()]) or Qt.DropAction.CopyAction,
    )
    wave = window.preview.wave
    qtbot.mousePress(wave, Qt.MouseButton.LeftButton, pos=wave.rect().center())
    qtbot.mouseMove(wave, wave.rect().center() + QPoint(40, 0))
    assert dragged == [[entry.path]]

    # Space plays the selected render; no audio device here, the fake stream is asked for it.
    window.history_view.setFocus()
    qtbot.keyClick(window.history_view, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: c.player.playing, timeout=WAIT_MS)
    qtbot.keyClick(window.history_view, Qt.Key.Key_Space)
    assert not c.player.playing


def test_cancel_mid_render_leaves_no_file(make_window: MakeWindow, qtbot: Any, tmp_path: Path) -> None:
    window = make_window()
    c = window.controller
    _fill(window, qtbot, "a long drone", steps=400)
    window.form_view.generate.click()
    qtbot.waitUntil(lambda: c.progress.state.stage == "sampling" and c.progress.state.step >= 1, timeout=WAIT_MS)
    assert window.progress_panel.cancel.isEnabled()
    assert "step" in window.progress_panel.stage.text()
    window.progress_panel.cancel.click()
    qtbot.waitUntil(lambda: _finished(window, "cancelled") is not None, timeout=WAIT_MS)
    assert not c.progress.state.active and not window.progress_panel.cancel.isEnabled()
    assert not [p for p in (tmp_path / "out").rglob("*") if p.suffix in (".wav", ".json", ".part")]


def test_bad_input_gets_a_message_in_the_window(make_window: MakeWindow, qtbot: Any) -> None:
    window = make_window()
    c, view = window.controller, window.form_view
    assert not c.generate()  # nothing written yet
    assert view.message.text() == "write a prompt first"
    qtbot.keyClicks(view.prompt, "pads")
    assert view.message.text() == ""
    c.form.update(length_mode="bars", bars=400, bpm=60.0)
    assert "longer than the longest render, 1200 s" in view.message.text()
    c.form.update(bars=64, init_audio="/nonexistent.wav")  # 256 s: fine to render, too long to restyle
    assert "longer than this model's window of 3.00 s" in view.message.text()
    assert not c.generate() and not c.history.entries


def test_missing_model_asks_for_a_folder_then_loads_it(
    make_window: MakeWindow, qtbot: Any, tiny_model_dir: Path
) -> None:
    window = make_window(model="longplay-mini")
    c, view = window.controller, window.form_view
    assert view.model_status.text() == "No model found — pick a model folder"
    assert not view.generate.isEnabled()
    qtbot.keyClicks(view.prompt, "pads")
    assert not c.generate() and "No model found" in view.message.text()
    assert "longplay-mini (not installed)" in [view.model_combo.itemText(i) for i in range(view.model_combo.count())]

    c.dialogs.folder = str(tiny_model_dir)
    view.add_model.click()
    qtbot.waitUntil(lambda: c.backend.ready and c.is_idle(), timeout=WAIT_MS)
    assert view.generate.isEnabled() and view.model_combo.currentText() == "tiny-test"
    assert c.settings["model/selected"] == str(tiny_model_dir)  # remembered by path, not index
    assert abs(c.form.limits.window - 3.0) < 0.01 and c.form.limits.max_seconds == 1200.0  # windows continue


def test_an_osc_request_appears_in_the_history(make_window: MakeWindow, qtbot: Any) -> None:
    window = make_window(osc=True)
    c = window.controller
    address = c.backend.state.osc_address
    assert address.startswith("udp://127.0.0.1:") and "listening on" in window.bridge_panel.osc_state.text()
    port = int(address.rsplit(":", 1)[1])
    msg = OscMessageBuilder("/longplay/render")
    for arg in ("daw-take-1", "prompt", "reaper bass", "seconds", 0.5, "steps", 2):
        msg.add_arg(arg, "f" if isinstance(arg, float) else None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.sendto(msg.build().dgram, ("127.0.0.1", port))
        qtbot.waitUntil(lambda: _finished(window) is not None, timeout=WAIT_MS)
    entry = _finished(window)
    assert entry is not None and entry.job.id == "daw-take-1" and entry.job.source == "osc"
    assert "OSC" in entry.details() and Path(entry.path).is_file()
    index = c.history.index(0, 0)
    assert index.data(EntryRole) == entry


def test_history_survives_a_restart_and_can_recall_and_delete(
    make_window: MakeWindow, qtbot: Any, tmp_path: Path
) -> None:
    window = make_window()
    _fill(window, qtbot, "warm analog house")
    window.form_view.bars.setValue(1)
    window.form_view.by_bars.click()
    window.form_view.bpm.setValue(120.0)
    window.controller.generate()
    qtbot.waitUntil(lambda: _finished(window) is not None, timeout=WAIT_MS)
    window.close()

    again = make_window()  # a new process would see the same: the journal is on disk
    c = again.controller
    entry = _finished(again)
    assert entry is not None and entry.prompt == "warm analog house" and entry.model == "tiny-test"
    assert c.selected == entry  # opens on the newest render
    c.form.update(prompt="something else", seed_locked=False, length_mode="seconds")
    c.recall(entry)
    v = c.form.values
    assert (v.prompt, v.length_mode, v.bars, v.bpm, v.seed, v.seed_locked) == (
        "warm analog house",
        "bars",
        1,
        120.0,
        entry.seed,
        True,
    )

    again.preview.reveal.click()
    assert c.dialogs.revealed == [entry.path]
    again.preview.delete.click()
    assert c.dialogs.asked[-1] == "Delete render" and not c.history.entries
    qtbot.waitUntil(
        lambda: not Path(entry.path).exists() and c.backend.queue.get(entry.job.id) is None, timeout=WAIT_MS
    )


def test_longplay_app_smoke_writes_a_screenshot(tiny_model_dir: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge.cli",
            "app",
            "--model",
            str(tiny_model_dir),
            "--out",
            str(tmp_path / "out"),
            "--no-osc",
            "--device",
            "cpu",
            "--smoke",
            str(shot),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(shot)
    image = QImage(str(shot))
    assert image.width() >= 1000 and image.height() >= 600


def test_a_stopped_render_worker_shows_in_the_bridge_panel(make_window: MakeWindow, qtbot: Any) -> None:
    """A full disk under the job journal stops the worker: the bridge panel says so and why."""
    import errno

    window = make_window()
    queue = window.controller.backend.queue
    assert queue is not None and "queue empty" in window.bridge_panel.queue_state.text()
    real = queue.journal._db

    class FullOnUpdate:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def execute(self, sql: str, *args: Any) -> Any:
            if sql.lstrip().upper().startswith("UPDATE"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real.execute(sql, *args)

    queue.journal._db = FullOnUpdate()
    try:
        _fill(window, qtbot, "pads")
        qtbot.keyClick(window.form_view.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: "renders stopped" in window.bridge_panel.queue_state.text(), timeout=WAIT_MS)
        assert "disk full" in window.bridge_panel.queue_state.text()
    finally:
        queue.journal._db = real


def test_the_app_writes_what_the_cli_writes_for_the_same_request(
    make_window: MakeWindow, qtbot: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The app's form is one more door onto the CLI's (and OSC's, the drop folder's) request path:
    the same request and seed give the same samples, tempo chunk and recipe."""
    from tests.bridge.test_one_path import REQUEST, render_with_cli, rendered, same

    window = make_window()
    view = window.form_view
    view.prompt.setFocus()
    qtbot.keyClicks(view.prompt, REQUEST["prompt"])
    view.by_bars.click()
    view.bars.setValue(REQUEST["bars"])
    view.bpm.setValue(float(REQUEST["bpm"]))
    view.steps.setValue(REQUEST["steps"])
    view.cfg.setValue(REQUEST["cfg"])
    view.variations.setValue(1)
    view.seed.setValue(REQUEST["seed"])
    view.seed_lock.setChecked(True)
    qtbot.keyClick(view.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: _finished(window) is not None, timeout=WAIT_MS)
    entry = _finished(window)
    assert entry is not None
    cli_file = render_with_cli(tiny_model_dir, tmp_path / "cli")
    same(rendered(cli_file), rendered(Path(entry.path)), "CLI vs app")
