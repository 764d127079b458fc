"""A dark theme: Fusion with a studio-grey palette, one accent colour, and a few named widgets
styled by object name (``generate``, ``card``, ``dropzone``, ``error``, ``hint``).

Spin boxes are left to Fusion and the palette: in Qt 6.10 any style sheet on a spin box loses
its arrows' glyphs, and without buttons its text.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#ff9f3a"

STYLE = f"""
QWidget {{ font-size: 10pt; }}
QMainWindow, QWidget#central {{ background: #1b1d23; }}
QFrame#card, QFrame#dropzone {{ background: #23262e; border: 1px solid #2f333d; border-radius: 8px; }}
QFrame#dropzone[hover="true"] {{ border: 1px dashed {ACCENT}; background: #2a2d36; }}
QFrame#card QLabel, QFrame#dropzone QLabel, QFrame#card QCheckBox {{ background: transparent; border: none; }}
QLabel#cardTitle, QLabel#sectionTitle {{ font-weight: bold; color: #e8eaf0; }}
QLabel#appTitle {{ font-size: 15pt; font-weight: bold; color: #f2f3f7; }}
QLabel#hint {{ color: #8a90a0; }}
QLabel#error {{ color: #ff6b6b; }}
QLabel#modelStatus[warn="true"] {{ color: #ffb45e; }}
QLabel#oscState[kind="ok"] {{ color: #5fd38d; }}
QLabel#oscState[kind="warn"] {{ color: #ffb45e; }}
QLabel#oscState[kind="off"] {{ color: #8a90a0; }}
QPlainTextEdit, QLineEdit, QComboBox {{
    background: #15171c; border: 1px solid #343843; border-radius: 4px; padding: 3px 5px; color: #e8eaf0;
    selection-background-color: {ACCENT}; selection-color: #111; }}
QPlainTextEdit:focus, QLineEdit:focus, QComboBox:focus {{
    border: 1px solid {ACCENT}; }}
QComboBox QAbstractItemView {{ background: #23262e; color: #e8eaf0; selection-background-color: #3a3f4d; }}
QPushButton, QToolButton {{ background: #2e323c; border: 1px solid #3b404c; border-radius: 4px; padding: 5px 12px;
    color: #e8eaf0; }}
QPushButton:hover, QToolButton:hover {{ background: #383d49; }}
QPushButton:disabled, QToolButton:disabled {{ color: #5d6270; background: #262930; }}
QToolButton:checked {{ background: {ACCENT}; color: #15171c; border-color: {ACCENT}; }}
QPushButton#generate {{ background: {ACCENT}; color: #15171c; font-weight: bold; font-size: 11pt; border: none; }}
QPushButton#generate:hover {{ background: #ffb25e; }}
QPushButton#generate:disabled {{ background: #4a4034; color: #8a7f70; }}
QProgressBar {{ background: #15171c; border: none; border-radius: 4px; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 4px; }}
QListView#history {{ background: #1f2128; border: 1px solid #2f333d; border-radius: 8px; }}
QSlider::groove:horizontal {{ height: 4px; background: #343843; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: {ACCENT}; width: 12px; margin: -5px 0; border-radius: 6px; }}
QSlider::sub-page:horizontal {{ background: #8a5a25; border-radius: 2px; }}
QSplitter::handle {{ background: #1b1d23; }}
QStatusBar {{ color: #8a90a0; }}
QToolTip {{ background: #2e323c; color: #e8eaf0; border: 1px solid #3b404c; }}
"""


def apply(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#1b1d23",
        QPalette.ColorRole.WindowText: "#e8eaf0",
        QPalette.ColorRole.Base: "#15171c",
        QPalette.ColorRole.AlternateBase: "#23262e",
        QPalette.ColorRole.Text: "#e8eaf0",
        QPalette.ColorRole.Button: "#2e323c",
        QPalette.ColorRole.ButtonText: "#e8eaf0",
        QPalette.ColorRole.Highlight: "#3a3f4d",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#2e323c",
        QPalette.ColorRole.ToolTipText: "#e8eaf0",
        QPalette.ColorRole.PlaceholderText: "#6b7080",
        QPalette.ColorRole.Link: ACCENT,
    }
    for role, color in colors.items():
        pal.setColor(role, QColor(color))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#5d6270"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#5d6270"))
    app.setPalette(pal)
    app.setStyleSheet(STYLE)
