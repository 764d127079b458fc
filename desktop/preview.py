"""The right-hand panels: the running job's progress with Cancel, and the selected render's
waveform with its transport (play / stop / loop), actions and edits (replace bars, extend)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .edit_bar import EditBar
from .history import HistoryEntry
from .progress import ProgressState, format_time
from .waveform import WaveformView
from .widgets import tool_button

if TYPE_CHECKING:
    from .controller import Controller


class ProgressPanel(QFrame):
    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.title = QLabel("Ready")
        self.title.setObjectName("cardTitle")
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.stage = QLabel("")
        self.stage.setObjectName("hint")
        self.stage.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(8)
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.stage)
        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.addLayout(top)
        layout.addLayout(row)
        self.backend = controller.backend
        self.cancel.clicked.connect(controller.cancel)
        controller.progress.changed.connect(self.show_state)
        controller.backend.state_changed.connect(lambda _s: self.show_state(controller.progress.state))
        self.show_state(controller.progress.state)

    def show_state(self, s: ProgressState) -> None:
        if s.active:
            source = "" if s.source in ("gui", "") else f"  ·  from {s.source.upper()}"
            self.title.setText(f"{s.title}{source}")
        elif s.busy:
            self.title.setText(s.title)
        elif s.stage:
            self.title.setText(f"{s.stage.capitalize()}: {s.title}")
        elif self.backend.ready:
            self.title.setText("Ready")
        else:
            self.title.setText(self.backend.state.model_message or "No model loaded")
        self.stage.setText(s.text() if s.active else "")
        if s.busy and not s.active:
            self.bar.setRange(0, 0)  # a model is loading: no fraction to show
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(s.fraction * 1000) if s.active or s.stage == "done" else 0)
        self.cancel.setEnabled(s.active)


class PreviewPanel(QFrame):
    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("card")
        self.title = QLabel("No render selected")
        self.title.setObjectName("cardTitle")
        self.details = QLabel("")
        self.details.setObjectName("hint")
        for label in (self.title, self.details):  # long prompts and names must not widen the window
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.wave = WaveformView(controller.peaks)
        self.wave.setMinimumHeight(150)
        self.play = QPushButton("Play")
        self.play.setObjectName("play")
        self.play.setToolTip("Play / stop (Space)")
        self.loop = tool_button("Loop")
        self.loop.setCheckable(True)
        self.time = QLabel("")
        self.time.setObjectName("hint")
        self.recall = tool_button("Recall")
        self.recall.setToolTip("Put this render's settings back into the form")
        self.reveal = tool_button("Reveal")
        self.reveal.setToolTip("Show the file in its folder")
        self.delete = tool_button("Delete")
        self.message = QLabel("")
        self.message.setObjectName("hint")
        self.message.setWordWrap(True)
        self.edit_bar = EditBar(controller, self.wave)
        transport = QHBoxLayout()
        for w in (self.play, self.loop, self.time):
            transport.addWidget(w)
        transport.addStretch(1)
        for w in (self.recall, self.reveal, self.delete):
            transport.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.addWidget(self.title)
        layout.addWidget(self.details)
        layout.addWidget(self.wave, 1)
        layout.addLayout(transport)
        layout.addWidget(self.message)
        layout.addWidget(self.edit_bar)

        player = controller.player
        self.play.clicked.connect(controller.toggle_play)
        self.loop.toggled.connect(controller.set_loop)
        self.recall.clicked.connect(lambda: controller.recall())
        self.reveal.clicked.connect(lambda: controller.reveal())
        self.delete.clicked.connect(lambda: controller.delete())
        self.wave.seek_requested.connect(self._seek)
        player.state_changed.connect(self._player_state)
        player.position_changed.connect(self._position)
        controller.selection_changed.connect(self.show_entry)
        self.show_entry(None)
        self._player_state()

    def show_entry(self, entry: HistoryEntry | None) -> None:
        has_file = entry is not None and bool(entry.path)
        self.title.setText(entry.prompt if entry is not None else "No render selected")
        if entry is None:
            self.details.setText("Generate something, or pick a render from the history")
        else:
            tempo = entry.tempo() if has_file else ""
            self.details.setText((entry.details() + (f"\n{tempo}" if tempo else "")) if has_file else entry.status())
        self.details.setToolTip(entry.path if entry is not None else "")
        self.wave.set_path(entry.path if entry is not None else "")
        for w in (self.play, self.reveal):
            w.setEnabled(has_file)
        self.recall.setEnabled(entry is not None)
        self.delete.setEnabled(entry is not None and entry.job.is_final)
        self._player_state()

    def _seek(self, seconds: float) -> None:
        player, entry = self.controller.player, self.controller.selected
        if entry is not None and entry.path == player.path:
            player.seek(seconds)
        self.wave.set_position(seconds)

    def _position(self, seconds: float) -> None:
        player = self.controller.player
        if player.path == self.wave.path:
            self.wave.set_position(seconds if player.playing or seconds > 0 else None)
            self.time.setText(f"{format_time(seconds)} / {format_time(player.duration)}")

    def _player_state(self) -> None:
        player = self.controller.player
        mine = bool(self.wave.path) and player.path == self.wave.path
        self.play.setText("Stop" if mine and player.playing else "Play")
        self.loop.blockSignals(True)
        self.loop.setChecked(player.loop)
        self.loop.blockSignals(False)
        self.message.setText(player.message)
        self.message.setVisible(bool(player.message))
        if not mine:
            self.time.setText("")
