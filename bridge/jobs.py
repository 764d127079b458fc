"""What the job queue tells its listeners: job snapshots, events, and error codes for failures."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from engine import AudioInputError, EngineError, RenderCancelled, RequestError

from .errors import BridgeError
from .journal import FINAL_STATES
from .requests import JobSpec


@dataclass(frozen=True)
class FileInfo:
    variation: int  # counts from 1, as in the file name's `_v<n>`
    path: str  # absolute
    seconds: float
    seed: int


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
class JobEvent:
    kind: str  # accepted | progress | file | done | failed | cancelled
    job: JobInfo
    file: FileInfo | None = None


Listener = Callable[[JobEvent], None]


def classify(err: BaseException) -> tuple[int, str]:
    """An exception from a render -> (OSC error code, one-line reason)."""
    msg = " ".join(str(err).split())[:300] or type(err).__name__
    if isinstance(err, RenderCancelled):
        return 499, "cancelled"
    if isinstance(err, RequestError):
        return (413 if "longer than" in msg else 400), msg
    if isinstance(err, AudioInputError):
        return (404 if "not found" in msg else 400), msg
    # torch's OutOfMemoryError is a RuntimeError; the bridge cannot import torch to name it.
    if isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and "out of memory" in msg.lower()):
        return 503, f"out of memory: {msg}"
    if isinstance(err, BridgeError):
        return err.code, err.message
    if isinstance(err, EngineError):
        return 500, msg
    if isinstance(err, OSError):
        return 500, f"could not write the output: {msg}"
    return 500, f"internal error ({type(err).__name__}): {msg}"
