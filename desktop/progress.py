"""The progress line: which job is rendering (from any door), its stage, step and time left."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from bridge.jobs import JobEvent

STAGES = {
    "queued": "Queued",
    "starting": "Loading",
    "loading": "Loading",
    "conditioning": "Conditioning",
    "sampling": "Sampling",
    "decoding": "Decoding",
    "checking": "Checking tempo",
    "writing": "Writing",
    "done": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


@dataclass(frozen=True)
class ProgressState:
    job_id: str = ""
    title: str = ""  # the prompt, or what the app is doing ("Loading tiny-test…")
    source: str = ""  # gui | osc | drop | …
    stage: str = ""
    fraction: float = 0.0
    step: int = 0
    steps: int = 0
    seconds_left: float | None = None
    active: bool = False  # a render is running (Cancel applies)
    busy: bool = False  # anything is in progress (the bar animates)

    def text(self) -> str:
        """``Sampling · step 12/50 · 0:08 left``"""
        parts = [STAGES.get(self.stage, self.stage.capitalize())] if self.stage else []
        if self.stage == "sampling" and self.steps:
            parts.append(f"step {self.step}/{self.steps}")
        if self.seconds_left is not None and self.active:
            parts.append(f"{format_time(self.seconds_left)} left")
        return " · ".join(parts)


def format_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressModel(QObject):
    """Follows the running job. ``changed`` fires only on a real change."""

    changed = Signal(object)  # ProgressState

    def __init__(self, clock: Callable[[], float] = time.time, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = ProgressState()
        self._clock = clock

    def _set(self, state: ProgressState) -> None:
        if state != self.state:
            self.state = state
            self.changed.emit(state)

    def show_activity(self, title: str) -> None:
        """Something other than a render keeps the app busy (loading the engine or a model)."""
        if not self.state.active:
            self._set(ProgressState(title=title, busy=True))

    def clear_activity(self) -> None:
        if not self.state.active:
            self._set(ProgressState())

    def on_event(self, event: JobEvent) -> None:
        job = event.job
        if event.kind in ("progress", "file") and job.state == "running":
            left = None
            if job.started is not None and job.fraction > 0.02:
                elapsed = max(0.0, self._clock() - job.started)
                left = elapsed * (1 - job.fraction) / job.fraction
            self._set(
                ProgressState(
                    job.id,
                    job.spec.request.prompt or job.spec.name,
                    job.source,
                    job.stage,
                    job.fraction,
                    job.step,
                    job.steps,
                    _round(left),
                    True,
                    True,
                )
            )
        elif job.is_final and job.id == self.state.job_id:
            self._set(
                replace(
                    ProgressState(),
                    job_id=job.id,
                    title=job.spec.request.prompt,
                    stage=job.state,
                    fraction=1.0 if job.state == "done" else 0.0,
                )
            )


def _round(seconds: Any) -> float | None:
    # Whole seconds: a label that changes every step by a few milliseconds is noise.
    return None if seconds is None else float(round(seconds))
