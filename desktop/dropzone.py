"""Audio-to-audio: drop a file here (from a file manager or a DAW), or browse for one; its
waveform shows and a strength slider sets how far the render may move away from it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from .dnd import local_files
from .waveform import WaveformView
from .widgets import tool_button

if TYPE_CHECKING:
    from .controller import Controller


class DropZone(QFrame):
    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.form = controller.form
        self.setObjectName("dropzone")
        self.setAcceptDrops(True)
        self.setProperty("hover", False)

        self.title = QLabel("Audio to audio")
        self.title.setObjectName("sectionTitle")
        self.hint = QLabel("Drop an audio file here to restyle it")
        self.hint.setObjectName("hint")
        self.browse = tool_button("Browse…")
        self.clear = tool_button("Clear")
        self.wave = WaveformView(controller.peaks, placeholder="Drop a WAV, FLAC, AIFF or Ogg file")
        self.wave.setMinimumHeight(56)
        self.wave.setMaximumHeight(70)
        self.wave.draggable = False
        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(0, 100)
        self.strength.setToolTip("0 keeps the dropped audio, 100 ignores it")
        self.strength_label = QLabel()
        self.strength_label.setMinimumWidth(34)
        self.message = QLabel()
        self.message.setObjectName("error")
        self.message.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addWidget(self.hint, 1)
        top.addWidget(self.browse)
        top.addWidget(self.clear)
        strength_row = QHBoxLayout()
        strength_row.addWidget(QLabel("Strength"))
        strength_row.addWidget(self.strength, 1)
        strength_row.addWidget(self.strength_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addWidget(self.wave)
        layout.addLayout(strength_row)
        layout.addWidget(self.message)

        self.browse.clicked.connect(controller.choose_init_audio)
        self.clear.clicked.connect(controller.clear_init_audio)
        self.strength.valueChanged.connect(lambda v: self.form.update(init_strength=v / 100))
        self.form.changed.connect(self.sync)
        self.form.source_message_changed.connect(self._message)
        self.sync()
        self._message(self.form.source_message)

    def sync(self) -> None:
        v = self.form.values
        with QSignalBlocker(self.strength):
            self.strength.setValue(round(v.init_strength * 100))
        self.strength_label.setText(f"{v.init_strength:.2f}")
        has = bool(v.init_audio)
        self.wave.set_path(v.init_audio)
        self.hint.setText(Path(v.init_audio).name if has else "Drop an audio file here to restyle it")
        self.clear.setEnabled(has)
        self.strength.setEnabled(has)

    def _message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))
        self.message.setObjectName("hint" if text.startswith("Reading") else "error")
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)

    # ------------------------------------------------------------------ drops
    def _hover(self, on: bool) -> None:
        self.setProperty("hover", on)
        self.style().unpolish(self)
        self.style().polish(self)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        # Any local file is accepted here; checking it is the controller's job, so a wrong file
        # gets a message instead of a silent "no entry" cursor.
        if local_files(event.mimeData()):
            event.acceptProposedAction()
            self._hover(True)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802
        if local_files(event.mimeData()):
            event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:  # noqa: N802
        self._hover(False)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        self._hover(False)
        files = local_files(event.mimeData())
        if not files:
            return
        event.acceptProposedAction()
        if len(files) > 1:
            self.form.set_source_message(f"Drop one file at a time; using {Path(files[0]).name}")
        self.controller.set_init_audio(files[0])
