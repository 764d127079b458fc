"""Extend and replace from the waveform: the selected render's bar grid, the bars selected on it,
and the edit requests they make.

The requests are the key/values every door takes (``bridge/edits.py``: OSC ``/longplay/replace``,
a drop-folder JSON with ``"edit"``), submitted through the controller's one request path, so the
new file joins the history as any render does. Bar 1 starts at the file's first sample, as the
engine counts them (``engine/edit.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from bridge.jobs import JobEvent, JobInfo
from bridge.requests import LIMITS

from .history import HistoryEntry

if TYPE_CHECKING:
    from .controller import Controller

DEFAULT_EXTEND_BARS = 4
MAX_BARS = int(LIMITS["bars"].hi)
# A file shorter than a whole number of bars by less than one sample at 48 kHz still holds them:
# the engine accepts a range ending up to one sample past the file's end.
_LENGTH_SLACK_S = 2e-5


@dataclass(frozen=True)
class BarGrid:
    """A render's bars at its tempo; bar 1 starts at 0 s."""

    bpm: float
    beats_per_bar: int = 4

    @property
    def bar_seconds(self) -> float:
        return self.beats_per_bar * 60.0 / self.bpm

    def whole_bars(self, seconds: float) -> int:
        """Bars that end inside ``seconds`` of audio (a partial last bar cannot be replaced)."""
        return max(0, int(math.floor((seconds + _LENGTH_SLACK_S) / self.bar_seconds)))

    def snap(self, t0: float, t1: float, bars: int) -> tuple[int, int] | None:
        """The bars a drag from ``t0`` to ``t1`` seconds passes over, 1-based and inclusive, among
        the first ``bars``; a click selects the bar under it. None when there is no whole bar."""
        if bars < 1:
            return None
        lo, hi = sorted((t0, t1))
        first = min(max(int(math.floor(lo / self.bar_seconds)), 0), bars - 1)
        last = max(min(int(math.ceil(hi / self.bar_seconds)), bars), first + 1)
        return first + 1, last

    def describe(self) -> str:
        return f"{self.bpm:g} BPM, {self.beats_per_bar}/4"


def grid_of(entry: HistoryEntry | None) -> BarGrid | None:
    """The tempo a finished render was made on: its recipe's ``bpm``, else the BPM its prompt named
    (its tempo check's asked BPM); None without one: an edit then hears the tempo in the file."""
    if entry is None or entry.file is None:
        return None
    req = entry.job.spec.request
    bpm = req.bpm if req.bpm is not None else entry.file.asked_bpm
    return BarGrid(float(bpm), int(req.beats_per_bar)) if bpm else None


def bars_label(selection: tuple[int, int] | None) -> str:
    """``Replace bars 2–3`` / ``Replace bar 4`` / ``Replace bars…`` (nothing selected)."""
    if selection is None:
        return "Replace bars…"
    a, b = selection
    return f"Replace bar {a}" if a == b else f"Replace bars {a}\u2013{b}"


