"""The DAW bridge: where the OSC server listens (and whether it does), the watched folder, the
output folder and the queue length. Changing the port restarts the server; choices persist."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QCheckBox, QFrame, QGridLayout, QLabel, QLineEdit, QSizePolicy, QSpinBox, QWidget

from .backend import READY, BridgeState
from .widgets import tool_button

if TYPE_CHECKING:
    from .controller import Controller


class BridgePanel(QFrame):
    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.backend = controller.backend
        self.settings = controller.settings
        self.setObjectName("card")

        self.title = QLabel("DAW bridge")
        self.title.setObjectName("cardTitle")
        self.osc_enabled = QCheckBox("OSC")
        self.osc_enabled.setToolTip("Let DAW scripts and controllers send /longplay/render requests")
        self.osc_port = QSpinBox()
        self.osc_port.setRange(0, 65535)
        self.osc_port.setSpecialValueText("any")  # port 0: the system picks a free one
        self.osc_port.setKeyboardTracking(False)
        self.osc_state = QLabel()
        self.osc_state.setObjectName("oscState")
        self.drop_enabled = QCheckBox("Drop folder")
        self.drop_enabled.setToolTip("Watch DIR/inbox for request JSON and audio files; results land in DIR/outbox")
        self.drop_folder = QLabel()
        self.drop_folder.setObjectName("hint")
        self.drop_choose = tool_button("Choose…")
        self.drop_prompt = QLineEdit()
        self.drop_prompt.setPlaceholderText("Prompt for audio files dropped there")
        self.out_label = QLabel("Output")
        self.out_folder = QLabel()
        self.out_folder.setObjectName("hint")
        for label in (self.drop_folder, self.out_folder, self.osc_state):  # long paths must not widen the form
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.queue_state = QLabel()
        self.queue_state.setObjectName("hint")

        grid = QGridLayout(self)
        grid.setContentsMargins(12, 10, 12, 10)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(6)
        grid.addWidget(self.title, 0, 0, 1, 2)
        grid.addWidget(self.queue_state, 0, 2, 1, 2)
        grid.addWidget(self.osc_enabled, 1, 0)
        grid.addWidget(self.osc_port, 1, 1)
        grid.addWidget(self.osc_state, 1, 2, 1, 2)
        grid.addWidget(self.drop_enabled, 2, 0)
        grid.addWidget(self.drop_folder, 2, 1, 1, 2)
        grid.addWidget(self.drop_choose, 2, 3)
        grid.addWidget(self.drop_prompt, 3, 1, 1, 3)
        grid.addWidget(self.out_label, 4, 0)
        grid.addWidget(self.out_folder, 4, 1, 1, 3)
        grid.setColumnStretch(2, 1)

        self.osc_enabled.toggled.connect(self._osc_changed)
        self.osc_port.valueChanged.connect(self._osc_changed)
        self.drop_enabled.toggled.connect(self._drop_changed)
        self.drop_choose.clicked.connect(self._choose_drop)
        self.drop_prompt.editingFinished.connect(self._drop_changed)
        self.backend.state_changed.connect(self.show_state)
        self.show_state(self.backend.state)
        self.drop_prompt.setText(self.backend.drop_prompt)

    def show_state(self, s: BridgeState) -> None:
        with QSignalBlocker(self.osc_enabled), QSignalBlocker(self.osc_port), QSignalBlocker(self.drop_enabled):
            self.osc_enabled.setChecked(s.osc_enabled)
            self.osc_port.setValue(s.osc_port)
            self.drop_enabled.setChecked(s.drop_enabled)
        if s.osc_address:
            text, kind = f"● listening on {s.osc_address}", "ok"
        elif not s.osc_enabled:
            text, kind = "○ off", "off"
        elif s.model_state != READY:
            text, kind = "○ waiting for a model", "off"
        else:
            text, kind = f"⚠ {s.osc_message}" if s.osc_message else "○ starting…", "warn"
        self.osc_state.setText(text)
        self.osc_state.setToolTip(text)
        self.osc_state.setProperty("kind", kind)
        self.osc_state.style().unpolish(self.osc_state)
        self.osc_state.style().polish(self.osc_state)
        folder = s.drop_folder or "no folder chosen"
        self.drop_folder.setText(f"⚠ {s.drop_message}" if s.drop_message else folder)
        self.drop_folder.setToolTip(s.drop_folder)
        self.out_folder.setText(str(self.backend.out_dir))
        self.out_folder.setToolTip(str(self.backend.out_dir))
        waiting = s.waiting
        if s.worker_message:  # the worker died (e.g. a full disk): say so where the queue is shown
            self.queue_state.setText(f"⚠ {s.worker_message} — restart Longplay")
        else:
            self.queue_state.setText(
                f"{waiting} job{'s' if waiting != 1 else ''} waiting" if waiting else "queue empty"
            )

    def _osc_changed(self, *_: object) -> None:
        enabled, port = self.osc_enabled.isChecked(), self.osc_port.value()
        self.settings["osc/enabled"] = enabled
        self.settings["osc/port"] = port
        self.backend.set_osc(enabled, port)

    def _drop_changed(self, *_: object) -> None:
        folder = self.backend.state.drop_folder
        enabled = self.drop_enabled.isChecked()
        if enabled and not folder:
            folder = self.controller.dialogs.pick_folder("Choose the drop folder")
            if not folder:
                with QSignalBlocker(self.drop_enabled):
                    self.drop_enabled.setChecked(False)
                return
        self.settings["drop/enabled"] = enabled
        self.settings["drop/folder"] = folder
        self.settings["drop/prompt"] = self.drop_prompt.text()
        self.backend.set_drop(enabled, folder, self.drop_prompt.text())

    def _choose_drop(self) -> None:
        folder = self.controller.dialogs.pick_folder("Choose the drop folder", self.backend.state.drop_folder)
        if folder:
            self.settings["drop/folder"] = folder
            self.settings["drop/enabled"] = True
            self.backend.set_drop(True, folder, self.drop_prompt.text())
