"""``longplay app``: the QApplication, a splash while the engine loads, the main window.

    longplay app [--model DIR|NAME] [--out DIR] [--osc-port N] [--no-osc] [--smoke PNG]

The arguments are declared once, in ``bridge/cli.py`` (the ``app`` command), and parsed here
again because this module is also an entry point of its own (``python -m desktop``,
``longplay-app``). Importing the bridge imports the engine and torch (seconds), so that happens on
a worker thread behind a splash; the model then loads on the queue's thread behind a "Loading"
state. ``--smoke PNG`` waits until the window is idle, saves a screenshot and exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QStandardPaths, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QSplashScreen

from bridge.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, build_parser, validate_app
from bridge.errors import UsageError

from . import theme, workers

log = logging.getLogger("longplay.desktop")
SMOKE_TIMEOUT_S = 300.0
ICON = Path(__file__).resolve().parent / "icons" / "longplay.svg"  # also the desktop entry's icon
SMOKE_SIZE = (1280, 820)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = build_parser().parse_args(["app", *argv])
    validate_app(args)
    return args


def default_out_dir() -> Path:
    music = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MusicLocation)
    return Path(music or Path.home()) / "Longplay"


def _splash() -> QSplashScreen:
    pix = QPixmap(460, 200)
    pix.fill(QColor("#1b1d23"))
    p = QPainter(pix)
    p.setPen(QColor("#f2f3f7"))
    font = QFont()
    font.setPointSize(22)
    font.setBold(True)
    p.setFont(font)
    p.drawText(pix.rect().adjusted(28, 40, 0, 0), Qt.AlignmentFlag.AlignLeft, "Longplay")
    font.setPointSize(10)
    font.setBold(False)
    p.setFont(font)
    p.setPen(QColor(theme.ACCENT))
    p.drawText(pix.rect().adjusted(28, 100, 0, 0), Qt.AlignmentFlag.AlignLeft, "Loading the engine…")
    p.end()
    return QSplashScreen(pix)


class _App:
    """What ``main`` starts: the splash, then the window once the bridge is imported."""

    def __init__(self, app: QApplication, args: argparse.Namespace) -> None:
        self.app, self.args = app, args
        self.window: Any = None
        self.exit_code = EXIT_OK
        self.splash = _splash()
        self._idle_polls = 0
        self._deadline = time.monotonic() + SMOKE_TIMEOUT_S

    def start(self) -> None:
        self.splash.show()
        workers.run_task(lambda: importlib.import_module("desktop.main_window"), self._open)

    def _open(self, module: Any, error: BaseException | None) -> None:
        if module is None:
            print(f"longplay app: error: the engine could not be loaded: {error}", file=sys.stderr)
            self.exit_code = EXIT_FAILED
            self.app.exit(EXIT_FAILED)
            return
        from .settings import Settings

        settings = Settings()
        out = self.args.out or settings["output/folder"] or str(default_out_dir())
        controller = module.build_controller(
            settings,
            out,
            osc_enabled=False if self.args.no_osc else None,
            osc_port=self.args.osc_port,
            device=self.args.device,
        )
        self.window = module.MainWindow(controller)
        if self.args.smoke:
            self.window.resize(*SMOKE_SIZE)
        self.window.show()
        self.splash.finish(self.window)
        controller.start(self.args.model)
        if self.args.smoke:
            timer = QTimer(self.window)
            timer.timeout.connect(self._smoke_poll)
            timer.start(200)

    def _smoke_poll(self) -> None:
        idle = self.window.controller.is_idle()
        self._idle_polls = self._idle_polls + 1 if idle else 0
        timed_out = time.monotonic() > self._deadline
        if self._idle_polls < 3 and not timed_out:  # idle for 0.6 s: every queued repaint has landed
            return
        path = Path(self.args.smoke)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.window.grab().save(str(path), "PNG"):
            print(f"longplay app: error: could not write {path}", file=sys.stderr)
            self.exit_code = EXIT_FAILED
        elif timed_out:
            print(
                f"longplay app: error: the window was still busy after {SMOKE_TIMEOUT_S:g} s "
                f"(screenshot written to {path})",
                file=sys.stderr,
            )
            self.exit_code = EXIT_FAILED
        else:
            print(path)
        self.window.close()
        self.app.exit(self.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``longplay app`` / ``python -m desktop``; returns the exit code."""
    try:
        args = parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as err:
        print(f"longplay app: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK
    logging.basicConfig(level=logging.WARNING, format="longplay: %(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "longplay"])
    assert isinstance(app, QApplication)
    app.setApplicationName("Longplay")
    app.setOrganizationName("Longplay")
    app.setApplicationDisplayName("Longplay")
    app.setDesktopFileName("longplay")  # packaging/install.sh installs longplay.desktop
    app.setWindowIcon(QIcon(str(ICON)))
    theme.apply(app)
    runner = _App(app, args)
    runner.start()
    code = app.exec()
    workers.wait(10000)
    return code or runner.exit_code
