"""Modal dialogs and desktop hand-offs behind one small service, so tests never block on them
(STYLE.md §11): tests pass a fake with the same methods."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

AUDIO_FILTER = "Audio files (*.wav *.wave *.flac *.aif *.aiff *.ogg);;All files (*)"


class Dialogs:
    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent

    def open_audio(self, start: str = "") -> str:
        """-> the chosen audio file, or "" if cancelled."""
        path, _ = QFileDialog.getOpenFileName(self.parent, "Choose the audio to restyle", start, AUDIO_FILTER)
        return path

    def pick_folder(self, title: str, start: str = "") -> str:
        return QFileDialog.getExistingDirectory(self.parent, title, start)

    def confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self.parent,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def ask_bars(self, title: str, label: str, default: int, lo: int, hi: int) -> int | None:
        """A bar count from a spin box; None if cancelled."""
        value, ok = QInputDialog.getInt(self.parent, title, label, default, lo, hi, 1)
        return int(value) if ok else None

    def reveal(self, path: str) -> None:
        """Show the file in the system's file manager (selected where the platform can)."""
        p = Path(path)
        if sys.platform == "darwin":
            subprocess.Popen(["open", "-R", str(p)])  # noqa: S603,S607 - fixed command, user's own file
        elif sys.platform == "win32":
            subprocess.Popen(["explorer", "/select,", str(p)])  # noqa: S603,S607
        else:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(p.parent if p.is_file() else p)))
