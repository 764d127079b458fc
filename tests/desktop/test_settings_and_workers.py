"""Settings persist as typed values (not widget indices); run_task posts back to the GUI thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from desktop import workers
from desktop.settings import Settings


def test_settings_round_trip_as_values(tmp_path: Path, qapp: Any) -> None:
    path = str(tmp_path / "s.ini")
    s = Settings(QSettings(path, QSettings.Format.IniFormat))
    s["osc/port"] = 9100
    s["osc/enabled"] = False
    s["model/selected"] = "/models/tiny"
    s["model/folders"] = ["/models/a", "/models/b"]
    s["form/values"] = {"length_mode": "bars", "bpm": 92.0}
    s["window/geometry"] = b"\x01\x02"
    s.sync()
    again = Settings(QSettings(path, QSettings.Format.IniFormat))
    assert again["osc/port"] == 9100 and again["osc/enabled"] is False
    assert again["model/selected"] == "/models/tiny" and again["model/folders"] == ["/models/a", "/models/b"]
    assert again["form/values"] == {"length_mode": "bars", "bpm": 92.0}
    assert again["window/geometry"] == b"\x01\x02"
    text = Path(path).read_text()
    assert "selected=/models/tiny" in text and "bars" in text  # readable values, no indices


def test_bad_stored_values_fall_back_to_defaults(tmp_path: Path, qapp: Any) -> None:
    path = tmp_path / "s.ini"
    path.write_text("[osc]\nport=lots\nenabled=maybe\n[model]\nfolders=not json\n")
    s = Settings(QSettings(str(path), QSettings.Format.IniFormat))
    assert s["osc/port"] == 9030 and s["osc/enabled"] is True and s["model/folders"] == []


def test_run_task_delivers_results_and_errors_on_the_gui_thread(qtbot: Any) -> None:
    got: list[tuple[Any, Any, bool]] = []
    gui = threading.current_thread()

    def record(result: Any, error: BaseException | None) -> None:
        got.append((result, error, threading.current_thread() is gui))

    worker_threads: list[threading.Thread] = []
    workers.run_task(lambda: worker_threads.append(threading.current_thread()) or 42, record)
    workers.run_task(lambda: 1 / 0, record, serial=True)
    qtbot.waitUntil(lambda: len(got) == 2 and workers.pending() == 0, timeout=10_000)
    results = {r for r, _, _ in got}
    errors = [e for _, e, _ in got if e is not None]
    assert 42 in results and isinstance(errors[0], ZeroDivisionError)
    assert all(on_gui for _, _, on_gui in got) and worker_threads[0] is not gui
