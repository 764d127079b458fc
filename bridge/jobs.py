"""What the job queue tells its listeners: job snapshots, events, and error codes for failures."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine import AudioInputError, AudioNotFound, EngineError, RenderCancelled, RequestError, RequestTooLong

from .errors import BridgeError, DiskFull
from .journal import FINAL_STATES
from .requests import JobSpec


@dataclass(frozen=True)
class FileInfo:
    variation: int  # counts from 1, as in the file name's `_v<n>`
    path: str  # absolute
    seconds: float
    seed: int
    # The tempo check of a render with a tempo (the recipe's `tempo_check`, engine/tempo_check.py);
    # None for renders without one and for jobs journaled before it existed.
    asked_bpm: float | None = None
    measured_bpm: float | None = None  # None: too short to hear
    downbeat_s: float | None = None  # the first downbeat heard, seconds from the file's start
    confidence: float | None = None  # 0-1
    verdict: str = ""  # "on tempo", "off by +1.2 %", "half time", "no clear beat" ...
    snapped_from: float | None = None  # the BPM heard before `snap` stretched it onto the grid

    @classmethod
    def of(cls, variation: int, path: str, seconds: float, seed: int, recipe: Mapping[str, Any]) -> FileInfo:
        """A written file, with its recipe's tempo check if it has one."""
        check = recipe.get("tempo_check")
        if not isinstance(check, Mapping):
            return cls(variation, path, seconds, seed)
        snapped = check.get("snapped")
        return cls(
            variation,
            path,
            seconds,
            seed,
            check.get("asked_bpm"),
            check.get("bpm"),
            check.get("first_downbeat_s"),
            check.get("confidence"),
            str(check.get("verdict", "")),
            snapped.get("from_bpm") if isinstance(snapped, Mapping) else None,
        )

    def tempo(self) -> dict[str, Any] | None:
        """The tempo check as the drop folder's status file carries it; None without one."""
        if self.asked_bpm is None:
            return None
        return {
            "asked_bpm": self.asked_bpm,
            "bpm": self.measured_bpm,
            "first_downbeat_s": self.downbeat_s,
            "confidence": self.confidence,
            "verdict": self.verdict,
            **({"snapped_from": self.snapped_from} if self.snapped_from is not None else {}),
        }

    def tempo_args(self) -> tuple[float, float, float]:
        """(measured bpm, first downbeat s, confidence) for an OSC reply; 0.0 for what was not measured."""
        return float(self.measured_bpm or 0.0), float(self.downbeat_s or 0.0), float(self.confidence or 0.0)

    def tempo_text(self) -> str:
        """``124.0 BPM measured (asked 124), downbeat +0.02 s, confidence 0.83: on tempo``; "" without a check."""
        return tempo_text(self.tempo())


def tempo_text(check: Mapping[str, Any] | None) -> str:
    """A tempo check (a recipe's ``tempo_check`` or ``FileInfo.tempo()``) in one line; "" for None."""
    if not check or check.get("asked_bpm") is None:
        return ""
    asked = f"asked {float(check['asked_bpm']):g}"
    if check.get("bpm") is None:
        return f"tempo not measured ({asked}): {check.get('verdict', '')}"
    text = f"{float(check['bpm']):.1f} BPM measured ({asked})"
    if check.get("first_downbeat_s") is not None:
        text += f", downbeat {float(check['first_downbeat_s']):+.2f} s"
    text += f", confidence {float(check.get('confidence') or 0.0):.2f}: {check.get('verdict', '')}"
    snapped = check.get("snapped_from")
    if snapped is None and isinstance(check.get("snapped"), Mapping):
        snapped = check["snapped"].get("from_bpm")
    return text + (f" (snapped from {float(snapped):.1f})" if snapped is not None else "")


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of one job. ``position`` is the number of jobs ahead of a queued one (0: next)."""

    id: str
    source: str
    state: str  # queued | running | done | failed | cancelled
    spec: JobSpec
    created: float
    started: float | None = None
    finished: float | None = None
    stage: str = ""  # queued | starting | conditioning | sampling | decoding | writing | <state>
    fraction: float = 0.0
    step: int = 0
    steps: int = 0
    files: tuple[FileInfo, ...] = ()
    error_code: int | None = None
    error: str | None = None
    position: int = -1
    reply_to: str | None = None
    duplicate: bool = False  # submit() found this id already journaled with the same request

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started


@dataclass(frozen=True)
class QueueHealth:
    """Whether the queue's worker runs (``JobQueue.health``), for status replies and the app.

    ``state`` is "starting" (loading the model, or not started), "ready", "failed" (``reason``
    says why; new requests are refused with 503 until a restart, and what is journaled runs
    then) or "stopped" (shut down)."""

    state: str
    reason: str | None = None
    since: float | None = None  # time.time() of the failure

    @property
    def ok(self) -> bool:
        return self.state in ("starting", "ready")


@dataclass(frozen=True)
class JobEvent:
    kind: str  # accepted | progress | file | done | failed | cancelled
    job: JobInfo
    file: FileInfo | None = None


Listener = Callable[[JobEvent], None]


# Engine errors -> OSC codes, the most specific type first. The type decides, never the words of
# the message (a message is for people and may change; "not found" may describe anything).
_ENGINE_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (RequestTooLong, 413),
    (RequestError, 400),
    (AudioNotFound, 404),
    (AudioInputError, 400),
)


def _out_of_memory(err: BaseException) -> bool:
    """MemoryError, or torch's OutOfMemoryError (a RuntimeError), known by its class name because
    the bridge cannot import torch to name it."""
    return isinstance(err, MemoryError) or any(c.__name__ == "OutOfMemoryError" for c in type(err).__mro__)


def classify(err: BaseException) -> tuple[int, str]:
    """An exception from a render -> (OSC error code, one-line reason)."""
    msg = " ".join(str(err).split())[:300] or type(err).__name__
    if isinstance(err, RenderCancelled):
        return 499, "cancelled"
    for cls, code in _ENGINE_CODES:
        if isinstance(err, cls):
            return code, msg
    if _out_of_memory(err):
        return 503, f"out of memory: {msg}"
    if isinstance(err, BridgeError):
        return err.code, err.message
    if isinstance(err, EngineError):
        return 500, msg
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull.code, f"disk full: {err.filename or msg}"
    if isinstance(err, OSError):
        return 500, f"could not write the output: {msg}"
    return 500, f"internal error ({type(err).__name__}): {msg}"