class EditModel(QObject):
    """What the edit actions apply to: the selected render, its bar grid, the bars selected on it,
    and the last message (why an edit could not go, or why it failed). ``changed`` on any change."""

    changed = Signal()

    def __init__(self, controller: Controller) -> None:
        super().__init__(controller)
        self.controller = controller
        self.entry: HistoryEntry | None = None
        self.grid: BarGrid | None = None
        self.bars = 0  # whole bars in the file at its grid (0: no grid)
        self.selection: tuple[int, int] | None = None  # (from_bar, to_bar), 1-based, inclusive
        self.extend_bars = DEFAULT_EXTEND_BARS
        self.message = ""
        self.submitted: list[dict[str, Any]] = []  # the requests sent, newest last
        self._jobs: dict[str, str] = {}  # job id -> what it does ("Replace bars 2–3"), until it ends
        controller.selection_changed.connect(self.set_entry)
        controller.backend.job_event.connect(self._on_job_event)

    # ------------------------------------------------------------------ state
    @property
    def path(self) -> str:
        return self.entry.path if self.entry is not None else ""

    def set_entry(self, entry: HistoryEntry | None) -> None:
        """A render was selected: its grid; the selection starts empty."""
        self.entry = entry
        self.grid = grid_of(entry)
        seconds = entry.seconds if entry is not None else None
        self.bars = self.grid.whole_bars(seconds) if self.grid is not None and seconds else 0
        self.selection = None
        self.message = ""
        self.changed.emit()

    def select_bars(self, from_bar: int, to_bar: int) -> None:
        """Select bars ``from_bar``-``to_bar`` (either order), kept within the file when its grid
        is known; without one any bars may be asked for and the engine says if they do not fit."""
        lo, hi = sorted((int(from_bar), int(to_bar)))
        top = self.bars if self.grid is not None else MAX_BARS
        lo, hi = max(1, min(lo, top)), max(1, min(hi, top))
        self._set_selection((lo, hi) if self.path and top >= 1 else None)

    def select_seconds(self, t0: float, t1: float) -> None:
        """A drag over the waveform from ``t0`` to ``t1`` seconds, snapped to the bars it touches."""
        if self.grid is not None and self.path:
            self._set_selection(self.grid.snap(t0, t1, self.bars))

    def clear_selection(self) -> None:
        self._set_selection(None)

    def _set_selection(self, selection: tuple[int, int] | None) -> None:
        if selection != self.selection:
            self.selection = selection
            self.changed.emit()

    def set_message(self, text: str) -> None:
        if text != self.message:
            self.message = text
            self.changed.emit()

    def hint(self) -> str:
        """The line under the edit actions: the grid the bars are counted on, or why none."""
        if not self.path:
            return ""
        if self.grid is None:
            return "No tempo in this render's recipe: bars at the heard tempo (the engine finds it)"
        return (
            f"{self.bars} bars at {self.grid.describe()} · drag the bar ruler (or Shift+drag the waveform) "
            "to select bars"
        )

    def prompt_note(self) -> str:
        """Which prompt an edit is conditioned on."""
        prompt = self.controller.form.values.prompt.strip()
        if prompt:
            return f'with the form\'s prompt, "{prompt if len(prompt) <= 60 else prompt[:57] + "..."}"'
        return "with the render's own prompt (the form's is empty)"

    # ------------------------------------------------------------------ requests
    def _common(self) -> dict[str, Any]:
        """The keys every edit of this render carries: its file, the form's prompt (else the
        file's, from its recipe), steps and CFG, and the grid the user saw the bars on."""
        form = self.controller.form.values
        values: dict[str, Any] = {"source_path": self.path, "steps": form.steps, "cfg": form.cfg}
        if form.prompt.strip():
            values["prompt"] = form.prompt
            if form.negative.strip():
                values["negative"] = form.negative
        if form.seed_locked:
            values["seed"] = form.seed
        if self.grid is not None:
            values.update(bpm=self.grid.bpm, beats_per_bar=self.grid.beats_per_bar)
        return values

    def replace_values(self) -> dict[str, Any] | None:
        if not self.path or self.selection is None:
            return None
        a, b = self.selection
        return {"edit": "replace", **self._common(), "from_bar": a, "to_bar": b}

    def extend_values(self, bars: int) -> dict[str, Any] | None:
        return {"edit": "extend", **self._common(), "bars": int(bars)} if self.path else None

    def replace(self) -> bool:
        """Regenerate the selected bars as a new file; -> False (and a message) if it cannot go."""
        values = self.replace_values()
        if values is None:
            self.set_message("Select the bars to replace first" if self.path else "Select a finished render first")
            return False
        return self._submit(values, bars_label(self.selection))

    def extend(self, bars: int | None = None) -> bool:
        """Continue the render by ``bars`` bars (asked for when None) as a new file."""
        if not self.path:
            self.set_message("Select a finished render first")
            return False
        if bars is None:
            bars = self.controller.dialogs.ask_bars("Extend", "Bars to add at the end:", self.extend_bars, 1, MAX_BARS)
            if bars is None:
                return False  # cancelled
        self.extend_bars = int(bars)
        values = self.extend_values(self.extend_bars)
        assert values is not None  # a path was checked above
        return self._submit(values, f"Extend by {self.extend_bars} bars")

    def _submit(self, values: dict[str, Any], what: str) -> bool:
        self.submitted.append(values)
        self.set_message("")

        def done(info: JobInfo | None, error: str) -> None:
            if info is None:
                self.set_message(f"{what}: {error}")
            else:
                self._jobs[info.id] = what

        return self.controller.submit_request(values, done)

    def _on_job_event(self, event: JobEvent) -> None:
        what = self._jobs.get(event.job.id)
        if what is None or not event.job.is_final:
            return
        del self._jobs[event.job.id]
        if event.job.state == "failed":
            self.set_message(f"{what} failed: {event.job.error or 'unknown error'}")
