"""The one job queue every door submits to (GUI, OSC, drop folder, CLI).

    queue = JobQueue("jobs.sqlite3", model="longplay-mini", out_dir="outputs")
    queue.start()                                   # loads the model on the worker thread
    unsubscribe = queue.subscribe(print)            # JobEvents, on the thread that caused them
    info = queue.submit({"prompt": "dusty drums", "bpm": 92, "bars": 8}, req_id="take1", source="osc")

A request is validated at the door and journaled (``Journal``: SQLite WAL, fsynced) before
``submit`` returns, so an acknowledged job survives a crash. One worker thread owns the model and
runs one render at a time; every other thread only submits, cancels and listens. Killed at any
moment, the next ``start()`` re-runs whatever was queued or running; outputs are written
atomically by the engine, so no half-written file ever appears under an output name.

Listeners are called on the worker thread (progress, file, done, failed, cancelled) or on the
submitting thread (accepted, under the queue's lock so it always precedes the job's progress);
they must return quickly. A GUI re-posts events to its own thread (e.g. through a Qt signal).

A failure inside a job fails that job with its reason. A failure of the worker itself (the journal
cannot record a state: a full disk) stops it for good: it is logged, ``health`` says why, and
``submit`` refuses with 503 (``WorkerStopped``) instead of accepting jobs that would never run.
Nothing journaled is lost: the next start runs it.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import (
    ConditionedDiffusionModel,
    Generator,
    Progress,
    RenderCancelled,
    RenderRequest,
    SA3Model,
    load_model,
)

from .errors import BridgeError, DuplicateRequest, QueueFull, UnknownJob, WorkerStopped
from .jobs import FileInfo, JobEvent, JobInfo, Listener, QueueHealth, classify
from .journal import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Journal
from .requests import JobSpec, Limits, check_id, new_id, parse_request, spec_from_request
from .writer import clean_temp_files, plan_paths, write_render

log = logging.getLogger("longplay.bridge")

# Share of the progress bar for the render; writing the files takes the rest.
_RENDER_SHARE = 0.98


@dataclass
class _Live:
    """A queued or running job's in-memory state (progress is not journaled)."""

    row: dict[str, Any]
    spec: JobSpec
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    user_cancelled: bool = False
    stage: str = "queued"
    fraction: float = 0.0
    step: int = 0
    steps: int = 0


