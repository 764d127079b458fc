"""Audio-to-audio drops (good files and the messages for bad ones) and the history model."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from bridge.jobs import FileInfo, JobEvent, JobInfo
from bridge.requests import Limits, parse_request
from desktop.backend import Backend
from desktop.controller import Controller
from desktop.dropzone import DropZone
from desktop.history import HistoryModel
from desktop.settings import Settings

from .conftest import FakeDialogs, write_wav


@pytest.fixture
def zone(qtbot: Any, settings: Settings, tmp_path: Path) -> DropZone:
    controller = Controller(settings, Backend(tmp_path / "out"), dialogs=FakeDialogs())
    z = DropZone(controller)
    qtbot.addWidget(z)
    z.show()
    return z


def _drop(zone: DropZone, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    zone.dropEvent(event)


def test_dropping_an_audio_file_sets_the_init_audio_and_shows_it(zone: DropZone, qtbot: Any, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "beatbox.wav", seconds=1.0)
    _drop(zone, wav)
    form = zone.controller.form
    qtbot.waitUntil(lambda: form.values.init_audio == str(wav.resolve()), timeout=30_000)
    assert form.source_message == "" and zone.hint.text() == "beatbox.wav" and zone.strength.isEnabled()
    assert zone.wave.peaks is not None and zone.wave.peaks.seconds == pytest.approx(1.0)
    assert form.request_values()["source_path"] == str(wav.resolve())
    zone.clear.click()
    assert form.values.init_audio == "" and not zone.strength.isEnabled()


def test_the_file_picker_does_the_same(zone: DropZone, qtbot: Any, tmp_path: Path) -> None:
    zone.controller.dialogs.audio = str(write_wav(tmp_path / "picked.wav"))
    zone.browse.click()
    qtbot.waitUntil(lambda: zone.controller.form.values.init_audio.endswith("picked.wav"), timeout=30_000)


def _wav_header_only(path: Path) -> Path:
    fmt = struct.pack("<HHIIHH", 1, 2, 44100, 44100 * 4, 4, 16)
    path.write_bytes(
        b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 0)
    )
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "notes.txt is not an audio file"),
        (lambda d: _wav_header_only(d / "empty.wav"), "empty.wav contains no audio samples"),
        (
            lambda d: (d / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk") and d / "broken.wav",
            "broken.wav is not a readable audio file",
        ),
        (lambda d: (d / "folder.wav").mkdir() or d / "folder.wav", "folder.wav is a folder, not an audio file"),
    ],
)
def test_wrong_files_get_a_clear_message(make: Any, message: str, zone: DropZone, qtbot: Any, tmp_path: Path) -> None:
    _drop(zone, make(tmp_path))
    qtbot.waitUntil(lambda: not zone.controller.form.source_message.startswith("Reading"), timeout=30_000)
    assert message in zone.message.text() and zone.message.isVisible()
    assert zone.controller.form.values.init_audio == ""


# --- the history model, fed with the queue's own event types ----------------------------------


def _job(state: str, files: tuple[FileInfo, ...] = (), **kw: Any) -> JobInfo:
    spec = parse_request({"prompt": "pads", "seconds": 1.0, "variations": 2, "seed": 5}, limits=Limits(), out_dir=".")
    return JobInfo(id="j1", source="osc", state=state, spec=spec, created=time.time(), files=files, **kw)


def test_history_follows_a_job_from_accepted_to_its_files(qapp: Any, tmp_path: Path) -> None:
    model = HistoryModel()
    model.model_name = "tiny"
    model.apply(JobEvent("accepted", _job("queued")))
    assert model.rowCount() == 1 and model.entries[0].status() == "queued"
    model.apply(JobEvent("progress", _job("running", stage="sampling", fraction=0.5)))
    assert model.rowCount() == 1 and model.entries[0].status() == "sampling 50%"
    files = (FileInfo(1, str(tmp_path / "a.wav"), 1.0, 5), FileInfo(2, str(tmp_path / "b.wav"), 1.0, 6))
    model.apply(JobEvent("done", _job("done", files)))
    assert [e.seed for e in model.entries] == [5, 6] and all(e.model == "tiny" for e in model.entries)
    assert model.entries[1].details().startswith("seed 6 · 1.0 s · v2/2 · tiny")
    mime = model.mimeData([model.index(0, 0), model.index(1, 0)])
    assert [u.toLocalFile() for u in mime.urls()] == [f.path for f in files]
    assert model.flags(model.index(0, 0)) & Qt.ItemFlag.ItemIsDragEnabled
    model.remove(model.entries[0])
    assert model.rowCount() == 1 and model.row_of("j1", 2) == 0
