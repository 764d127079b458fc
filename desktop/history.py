"""The history of renders, from the queue's journal (so it survives restarts) and its live events.

One row per finished file (a job with 4 variations gives 4 rows), one row per job still queued or
running, failed or cancelled. Rows drag out as file URLs, straight onto a DAW track.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QMimeData, QModelIndex, QPersistentModelIndex, Qt

from bridge.jobs import FileInfo, JobEvent, JobInfo

from .dnd import mime_for_files

EntryRole = Qt.ItemDataRole.UserRole + 1
PathRole = Qt.ItemDataRole.UserRole + 2
Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class HistoryEntry:
    job: JobInfo
    file: FileInfo | None = None
    model: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return self.job.id, self.file.variation if self.file else 0

    @property
    def path(self) -> str:
        return self.file.path if self.file else ""

    @property
    def prompt(self) -> str:
        req = self.job.spec.request
        if req.prompt.strip():
            return req.prompt
        return f"restyle of {Path(req.init_audio).name}" if req.init_audio else self.job.spec.name

    @property
    def seed(self) -> int:
        return self.file.seed if self.file else self.job.spec.request.seed

    @property
    def seconds(self) -> float | None:
        if self.file:
            return self.file.seconds
        req = self.job.spec.request
        if req.edit:
            return None  # its length is the source's and the bars it adds, known once it is written
        if req.bars is not None and req.bpm:
            return req.bars * req.beats_per_bar * 60 / req.bpm
        return req.seconds

    def details(self) -> str:
        """``seed 123 · 20.9 s · 92 bpm 8 bars · tiny-test · 14:02 · OSC``"""
        req = self.job.spec.request
        parts = [f"seed {self.seed}"]
        if self.seconds is not None:
            parts.append(f"{self.seconds:.1f} s")
        if req.edit == "extend":
            parts.append(f"{Path(req.edit_source or '').name} extended by {req.bars} bars")
        elif req.edit == "replace":
            span = f"bar {req.from_bar}" if req.from_bar == req.to_bar else f"bars {req.from_bar}\u2013{req.to_bar}"
            parts.append(f"{Path(req.edit_source or '').name} with {span} replaced")
        elif req.bars is not None and req.bpm is not None:
            parts.append(f"{req.bpm:g} bpm · {req.bars} bars" + (" · loop" if req.loop else ""))
        if self.file and self.job.spec.request.variations > 1:
            parts.append(f"v{self.file.variation}/{req.variations}")
        if req.init_audio:
            parts.append(f"restyle {req.init_strength:.2f}")
        if self.model:
            parts.append(self.model)
        parts.append(time.strftime("%b %d %H:%M", time.localtime(self.job.created)))
        if self.job.source != "gui":
            parts.append(self.job.source.upper())
        return " · ".join(parts)

    def tempo(self) -> str:
        """The file's tempo check: ``124.0 BPM measured (asked 124), downbeat +0.02 s, confidence
        0.83: on tempo``; "" for a render without a tempo (or journaled before the check existed)."""
        return self.file.tempo_text() if self.file else ""

    def status(self) -> str:
        """What the job is doing or why it ended; "" for a finished file."""
        job = self.job
        if job.state == "done" and self.file:
            return ""
        if job.state == "running":
            return f"{job.stage} {job.fraction:.0%}"
        if job.state == "queued":
            return "queued"
        return f"{job.state}: {job.error}" if job.error and job.state == "failed" else job.state


def entries_for(job: JobInfo, model: str = "", exists: Iterable[str] | None = None) -> list[HistoryEntry]:
    """A job's rows; with ``exists`` (the paths found on disk), files deleted meanwhile are left out."""
    if job.files:
        present = set(exists) if exists is not None else None
        return [HistoryEntry(job, f, model) for f in job.files if present is None or f.path in present]
    if job.state == "done":
        return []
    return [HistoryEntry(job, None, model)]