class JobQueue:
    """Durable, bounded, idempotent job queue with one render worker (one per device)."""

    def __init__(
        self,
        journal: str | os.PathLike[str] | Journal,
        *,
        model: str | os.PathLike[str] | ConditionedDiffusionModel | SA3Model | None = None,
        device: str | None = None,
        out_dir: str | os.PathLike[str] = "outputs",
        limit: int = 32,
        limits: Limits | None = None,
        max_attempts: int = 3,
        recover: bool = True,
    ) -> None:
        self.journal = journal if isinstance(journal, Journal) else Journal(journal)
        self.out_dir = Path(out_dir).resolve()
        self.limit = limit
        self.max_attempts = max_attempts
        self.model_name = ""
        self.limits = limits or Limits()
        # False: run only what this queue is given (the CLI's one-off queue over a folder whose
        # journal a running app or server may share: their unfinished jobs are theirs to run).
        self._recover_jobs = recover
        self._model_arg = model
        self._device = device
        self._generator: Generator | None = None
        self._cond = threading.Condition(threading.RLock())
        self._pending: collections.deque[str] = collections.deque()
        self._live: dict[str, _Live] = {}
        self._running: _Live | None = None
        self._listeners: list[Listener] = []
        self._stopping = False
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._failure: tuple[str, float] | None = None  # (reason, when) once the worker has stopped
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float | None = None) -> None:
        """Recover unfinished jobs from the journal, load the model on the worker thread and
        start rendering. Raises ``BridgeError`` if the model cannot be loaded."""
        if self._recover_jobs:
            self._recover()
        self._thread = threading.Thread(target=self._work, name="longplay-render", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise BridgeError("the model did not load in time")
        if self._load_error is not None:
            raise BridgeError(str(self._load_error)) from self._load_error

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after interrupting the running render; it stays queued and runs on the next start."""
        with self._cond:
            self._stopping = True
            if self._running is not None:
                self._running.cancel.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every job event; returns the function that unsubscribes."""
        with self._cond:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # ------------------------------------------------------------------ the doors' API
    def submit(
        self,
        request: Mapping[str, Any] | RenderRequest | JobSpec,
        req_id: str | None = None,
        *,
        source: str = "api",
        reply_to: str | None = None,
        out_dir: str | os.PathLike[str] | None = None,
    ) -> JobInfo:
        """Validate, journal and enqueue a request; -> its ``JobInfo`` (``duplicate=True`` when the
        id is already known with the same request). Raises ``UsageError`` (400/404/413),
        ``DuplicateRequest`` (409) or ``QueueFull`` (503); nothing is ever dropped silently."""
        job_id = check_id(req_id) if req_id is not None else new_id()
        fingerprint = _fingerprint(request)
        known = self._known(job_id, fingerprint)
        if known is not None:
            return known
        folder = Path(out_dir) if out_dir is not None else self.out_dir
        if isinstance(request, JobSpec):
            spec = request
        elif isinstance(request, RenderRequest):
            spec = spec_from_request(request, out_dir=folder)
        else:
            spec = parse_request(request, limits=self.limits, out_dir=folder)
        with self._cond:
            known = self._known(job_id, fingerprint)
            if known is not None:
                return known
            if self._stopping:
                raise QueueFull("the server is shutting down; send the request again once it is back")
            if self._failure is not None:
                raise WorkerStopped(
                    f"the render worker stopped ({self._failure[0]}); requests are refused "
                    "until the server is restarted"
                )
            if len(self._pending) >= self.limit:
                raise QueueFull(f"the queue is full ({self.limit} jobs waiting); try again later")
            try:
                row = self.journal.insert(
                    job_id, source=source, fingerprint=fingerprint, spec=spec.to_json(), reply_to=reply_to
                )
            except sqlite3.IntegrityError:  # another process shares this journal and took the id
                raise DuplicateRequest(f"request id {job_id!r} is already in use") from None
            live = _Live(row, spec)
            self._live[job_id] = live
            self._pending.append(job_id)
            info = self._info(row, live)
            self._emit("accepted", info)
            self._cond.notify_all()
        return info

    def cancel(self, job_id: str) -> JobInfo:
        """Cancel a queued job at once, a running one at its next sampler step; a finished job is
        left as it is. -> the job's state; ``UnknownJob`` (404) for an id never seen."""
        with self._cond:
            live = self._live.get(job_id)
            if live is None:
                return self._require(job_id)
            live.user_cancelled = True
            if live is self._running:
                live.cancel.set()
                return self._info(live.row, live)
            self._pending.remove(job_id)
            return self._finish(live, CANCELLED, 499, "cancelled")

    def get(self, job_id: str) -> JobInfo | None:
        with self._cond:
            live = self._live.get(job_id)
            if live is not None:
                return self._info(live.row, live)
        row = self.journal.get(job_id)
        return self._info(row) if row else None

    def list(self, limit: int = 100) -> list[JobInfo]:
        """The newest jobs first, from the journal (history survives restarts)."""
        rows = self.journal.recent(limit)
        with self._cond:
            return [self._info(r, self._live.get(r["id"])) for r in rows]

    @property
    def waiting(self) -> int:
        return len(self._pending)

    @property
    def health(self) -> QueueHealth:
        """Whether the worker runs, and if not why (``QueueHealth``): what ``/longplay/status`` and
        the app's bridge panel show."""
        with self._cond:
            if self._failure is not None:
                return QueueHealth("failed", *self._failure)
            if self._stopping:
                return QueueHealth("stopped")
            return QueueHealth("ready" if self._ready.is_set() else "starting")

    def allow_source_root(self, folder: str | os.PathLike[str]) -> None:
        """Accept transform sources under ``folder`` too (the drop folder's inbox, whose files it
        hands to its own jobs) when sources are limited to roots; without roots any file is."""
        with self._cond:
            roots = self.limits.allowed_roots
            if roots and Path(folder).resolve() not in roots:
                self.limits = dataclasses.replace(self.limits, allowed_roots=(*roots, Path(folder).resolve()))

    @property
    def model_defaults(self) -> dict[str, Any]:
        """The loaded model's sampler defaults (steps, cfg, sampler…); empty before ``start``."""
        return dict(self._generator.defaults) if self._generator is not None else {}

    def forget(self, job_id: str) -> bool:
        """Remove a finished job from the journal (its files are the caller's business); a queued
        or running job is kept. -> whether a row was removed."""
        with self._cond:
            if job_id in self._live:
                return False
        return self.journal.delete(job_id)

    # ------------------------------------------------------------------ internals
    def _known(self, job_id: str, fingerprint: str) -> JobInfo | None:
        row = self.journal.get(job_id)
        if row is None:
            return None
        if row["fingerprint"] != fingerprint:
            raise DuplicateRequest(f"request id {job_id!r} is already used by a different request")
        with self._cond:
            return dataclasses.replace(self._info(row, self._live.get(job_id)), duplicate=True)

    def _require(self, job_id: str) -> JobInfo:
        info = self.get(job_id)
        if info is None:
            raise UnknownJob(f"unknown request id {job_id!r}")
        return info

    def _recover(self) -> None:
        """Re-queue what a previous process left queued or running, unless it crashed it repeatedly."""
        for row in self.journal.unfinished():
            spec = JobSpec.from_json(row["spec"])
            clean_temp_files(Path(spec.out_dir), spec.name + "_")
            if row["attempts"] >= self.max_attempts:
                msg = f"the server stopped during this job {row['attempts']} times; not retrying it"
                self.journal.update(row["id"], state=FAILED, finished=time.time(), error_code=500, error=msg)
                continue
            if row["state"] != QUEUED:
                self.journal.update(row["id"], state=QUEUED)
                row["state"] = QUEUED
            log.info("recovered job %s (%s)", row["id"], row["state"])
            self._live[row["id"]] = _Live(row, spec)
            self._pending.append(row["id"])

    def _load(self) -> None:
        arg = self._model_arg
        model = arg if isinstance(arg, (ConditionedDiffusionModel, SA3Model)) else load_model(arg)
        self._generator = Generator(model) if self._device is None else Generator(model, device=self._device)
        self.model_name = Path(str(getattr(model, "folder", "") or "in-memory")).name
        with self._cond:  # allow_source_root may be replacing the limits from another thread
            self.limits = dataclasses.replace(
                self.limits,
                max_seconds=float(self._generator.max_seconds),
                window_seconds=float(model.config.window_seconds),
            )

    def _work(self) -> None:
        try:
            self._load()
        except BaseException as err:  # noqa: BLE001 - reported by start() on the caller's thread
            self._load_error = err
            with self._cond:
                self._failure = (f"the model did not load: {classify(err)[1]}", time.time())
            self._ready.set()
            return
        self._ready.set()
        try:
            self._serve()
        except BaseException as err:  # noqa: BLE001 - the worker's own failure: seen, logged, refused
            reason = classify(err)[1]
            with self._cond:
                self._failure = (reason, time.time())
                self._running = None
            log.error(
                "the render worker stopped: %s. New requests are refused with 503 until the server is "
                "restarted; queued and running jobs stay journaled and run then",
                reason,
                exc_info=err,
            )
            if not isinstance(err, Exception):
                raise

    def _serve(self) -> None:
        """Run jobs until stopped. Failures inside a job are the job's (``_run``); whatever
        escapes here (the journal cannot record a state) is the worker's own."""
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                live = self._live[self._pending.popleft()]
                self._running = live
                live.row.update(state=RUNNING, started=time.time(), attempts=live.row["attempts"] + 1)
                live.stage = "starting"
            self.journal.update(
                live.row["id"], state=RUNNING, started=live.row["started"], attempts=live.row["attempts"]
            )
            self._emit("progress", self._info(live.row, live))
            self._run(live)

    def _run(self, live: _Live) -> None:
        spec, job_id = live.spec, live.row["id"]
        assert self._generator is not None
        try:
            results = self._generator.render(spec.request, lambda p: self._progress(live, p), live.cancel)
            live.stage, live.fraction = "writing", _RENDER_SHARE
            self._emit("progress", self._info(live.row, live))
            paths = plan_paths(spec, [r.seed for r in results], live.row["planned"])
            live.row["planned"] = [str(p) for p in paths]
            self.journal.update(job_id, planned=live.row["planned"])
            files = []
            for result, path in zip(results, paths):
                write_render(path, result, spec, {**spec.extra, "model": self.model_name, "job_id": job_id})
                files.append(FileInfo.of(result.variation + 1, str(path), result.seconds, result.seed, result.recipe))
                self._emit("file", self._info(live.row, live), files[-1])
            with self._cond:
                self._finish(live, DONE, None, None, files)
        except BaseException as err:  # noqa: BLE001 - every failure becomes the job's state
            with self._cond:
                if isinstance(err, RenderCancelled) and self._stopping and not live.user_cancelled:
                    self._requeue(live)
                    return
                code, msg = classify(err)
                if code == 500:
                    log.exception("job %s failed", job_id)
                self._finish(live, CANCELLED if code == 499 else FAILED, code, msg)
            if not isinstance(err, Exception):
                raise

    def _progress(self, live: _Live, p: Progress) -> None:
        if p.stage == "done":  # the engine is done; the job still has files to write
            return
        live.stage, live.fraction = p.stage, p.fraction * _RENDER_SHARE
        live.step, live.steps = p.step, p.total
        self._emit("progress", self._info(live.row, live))

    def _requeue(self, live: _Live) -> None:
        """A shutdown interrupted this render: leave it queued (not counted as a crash)."""
        live.row.update(state=QUEUED, started=None, attempts=max(0, live.row["attempts"] - 1))
        self.journal.update(live.row["id"], state=QUEUED, started=None, attempts=live.row["attempts"])
        self._running = None
        self._live.pop(live.row["id"], None)

    def _finish(
        self, live: _Live, state: str, code: int | None, msg: str | None, files: Sequence[FileInfo] = ()
    ) -> JobInfo:
        """Journal a final state and tell the listeners. Called with the lock held."""
        now = time.time()
        file_rows = [dataclasses.asdict(f) for f in files]
        self.journal.update(live.row["id"], state=state, finished=now, files=file_rows, error_code=code, error=msg)
        live.row.update(state=state, finished=now, files=file_rows, error_code=code, error=msg)
        self._live.pop(live.row["id"], None)
        if self._running is live:
            self._running = None
        info = self._info(live.row)
        self._emit({DONE: "done", FAILED: "failed", CANCELLED: "cancelled"}[state], info)
        return info

    def _info(self, row: dict[str, Any], live: _Live | None = None) -> JobInfo:
        files = tuple(FileInfo(**f) for f in row["files"])
        spec = live.spec if live is not None else JobSpec.from_json(row["spec"])
        info = JobInfo(
            id=row["id"],
            source=row["source"],
            state=row["state"],
            spec=spec,
            created=row["created"],
            started=row["started"],
            finished=row["finished"],
            stage=row["state"],
            fraction=1.0 if row["state"] == DONE else 0.0,
            files=files,
            error_code=row["error_code"],
            error=row["error"],
            reply_to=row["reply_to"],
        )
        if live is None:
            return info
        position = -1
        if row["state"] == QUEUED and row["id"] in self._pending:
            position = self._pending.index(row["id"]) + (self._running is not None)
        return dataclasses.replace(
            info, stage=live.stage, fraction=live.fraction, step=live.step, steps=live.steps, position=position
        )

    def _emit(self, kind: str, info: JobInfo, file: FileInfo | None = None) -> None:
        event = JobEvent(kind, info, file)
        with self._cond:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one broken listener must not stop the others or the job
                log.exception("job event listener %r failed on %s", listener, kind)


def _fingerprint(request: Mapping[str, Any] | RenderRequest | JobSpec) -> str:
    """Equal for two submissions of the same request under one id (a random seed counts as -1)."""
    if isinstance(request, JobSpec):
        return request.fingerprint()
    if isinstance(request, RenderRequest):
        data: Any = {"request": dataclasses.asdict(request)}
    else:
        data = {"values": dict(request)} if isinstance(request, Mapping) else repr(request)
    try:
        text = json.dumps(data, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):  # odd keys: validation will refuse the request anyway
        try:
            text = repr(data)
        except (ValueError, RecursionError):  # a huge int or deep nesting: nothing to compare it with
            return secrets.token_hex(16)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
