"""Loops, extend and replace in the app (issue 22): the form's *Loop* checkbox is the `loop` key,
and bars selected on a render's waveform become the `edit` requests every door takes, submitted on
the app's one queue; the new files join the history with their parent in the recipe."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import soundfile as sf
from PySide6.QtCore import QPoint, Qt

from bridge.jobs import FileInfo, JobInfo
from bridge.requests import Limits, parse_request
from desktop.edit_actions import BarGrid, grid_of
from desktop.form import FormModel, FormValues
from desktop.history import HistoryEntry
from desktop.main_window import MainWindow

from .conftest import WAIT_MS

BAR = 44100  # one bar of 4 beats at 240 BPM, in samples


def _entry(values: dict[str, Any], path: str = "/x.wav", seconds: float = 2.0, recipe: Any = None) -> HistoryEntry:
    spec = parse_request({"prompt": "house", **values}, limits=Limits(max_seconds=600), out_dir=".")
    job = JobInfo(id="j1", source="gui", state="done", spec=spec, created=time.time())
    return HistoryEntry(job, FileInfo.of(1, path, seconds, 3, recipe or {}))


def test_the_loop_checkbox_is_the_loop_key_in_bars_mode(qapp: Any) -> None:
    form = FormModel(FormValues(prompt="pads", length_mode="bars", bars=2, bpm=240.0, loop=True))
    assert form.request_values()["loop"] is True and form.check() == ""
    request = form.spec_factory(".")().request
    assert request.loop and request.fade_ms == 0.0
    form.update(length_mode="seconds")  # a loop is a whole number of bars: seconds mode sends none
    assert "loop" not in form.request_values() and form.check() == ""
    recalled = FormModel(FormValues())
    recalled.recall(request, seed=1)
    assert recalled.values.loop and recalled.values.length_mode == "bars"
    assert FormValues.from_dict(recalled.values.to_dict()) == recalled.values


def test_bars_snap_to_the_grid_the_render_was_made_on(qapp: Any) -> None:
    grid = BarGrid(240.0, 4)  # one bar = 1 s
    assert grid.whole_bars(2.0) == 2 and grid.whole_bars(2.0 - 1e-5) == 2 and grid.whole_bars(2.9) == 2
    assert grid.snap(0.3, 1.6, 2) == (1, 2)  # the bars a drag passes over
    assert grid.snap(1.6, 0.3, 2) == (1, 2)  # either way
    assert grid.snap(1.2, 1.2, 2) == (2, 2)  # a click: the bar under it
    assert grid.snap(-1.0, 9.0, 2) == (1, 2) and grid.snap(0.5, 0.5, 0) is None
    assert grid_of(_entry({"bpm": 240, "bars": 2})) == grid
    assert grid_of(_entry({"bpm": 90, "beats_per_bar": 3, "bars": 2})) == BarGrid(90.0, 3)
    named = _entry({"prompt": "house, 124 BPM", "seconds": 2.0}, recipe={"tempo_check": {"asked_bpm": 124.0}})
    assert grid_of(named) == BarGrid(124.0, 4)  # the BPM the prompt named, as the tempo check heard it asked
    assert grid_of(_entry({"seconds": 2.0})) is None


def _ruler_point(window: MainWindow, seconds: float) -> QPoint:
    wave = window.preview.wave
    area, ruler = wave._rects()
    assert ruler is not None and wave.peaks is not None
    return QPoint(int(area.left() + area.width() * seconds / wave.peaks.seconds), int(ruler.center().y()))


def _done(window: MainWindow, edit: str | None) -> HistoryEntry | None:
    entries = window.controller.history.entries
    return next((e for e in entries if e.path and e.job.spec.request.edit == edit), None)


def test_replace_and_extend_from_the_waveform(
    make_window: Callable[..., MainWindow], qtbot: Any, tmp_path: Path
) -> None:
    window = make_window()
    c, view, bar = window.controller, window.form_view, window.preview.edit_bar
    view.by_seconds.click()
    assert not view.loop.isEnabled()
    view.by_bars.click()
    assert view.loop.isEnabled()
    qtbot.keyClicks(view.prompt, "dusty pads")
    view.bpm.setValue(240.0)
    view.bars.setValue(2)
    view.steps.setValue(2)
    view.loop.click()
    assert c.form.values.loop and c.form.request_values()["loop"] is True
    view.generate.click()
    qtbot.waitUntil(lambda: _done(window, None) is not None, timeout=WAIT_MS)
    source = _done(window, None)
    assert source is not None and source.job.spec.request.loop and "loop" in source.details()
    qtbot.waitUntil(lambda: c.selected == source and window.preview.wave.peaks is not None, timeout=WAIT_MS)

    # The render has a tempo: a ruler of its 2 bars; a drag along it selects the bars it passes over.
    wave = window.preview.wave
    assert c.edits.grid == BarGrid(240.0, 4) and c.edits.bars == 2 and wave.bar_seconds == 1.0
    assert "2 bars at 240 BPM" in bar.hint.text() and not bar.replace.isEnabled()
    qtbot.mousePress(wave, Qt.MouseButton.LeftButton, pos=_ruler_point(window, 0.3))
    qtbot.mouseMove(wave, _ruler_point(window, 1.6))
    qtbot.mouseRelease(wave, Qt.MouseButton.LeftButton, pos=_ruler_point(window, 1.6))
    assert c.edits.selection == (1, 2) and wave.selection == (1, 2)
    assert bar.replace.text() == "Replace bars 1\u20132" and bar.replace.isEnabled()
    assert (bar.from_bar.value(), bar.to_bar.value()) == (1, 2)
    wave.select_seconds(1.5, 1.5)  # the widget's selection API: a click in bar 2
    assert c.edits.selection == (2, 2) and bar.replace.text() == "Replace bar 2"
    bar.replace.click()
    assert c.edits.submitted[-1] == {
        "edit": "replace",
        "source_path": source.path,
        "from_bar": 2,
        "to_bar": 2,
        "prompt": "dusty pads",
        "steps": 2,
        "cfg": c.form.values.cfg,
        "bpm": 240.0,
        "beats_per_bar": 4,
    }
    qtbot.waitUntil(lambda: _done(window, "replace") is not None, timeout=WAIT_MS)
    replaced = _done(window, "replace")
    assert replaced is not None and replaced.job.source == "gui"
    req = replaced.job.spec.request
    assert (req.edit_source, req.from_bar, req.to_bar) == (source.path, 2, 2)
    recipe = json.loads(Path(replaced.path).with_suffix(".json").read_text())
    assert recipe["parent"]["file"] == source.path and sf.info(replaced.path).frames == 2 * BAR
    assert f"{Path(source.path).name} with bar 2 replaced" in replaced.details()
    qtbot.waitUntil(lambda: c.selected == replaced and c.edits.path == replaced.path, timeout=WAIT_MS)
    assert c.edits.selection is None  # a new file: nothing selected on it yet

    # Extend… asks for a bar count (the fake dialog answers 1), here from the waveform's menu.
    asked: list[int] = []
    c.dialogs.ask_bars = lambda title, label, default, lo, hi: asked.append(default) or 1
    menu = bar.menu()
    extend = next(a for a in menu.actions() if a.text() == "Extend…")
    extend.trigger()
    assert asked == [4]  # the default bar count
    sent = c.edits.submitted[-1]
    assert (sent["edit"], sent["source_path"], sent["bars"]) == ("extend", replaced.path, 1)
    qtbot.waitUntil(lambda: _done(window, "extend") is not None, timeout=WAIT_MS)
    extended = _done(window, "extend")
    assert extended is not None and sf.info(extended.path).frames == 3 * BAR
    recipe = json.loads(Path(extended.path).with_suffix(".json").read_text())
    assert recipe["parent"]["file"] == replaced.path and recipe["prompt"] == "dusty pads"
    assert {e.path for e in c.history.entries if e.path} == {source.path, replaced.path, extended.path}

    # The queue refuses a source that is gone: one line under the actions, no traceback.
    qtbot.waitUntil(lambda: c.selected == extended and c.is_idle(), timeout=WAIT_MS)
    c.edits.select_bars(1, 1)
    Path(extended.path).unlink()
    bar.replace.click()
    qtbot.waitUntil(lambda: bar.message.text() != "", timeout=WAIT_MS)
    assert bar.message.text().startswith("Replace bar 1: source_path: no such file")
    assert "Traceback" not in bar.message.text() and "\n" not in bar.message.text()


def test_without_a_tempo_the_bars_are_heard(make_window: Callable[..., MainWindow], qtbot: Any, tmp_path: Path) -> None:
    window = make_window()
    c, bar = window.controller, window.preview.edit_bar
    audio = tmp_path / "take.wav"
    sf.write(audio, [[0.1, 0.1]] * 44100, 44100)
    c.select(_entry({"seconds": 1.0}, path=str(audio), seconds=1.0))
    qtbot.waitUntil(lambda: window.preview.wave.peaks is not None, timeout=WAIT_MS)
    assert c.edits.grid is None and window.preview.wave.bar_seconds is None  # no ruler to drag
    assert "bars at the heard tempo" in bar.hint.text()
    bar.to_bar.setValue(3)  # typed instead
    assert c.edits.selection == (1, 3) and bar.replace.text() == "Replace bars 1\u20133"
    values = c.edits.replace_values()
    assert values is not None and "bpm" not in values and (values["from_bar"], values["to_bar"]) == (1, 3)

    # The engine cannot hear a tempo in a steady hum: the job fails, and the app says why.
    bar.replace.click()
    qtbot.waitUntil(lambda: bar.message.text() != "", timeout=WAIT_MS)
    assert bar.message.text().startswith("Replace bars 1\u20133 failed: replace: no steady tempo could be heard")
    assert "Traceback" not in bar.message.text()
    failed = next(e for e in c.history.entries if e.job.state == "failed")
    assert failed.job.spec.request.edit == "replace" and failed.status().startswith("failed: ")
