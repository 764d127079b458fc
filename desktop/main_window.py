"""The main window: the form and the bridge on the left, progress, preview and history on the
right. It only lays out widgets and binds shortcuts; the controller does the work."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QMainWindow, QScrollArea, QSplitter, QVBoxLayout, QWidget

from .backend import Backend
from .bridge_panel import BridgePanel
from .controller import Controller
from .dialogs import Dialogs
from .form_view import FormView
from .history_view import HistoryView
from .player import Player
from .preview import PreviewPanel, ProgressPanel
from .settings import Settings


def build_controller(
    settings: Settings,
    out_dir: str | Path,
    *,
    osc_enabled: bool | None = None,
    osc_port: int | None = None,
    dialogs: Dialogs | None = None,
    player: Player | None = None,
    device: str | None = None,
) -> Controller:
    """The backend and controller with the user's settings; arguments override them for this run."""
    backend = Backend(
        out_dir,
        device=device,
        osc_enabled=settings["osc/enabled"] if osc_enabled is None else osc_enabled,
        osc_port=settings["osc/port"] if osc_port is None else osc_port,
        drop_enabled=settings["drop/enabled"],
        drop_folder=settings["drop/folder"],
        drop_prompt=settings["drop/prompt"],
    )
    return Controller(settings, backend, dialogs=dialogs, player=player)


class MainWindow(QMainWindow):
    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        self.setWindowTitle("Longplay")
        if isinstance(controller.dialogs, Dialogs) and controller.dialogs.parent is None:
            controller.dialogs.parent = self

        self.form_view = FormView(controller)
        self.bridge_panel = BridgePanel(controller)
        self.progress_panel = ProgressPanel(controller)
        self.preview = PreviewPanel(controller)
        self.history_view = HistoryView(controller)

        title = QLabel("Longplay")
        title.setObjectName("appTitle")
        subtitle = QLabel("long-form music, text and audio to audio")
        subtitle.setObjectName("hint")
        left_inner = QWidget()
        left_inner.setObjectName("central")
        left = QVBoxLayout(left_inner)
        left.setContentsMargins(14, 12, 10, 12)
        left.setSpacing(10)
        left.addWidget(title)
        left.addWidget(subtitle)
        left.addWidget(self.form_view)
        left.addStretch(1)
        left.addWidget(self.bridge_panel)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(left_inner)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # As wide as the form needs, plus room for a vertical scroll bar on short screens.
        scroll.setMinimumWidth(left_inner.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())

        right_inner = QWidget()
        right_inner.setObjectName("central")
        right = QVBoxLayout(right_inner)
        right.setContentsMargins(10, 12, 14, 12)
        right.setSpacing(10)
        history_title = QLabel("History")
        history_title.setObjectName("cardTitle")
        self.history_hint = QLabel("drag a render onto a DAW track · right-click for more")
        self.history_hint.setObjectName("hint")
        right.addWidget(self.progress_panel)
        right.addWidget(self.preview, 3)
        right.addWidget(history_title)
        right.addWidget(self.history_hint)
        right.addWidget(self.history_view, 4)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(right_inner)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([scroll.minimumWidth(), 1280 - scroll.minimumWidth()])
        self.setCentralWidget(self.splitter)
        self.resize(1280, 820)

        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, controller.generate)
        # Space is the transport key, as in every DAW; text fields keep their spaces because Qt
        # lets a focused editor override a shortcut for the keys it types.
        QShortcut(QKeySequence(Qt.Key.Key_Space), self, controller.toggle_play)

        controller.backend.state_changed.connect(self._status)
        self._status(controller.backend.state)
        self._restore()

    def _status(self, state: object) -> None:
        b = self.controller.backend
        model = b.model_name or Path(b.state.model).name or "no model"
        self.statusBar().showMessage(f"{model}  ·  outputs in {b.out_dir}")

    def _restore(self) -> None:
        s = self.controller.settings
        if s["window/geometry"]:
            self.restoreGeometry(QByteArray(s["window/geometry"]))
        if s["window/splitter"]:
            self.splitter.restoreState(QByteArray(s["window/splitter"]))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        s = self.controller.settings
        s["window/geometry"] = self.saveGeometry().data()
        s["window/splitter"] = self.splitter.saveState().data()
        self.controller.shutdown()
        super().closeEvent(event)