def read_history(jobs: Sequence[JobInfo], default_model: str = "") -> list[HistoryEntry]:
    """Rows for journaled jobs, checking the files and reading the model name from their sidecars.
    Touches the disk: run it off the GUI thread."""
    rows: list[HistoryEntry] = []
    for job in jobs:
        present = [f.path for f in job.files if Path(f.path).is_file()]
        model = str(job.spec.extra.get("model", "")) or (_sidecar_model(present[0]) if present else "")
        rows += entries_for(job, model or default_model, present)
    return rows


def _sidecar_model(path: str) -> str:
    try:
        recipe = json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(recipe.get("model", "")) if isinstance(recipe, dict) else ""


class HistoryModel(QAbstractListModel):
    """Newest first. ``apply(event)`` keeps it live; ``load(entries)`` replaces it."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.entries: list[HistoryEntry] = []
        self.model_name = ""  # the model jobs finishing now were rendered with

    # ------------------------------------------------------------------ Qt's model API
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.entries)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.entries):
            return None
        e = self.entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return e.prompt
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = f"{e.prompt}\n{e.details()}" + (f"\n{e.tempo()}" if e.tempo() else "")
            return tip + (f"\n{e.path}" if e.path else f"\n{e.status()}")
        if role == EntryRole:
            return e
        if role == PathRole:
            return e.path
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid() and self.entries[index.row()].path:
            return base | Qt.ItemFlag.ItemIsDragEnabled
        return base

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return ["text/uri-list", "text/plain"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:  # noqa: N802
        """The finished files under ``indexes`` as file URLs: what a DAW track accepts."""
        rows = sorted({i.row() for i in indexes if i.isValid()})
        return mime_for_files(self.entries[r].path for r in rows if self.entries[r].path)

    def supportedDragActions(self) -> Qt.DropAction:  # noqa: N802
        return Qt.DropAction.CopyAction

    # ------------------------------------------------------------------ updates
    def load(self, entries: list[HistoryEntry]) -> None:
        self.beginResetModel()
        self.entries = list(entries)
        self.endResetModel()

    def entry(self, row: int) -> HistoryEntry | None:
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def row_of(self, job_id: str, variation: int | None = None) -> int:
        for row, e in enumerate(self.entries):
            if e.job.id == job_id and (variation is None or e.key[1] == variation):
                return row
        return -1

    def rows_of_path(self, path: str) -> list[int]:
        return [r for r, e in enumerate(self.entries) if e.path == path]

    def apply(self, event: JobEvent) -> None:
        """A job changed: replace its rows in place (a new job goes on top)."""
        job = event.job
        if event.kind == "file":
            return  # a job's files become rows together, when it is done
        rows = [r for r, e in enumerate(self.entries) if e.job.id == job.id]
        if not rows and event.kind not in ("accepted", "progress"):
            return  # e.g. a job deleted from the history while it was finishing
        model = (
            next((self.entries[r].model for r in rows), "") or str(job.spec.extra.get("model", "")) or self.model_name
        )
        new = entries_for(job, model)
        first = rows[0] if rows else 0
        if len(rows) == len(new) and rows:
            for r, e in zip(rows, new):
                self.entries[r] = e
            self.dataChanged.emit(self.index(rows[0]), self.index(rows[-1]))
            return
        if rows:
            self.beginRemoveRows(QModelIndex(), rows[0], rows[-1])
            del self.entries[rows[0] : rows[-1] + 1]
            self.endRemoveRows()
        if new:
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self.entries[first:first] = new
            self.endInsertRows()

    def remove(self, entry: HistoryEntry) -> None:
        for r, e in enumerate(self.entries):
            if e.key == entry.key:
                self.beginRemoveRows(QModelIndex(), r, r)
                del self.entries[r]
                self.endRemoveRows()
                return

    def refresh_path(self, path: str) -> None:
        """Peaks for ``path`` arrived: repaint its rows."""
        for r in self.rows_of_path(path):
            self.dataChanged.emit(self.index(r), self.index(r))

    def job_entries(self, job_id: str) -> list[HistoryEntry]:
        return [e for e in self.entries if e.job.id == job_id]
