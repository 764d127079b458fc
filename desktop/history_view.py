"""The history list: a mini waveform, the prompt and the recipe per render; drag a row onto a
DAW track; right-click to recall, reveal or delete."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPersistentModelIndex, QPoint, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from .history import EntryRole, HistoryEntry
from .waveform import BACKGROUND, PeakCache, envelopes, paint_envelopes

if TYPE_CHECKING:
    from .controller import Controller

ROW_H = 54
THUMB_W = 132
STATE_COLORS = {
    "queued": QColor(150, 156, 170),
    "running": QColor(255, 170, 60),
    "failed": QColor(240, 90, 90),
    "cancelled": QColor(150, 156, 170),
}


class HistoryDelegate(QStyledItemDelegate):
    def __init__(self, peaks: PeakCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.peaks = peaks

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        return QSize(300, ROW_H)

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        entry: HistoryEntry | None = index.data(EntryRole)
        if entry is None:
            return
        painter.save()
        r = option.rect
        pal = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(r, pal.color(QPalette.ColorRole.Highlight))
        painter.setPen(QColor(40, 43, 52))
        painter.drawLine(r.bottomLeft(), r.bottomRight())

        thumb = QRectF(r.left() + 8, r.top() + 7, THUMB_W, r.height() - 14)
        painter.fillRect(thumb, BACKGROUND)
        status = entry.status()
        if entry.path:
            peaks = self.peaks.get(entry.path)
            if peaks is not None:
                paint_envelopes(painter, envelopes(thumb.adjusted(2, 2, -2, -2), peaks.peaks))
        else:
            color = STATE_COLORS.get(entry.job.state, QColor(150, 156, 170))
            if entry.job.state == "running":
                bar = QRectF(thumb.left(), thumb.bottom() - 4, thumb.width() * entry.job.fraction, 4)
                painter.fillRect(bar, color)
            painter.setPen(color)
            painter.drawText(thumb, Qt.AlignmentFlag.AlignCenter, entry.job.state)

        text_left = int(thumb.right()) + 12
        text = QRect(text_left, r.top() + 8, r.right() - text_left - 8, 20)
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        fm = painter.fontMetrics()
        painter.drawText(
            text,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            fm.elidedText(entry.prompt, Qt.TextElideMode.ElideRight, text.width()),
        )
        font.setBold(False)
        painter.setFont(font)
        detail = entry.details() if not status else f"{status} · {entry.details()}"
        painter.setPen(STATE_COLORS.get(entry.job.state, QColor(150, 156, 170)) if status else QColor(150, 156, 170))
        line2 = QRect(text_left, r.top() + 28, text.width(), 18)
        painter.drawText(
            line2,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            painter.fontMetrics().elidedText(detail, Qt.TextElideMode.ElideRight, line2.width()),
        )
        painter.restore()


class HistoryView(QListView):
    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("history")
        self.setModel(controller.history)
        self.setItemDelegate(HistoryDelegate(controller.peaks, self))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setUniformItemSizes(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.selectionModel().currentChanged.connect(self._current_changed)
        self.doubleClicked.connect(lambda _i: controller.toggle_play())
        controller.selection_changed.connect(self._follow)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(event)
        if self.model().rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(QColor(110, 116, 130))
            painter.drawText(
                self.viewport().rect(),
                Qt.AlignmentFlag.AlignCenter,
                "Renders appear here, from this window and from your DAW",
            )

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.controller.select(current.data(EntryRole) if current.isValid() else None)

    def _follow(self, entry: HistoryEntry | None) -> None:
        """The controller selected a row (a render of ours finished): show it."""
        if entry is None:
            return
        row = self.controller.history.row_of(entry.job.id, entry.key[1])
        if row >= 0 and self.currentIndex().row() != row:
            index = self.model().index(row, 0)
            self.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.scrollTo(index)

    def _menu(self, pos: QPoint) -> None:
        index = self.indexAt(pos)
        entry: HistoryEntry | None = index.data(EntryRole) if index.isValid() else None
        if entry is None:
            return
        c = self.controller
        menu = QMenu(self)
        menu.addAction("Play / stop\tSpace", c.toggle_play).setEnabled(bool(entry.path))
        menu.addAction("Recall settings", lambda: c.recall(entry))
        menu.addAction("Reveal in folder", lambda: c.reveal(entry)).setEnabled(bool(entry.path))
        menu.addSeparator()
        if entry.job.state in ("queued", "running"):
            menu.addAction("Cancel", lambda: c.backend.cancel(entry.job.id))
        else:
            menu.addAction("Delete…", lambda: c.delete(entry))
        menu.exec(self.viewport().mapToGlobal(pos))
