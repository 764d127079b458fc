"""What the job queue tells its listeners: job snapshots, events, and error codes for failures."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass

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
