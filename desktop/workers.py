"""``run_task(fn, on_done)``: work on a thread pool, its result or exception posted back to the GUI
thread (Picard's pattern), so the GUI thread never runs torch or waits on a file or a socket.

    run_task(lambda: read_peaks(path), lambda peaks, error: view.show(peaks, error))

``serial=True`` runs on a one-thread pool: everything that touches the job queue's lifecycle
(load a model, submit, cancel, restart the OSC server) runs there, in the order it was asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, Signal, Slot

log = logging.getLogger("longplay.desktop")

Done = Callable[[Any, BaseException | None], None]


class _Relay(QObject):
    """Lives on the GUI thread; a signal emitted from a pool thread reaches it as a queued call."""

    finished = Signal(object, object, object)  # on_done, result, error

    def __init__(self) -> None:
        super().__init__()
        self.pending = 0
        self.finished.connect(self._deliver)

    @Slot(object, object, object)
    def _deliver(self, on_done: Done | None, result: Any, error: BaseException | None) -> None:
        self.pending -= 1
        if on_done is not None:
            on_done(result, error)
        elif error is not None:
            log.error("background task failed", exc_info=error)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], on_done: Done | None, relay: _Relay) -> None:
        super().__init__()
        self.fn, self.on_done, self.relay = fn, on_done, relay

    def run(self) -> None:
        try:
            result, error = self.fn(), None
        except BaseException as err:  # noqa: BLE001 - handed to on_done on the GUI thread
            result, error = None, err
        self.relay.finished.emit(self.on_done, result, error)


_relay: _Relay | None = None
_pools: dict[bool, QThreadPool] = {}


def _state() -> tuple[_Relay, QThreadPool, QThreadPool]:
    global _relay
    if _relay is None:
        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("run_task needs a QApplication")
        _relay = _Relay()
        _relay.moveToThread(app.thread())
        _pools[False] = QThreadPool()
        _pools[False].setMaxThreadCount(2)  # peaks and file reads; the machine's cores go to renders
        _pools[True] = QThreadPool()
        _pools[True].setMaxThreadCount(1)
    return _relay, _pools[False], _pools[True]


def run_task(fn: Callable[[], Any], on_done: Done | None = None, *, serial: bool = False) -> None:
    """Run ``fn()`` on a pool; then ``on_done(result, None)`` or ``on_done(None, error)`` on the GUI
    thread. Call from the GUI thread."""
    relay, pool, serial_pool = _state()
    relay.pending += 1
    (serial_pool if serial else pool).start(_Task(fn, on_done, relay))


def pending() -> int:
    """Tasks started and not yet delivered (0: nothing in flight)."""
    return _relay.pending if _relay is not None else 0


def wait(timeout_ms: int = 30000) -> bool:
    """Block until both pools are idle (shutdown and tests); results are delivered by the event loop."""
    ok = True
    for pool in _pools.values():
        ok = pool.waitForDone(timeout_ms) and ok
    return ok
