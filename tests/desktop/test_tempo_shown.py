"""The app shows each render's tempo check and asks for `snap` with a checkbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt

from bridge.jobs import FileInfo, JobInfo
from bridge.requests import Limits, parse_request
from desktop.form import FormModel, FormValues
from desktop.history import HistoryEntry, HistoryModel
from desktop.main_window import MainWindow
from desktop.progress import STAGES

CHECK = {
    "asked_bpm": 124.0,
    "bpm": 123.97,
    "first_downbeat_s": 0.021,
    "confidence": 0.83,
    "verdict": "on tempo",
}
LINE = "124.0 BPM measured (asked 124), downbeat +0.02 s, confidence 0.83: on tempo"


def _entry(recipe: dict[str, Any]) -> HistoryEntry:
    spec = parse_request({"prompt": "house", "bpm": 124, "bars": 4}, limits=Limits(), out_dir=".")
    job = JobInfo(id="j1", source="osc", state="done", spec=spec, created=time.time())
    return HistoryEntry(job, FileInfo.of(1, "/x.wav", 7.7, 3, recipe))


def test_the_form_sends_and_recalls_snap(qapp: Any) -> None:
    form = FormModel(FormValues(prompt="house", length_mode="bars", bars=4, bpm=124.0, snap=True))
    assert form.request_values()["snap"] is True and form.check() == ""
    assert "snap" not in FormModel(FormValues(prompt="house")).request_values()
    form.update(length_mode="seconds")  # no BPM anywhere: the form says why before Generate
    assert "snap needs a tempo" in form.check()
    form.update(prompt="house, 124 BPM")
    assert form.check() == ""
    recalled = FormModel(FormValues())
    recalled.recall(form.spec_factory(".")().request, seed=3)
    assert recalled.values.snap


def test_history_and_preview_show_the_tempo_check(qapp: Any, make_window: Callable[..., MainWindow]) -> None:
    entry = _entry({"tempo_check": CHECK})
    assert entry.tempo() == LINE and _entry({}).tempo() == ""
    model = HistoryModel()
    model.load([entry])
    assert LINE in model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert STAGES["checking"] == "Checking tempo"

    window = make_window()
    window.form_view.snap.click()
    assert window.controller.form.values.snap
    window.preview.show_entry(entry)
    assert LINE in window.preview.details.text()
