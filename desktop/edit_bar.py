"""The edit actions under the selected render's waveform: the bars selected (drag the ruler, or
type them), *Replace bars A–B* and *Extend…*, also on the waveform's context menu. A thin skin
over ``EditModel`` (``controller.edits``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, QSignalBlocker, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QSpinBox, QVBoxLayout, QWidget

from .edit_actions import MAX_BARS, bars_label
from .waveform import WaveformView
from .widgets import tool_button

if TYPE_CHECKING:
    from .controller import Controller


def _bar_spin(tip: str) -> QSpinBox:
    s = QSpinBox()
    s.setRange(1, MAX_BARS)
    s.setKeyboardTracking(False)
    s.setToolTip(tip)
    return s


class EditBar(QWidget):
    def __init__(self, controller: Controller, wave: WaveformView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.edits = controller.edits
        self.wave = wave
        self.from_bar = _bar_spin("First bar to replace (bar 1 starts at the file's first sample)")
        self.to_bar = _bar_spin("Last bar to replace")
        self.replace = tool_button("Replace bars…")
        self.replace.setObjectName("replace")
        self.extend = tool_button("Extend…")
        self.extend.setObjectName("extend")
        self.hint = QLabel("")
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)
        self.message = QLabel("")
        self.message.setObjectName("error")
        self.message.setWordWrap(True)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for w in (QLabel("Bars"), self.from_bar, QLabel("\u2013"), self.to_bar, self.replace, self.extend):
            row.addWidget(w)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(row)
        layout.addWidget(self.hint)
        layout.addWidget(self.message)

        edits = self.edits
        wave.range_dragged.connect(edits.select_seconds)
        wave.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        wave.customContextMenuRequested.connect(self._context_menu)
        self.from_bar.valueChanged.connect(lambda v: edits.select_bars(int(v), max(int(v), self.to_bar.value())))
        self.to_bar.valueChanged.connect(lambda v: edits.select_bars(min(int(v), self.from_bar.value()), int(v)))
        self.replace.clicked.connect(lambda: edits.replace())
        self.extend.clicked.connect(lambda: edits.extend())
        edits.changed.connect(self.sync)
        controller.backend.state_changed.connect(lambda _s: self.sync())
        controller.form.changed.connect(self.sync)  # the tooltips name the prompt an edit takes
        self.sync()

    def sync(self) -> None:
        e = self.edits
        has_file = bool(e.path)
        ready = has_file and self.controller.backend.ready
        self.wave.set_bars(e.grid.bar_seconds if e.grid is not None and has_file else None)
        self.wave.set_selection(e.selection)
        top = e.bars if e.grid is not None else MAX_BARS
        with QSignalBlocker(self.from_bar), QSignalBlocker(self.to_bar):
            for spin in (self.from_bar, self.to_bar):
                spin.setMaximum(max(1, top))
                spin.setEnabled(has_file and top >= 1)
            a, b = e.selection or (self.from_bar.value(), self.to_bar.value())
            self.from_bar.setValue(a)
            self.to_bar.setValue(b)
        self.replace.setText(bars_label(e.selection))
        self.replace.setEnabled(ready and e.selection is not None)
        self.replace.setToolTip(
            f"Regenerate these bars as a new file, {e.prompt_note()}; the rest stays the render, sample for sample"
            if e.selection is not None
            else "Select bars first: drag the bar ruler above the waveform, or type them here"
        )
        self.extend.setEnabled(ready)
        self.extend.setToolTip(f"Continue this render by a number of bars as a new file, {e.prompt_note()}")
        self.hint.setText(e.hint())
        self.hint.setVisible(bool(e.hint()))
        self.message.setText(e.message)
        self.message.setVisible(bool(e.message))

    def menu(self) -> QMenu:
        """The waveform's context menu: the same actions as the buttons."""
        menu = QMenu(self)
        replace = menu.addAction(bars_label(self.edits.selection), lambda: self.edits.replace())
        replace.setEnabled(self.replace.isEnabled())
        extend = menu.addAction("Extend…", lambda: self.edits.extend())
        extend.setEnabled(self.extend.isEnabled())
        clear = menu.addAction("Clear the selection", self.edits.clear_selection)
        clear.setEnabled(self.edits.selection is not None)
        return menu

    def _context_menu(self, pos: QPoint) -> None:
        if self.edits.path:
            self.menu().exec(self.wave.mapToGlobal(pos))
