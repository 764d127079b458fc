"""Waveform previews: peaks computed once per file off the GUI thread (``PeakCache``) and drawn
per pixel from min/max (``WaveformView``), with a playhead, click to seek and drag to the DAW, and
for a render with a tempo a bar ruler to select bars on (extend / replace, ``edit_actions``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QDrag, QLinearGradient, QMouseEvent, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QApplication, QSizePolicy, QWidget

from bridge.media import AudioPeaks, read_peaks

from .dnd import mime_for_files
from .progress import format_time
from .workers import run_task

COLUMNS = 4096  # peaks kept per file: enough for a 4K-wide view

BACKGROUND = QColor(22, 24, 30)
LANE = QColor(44, 48, 58)
WAVE_TOP = QColor(120, 200, 255)
WAVE_BOTTOM = QColor(60, 120, 220)
PLAYED = QColor(255, 170, 60)
TEXT = QColor(150, 156, 170)
RULER = QColor(30, 33, 41)
SELECTED = QColor(255, 159, 58, 56)
SELECTED_EDGE = QColor(255, 159, 58)
RULER_H = 14  # px: the bar numbers above the waveform


def bin_peaks(peaks: np.ndarray, width: int) -> np.ndarray:
    """``[C, cols, 2]`` peaks -> ``[C, width, 2]``: each pixel gets the min of mins and max of maxes
    of the columns under it (when zoomed past the stored columns, each column spans several pixels)."""
    c, cols, _ = peaks.shape
    width = max(1, int(width))
    if cols <= width:
        idx = np.minimum((np.arange(width) * cols) // width, cols - 1)
        return peaks[:, idx, :]
    starts = (np.arange(width) * cols) // width  # strictly increasing since cols > width
    out = np.empty((c, width, 2), dtype=peaks.dtype)
    out[:, :, 0] = np.minimum.reduceat(peaks[:, :, 0], starts, axis=1)
    out[:, :, 1] = np.maximum.reduceat(peaks[:, :, 1], starts, axis=1)
    return out


class PeakCache(QObject):
    """Peaks per file path, computed once on the worker pool; ``ready(path)`` when they arrive.
    Renders are never rewritten in place (outputs are never overwritten), so a path is a key."""

    ready = Signal(str)
    failed = Signal(str, str)  # path, reason

    def __init__(self, capacity: int = 256, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.capacity = capacity
        self._peaks: OrderedDict[str, AudioPeaks] = OrderedDict()
        self._errors: dict[str, str] = {}
        self._pending: set[str] = set()
        self.computed = 0  # files decoded so far (tests check that a cached file is not read twice)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def error(self, path: str) -> str:
        return self._errors.get(path, "")

    def get(self, path: str) -> AudioPeaks | None:
        """The peaks if known; otherwise None, and they are computed in the background."""
        if path in self._peaks:
            self._peaks.move_to_end(path)
            return self._peaks[path]
        if path not in self._pending and path not in self._errors:
            self._pending.add(path)
            run_task(lambda: read_peaks(path, COLUMNS), lambda r, e: self._done(path, r, e))
        return None

    def put(self, peaks: AudioPeaks) -> None:
        self._peaks[peaks.path] = peaks
        self._peaks.move_to_end(peaks.path)
        while len(self._peaks) > self.capacity:
            self._peaks.popitem(last=False)

    def forget(self, path: str) -> None:
        self._peaks.pop(path, None)
        self._errors.pop(path, None)

    def _done(self, path: str, result: AudioPeaks | None, error: BaseException | None) -> None:
        self._pending.discard(path)
        if result is None:
            self._errors[path] = str(error)
            self.failed.emit(path, str(error))
            return
        self.computed += 1
        self.put(result)
        self.ready.emit(path)


Envelope = list[tuple[QPolygonF, QRectF]]  # per channel: the min/max outline and its lane


def display_gain(peaks: np.ndarray) -> float:
    """Waveforms are drawn normalised to the file's peak, as sample browsers do, so a quiet render
    still shows its shape; the view prints the true peak level beside it."""
    peak = float(np.abs(peaks).max()) if peaks.size else 0.0
    return 1.0 if peak < 1e-6 else min(0.97 / peak, 1000.0)


def peak_dbfs(peaks: np.ndarray) -> float:
    peak = float(np.abs(peaks).max()) if peaks.size else 0.0
    return 20 * float(np.log10(peak)) if peak > 0 else float("-inf")


def envelopes(rect: QRectF, peaks: np.ndarray, normalize: bool = True) -> Envelope:
    """Each channel in its own lane of ``rect``: the outline of its min/max, one point per pixel."""
    width = max(1, int(rect.width()))
    gain = display_gain(peaks) if normalize else 1.0
    binned = np.clip(bin_peaks(peaks, width) * gain, -1.0, 1.0)  # [C, W, 2]
    channels = binned.shape[0]
    lane_h = rect.height() / channels
    xs = rect.left() + np.arange(width) + 0.5
    out: Envelope = []
    for ch in range(channels):
        lane = QRectF(rect.left(), rect.top() + lane_h * ch, rect.width(), lane_h)
        mid, half = lane.center().y(), lane_h * 0.46
        hi = mid - binned[ch, :, 1] * half
        lo = np.maximum(mid - binned[ch, :, 0] * half, hi + 1.0)  # >= 1 px: silence still shows
        points = [QPointF(x, y) for x, y in zip(xs, hi)] + [QPointF(x, y) for x, y in zip(xs[::-1], lo[::-1])]
        out.append((QPolygonF(points), lane))
    return out


def paint_envelopes(painter: QPainter, shapes: Envelope, played_x: float | None = None, dim: bool = False) -> None:
    alpha = 120 if dim else 255
    for polygon, lane in shapes:
        painter.setPen(QPen(LANE, 1))
        mid = lane.center().y()
        painter.drawLine(QPointF(lane.left(), mid), QPointF(lane.right(), mid))
        grad = QLinearGradient(0, lane.top(), 0, lane.bottom())
        for at, color in ((0.0, WAVE_TOP), (0.5, WAVE_BOTTOM), (1.0, WAVE_TOP)):
            grad.setColorAt(at, QColor(color.red(), color.green(), color.blue(), alpha))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(grad)
        painter.drawPolygon(polygon)
        if played_x is not None and played_x > lane.left():
            painter.save()
            painter.setClipRect(QRectF(lane.left(), lane.top(), played_x - lane.left(), lane.height()))
            painter.setBrush(PLAYED)
            painter.drawPolygon(polygon)
            painter.restore()


def paint_bars(
    painter: QPainter,
    area: QRectF,
    ruler: QRectF,
    seconds: float,
    bar_seconds: float,
    selection: tuple[int, int] | None,
) -> None:
    """The bar ruler (bar 1 at 0 s, numbered as often as the numbers fit) and the selected bars."""
    px_bar = area.width() * bar_seconds / seconds
    painter.fillRect(ruler, RULER)
    if selection is not None:
        x0 = area.left() + (selection[0] - 1) * px_bar
        x1 = min(area.right(), area.left() + selection[1] * px_bar)
        band = QRectF(x0, ruler.top(), max(1.0, x1 - x0), area.bottom() - ruler.top())
        painter.fillRect(band, SELECTED)
        painter.setPen(QPen(SELECTED_EDGE, 1))
        painter.drawLine(QPointF(x0, band.top()), QPointF(x0, band.bottom()))
        painter.drawLine(QPointF(x1, band.top()), QPointF(x1, band.bottom()))
    every = 1
    while px_bar * every < 26:
        every *= 2
    count = int(seconds / bar_seconds + 1e-6)
    for k in range(count + 1):
        labelled = k % every == 0
        if not labelled and px_bar < 4:
            continue  # ticks closer than 4 px are noise
        x = area.left() + k * px_bar
        painter.setPen(QPen(TEXT if labelled else LANE, 1))
        top = ruler.top() if labelled else ruler.top() + ruler.height() * 0.6
        painter.drawLine(QPointF(x, top), QPointF(x, ruler.bottom()))
        if labelled and k < count:
            label = QRectF(x + 3, ruler.top(), px_bar * every - 4, ruler.height())
            painter.drawText(label, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, str(k + 1))


class WaveformView(QWidget):
    """A file's waveform. Click to seek (``seek_requested(seconds)``); drag it out to a DAW track
    (the drag carries the file's URL); ``set_position`` moves the playhead. With a bar grid
    (``set_bars``), a ruler of bar numbers sits above it: a drag along the ruler, or a Shift+drag
    over the waveform, selects a range (``range_dragged(from_s, to_s)``; whoever owns the
    selection snaps it and shows it with ``set_selection``)."""

    seek_requested = Signal(float)
    range_dragged = Signal(float, float)

    def __init__(self, cache: PeakCache, parent: QWidget | None = None, *, placeholder: str = "") -> None:
        super().__init__(parent)
        self.cache = cache
        self.path = ""
        self.peaks: AudioPeaks | None = None
        self.position: float | None = None
        self.placeholder = placeholder or "Select a render to see its waveform"
        self.draggable = True
        self._press: QPointF | None = None
        self.bar_seconds: float | None = None  # the bar grid (None: no ruler, nothing to select)
        self.selection: tuple[int, int] | None = None  # bars, 1-based and inclusive
        self._select_from: float | None = None  # seconds where a range drag started
        self._shapes: tuple[tuple[str, float, float], Envelope] | None = None
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)
        cache.ready.connect(self._on_ready)
        cache.failed.connect(self._on_ready)

    # ------------------------------------------------------------------ state
    def set_path(self, path: str) -> None:
        if path == self.path and self.peaks is not None:
            return
        self.path = path
        self.position = None
        self.peaks = self.cache.get(path) if path else None
        self.setCursor(Qt.CursorShape.PointingHandCursor if path else Qt.CursorShape.ArrowCursor)
        self.update()

    def set_position(self, seconds: float | None) -> None:
        if seconds != self.position:
            self.position = seconds
            self.update()

    def set_bars(self, bar_seconds: float | None) -> None:
        """Show a ruler of bars ``bar_seconds`` long (bar 1 at 0 s), or none."""
        if bar_seconds != self.bar_seconds:
            self.bar_seconds = bar_seconds
            self._select_from = None
            self.update()

    def set_selection(self, selection: tuple[int, int] | None) -> None:
        if selection != self.selection:
            self.selection = selection
            self.update()

    def select_seconds(self, t0: float, t1: float) -> None:
        """What a drag along the ruler from ``t0`` to ``t1`` seconds does (for keyboardless callers)."""
        if self.bar_seconds is not None and self.peaks is not None:
            self.range_dragged.emit(float(t0), float(t1))

    def message(self) -> str:
        if not self.path:
            return self.placeholder
        if self.peaks is None:
            return self.cache.error(self.path) or "Reading the waveform…"
        return ""

    def _on_ready(self, path: str, *_: Any) -> None:
        if path == self.path:
            self.peaks = self.cache.get(path)
            self.update()

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        r = QRectF(self.rect())
        painter.fillRect(r, BACKGROUND)
        area, ruler = self._rects()
        text = self.message()
        if text or self.peaks is None:
            painter.setPen(TEXT)
            painter.drawText(r, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)
            return
        seconds = self.peaks.seconds
        played_x = None
        if self.position is not None and seconds > 0:
            played_x = area.left() + area.width() * min(1.0, self.position / seconds)
        key = (self.path, area.width(), area.height())
        if self._shapes is None or self._shapes[0] != key:
            self._shapes = (key, envelopes(area, self.peaks.peaks))  # once per file and size
        paint_envelopes(painter, self._shapes[1], played_x)
        if ruler is not None and self.bar_seconds is not None and seconds > 0:
            paint_bars(painter, area, ruler, seconds, self.bar_seconds, self.selection)
        painter.setPen(TEXT)
        bottom = QRectF(area.left(), area.bottom() + 2, area.width(), 14)
        now = format_time(self.position) if self.position is not None else "0:00"
        painter.drawText(bottom, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, now)
        channels = (
            "stereo"
            if self.peaks.channels == 2
            else "mono"
            if self.peaks.channels == 1
            else f"{self.peaks.channels} ch"
        )
        info = (
            f"{format_time(seconds)} · {self.peaks.sample_rate / 1000:g} kHz · {channels} · "
            f"peak {peak_dbfs(self.peaks.peaks):.1f} dBFS"
        )
        painter.drawText(bottom, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, info)
        if played_x is not None:
            painter.setPen(QPen(QColor(255, 255, 255), 1))
            painter.drawLine(QPointF(played_x, area.top()), QPointF(played_x, area.bottom()))

    def _rects(self) -> tuple[QRectF, QRectF | None]:
        """The waveform's area, and the bar ruler's above it when there is a grid."""
        r = QRectF(self.rect())
        if self.bar_seconds is None or self.peaks is None:
            return r.adjusted(6, 6, -6, -18), None
        ruler = QRectF(r.left() + 6, r.top() + 4, r.width() - 12, RULER_H)
        return r.adjusted(6, 6 + RULER_H + 2, -6, -18), ruler

    def in_ruler(self, y: float) -> bool:
        ruler = self._rects()[1]
        return ruler is not None and y <= ruler.bottom() + 2

    def seconds_at(self, x: float) -> float:
        if self.peaks is None:
            return 0.0
        area = self._rects()[0]
        frac = (x - area.left()) / max(1.0, area.width())
        return float(np.clip(frac, 0.0, 1.0) * self.peaks.seconds)

    # ------------------------------------------------------------------ mouse
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if (
            event.button() == Qt.MouseButton.LeftButton
            and self.peaks is not None
            and self.bar_seconds is not None
            and (shift or self.in_ruler(event.position().y()))
        ):
            self._select_from = self.seconds_at(event.position().x())
            self.select_seconds(self._select_from, self._select_from)
        elif event.button() == Qt.MouseButton.LeftButton and self.peaks is not None:
            self._press = event.position()
            self.seek_requested.emit(self.seconds_at(event.position().x()))
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._select_from is not None:
            self.select_seconds(self._select_from, self.seconds_at(event.position().x()))
        elif (
            self._press is not None
            and self.draggable
            and self.path
            and ((event.position() - self._press).manhattanLength() >= QApplication.startDragDistance())
        ):
            self._press = None
            self.start_drag()
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._press = self._select_from = None
        super().mouseReleaseEvent(event)

    def start_drag(self) -> QDrag:
        """Drag the file out (to a DAW track, a file manager); returns once the drop happened."""
        drag = QDrag(self)
        drag.setMimeData(mime_for_files([self.path]))
        drag.setPixmap(self.grab().scaledToWidth(min(240, max(1, self.width()))))
        drag.exec(Qt.DropAction.CopyAction)
        return drag
