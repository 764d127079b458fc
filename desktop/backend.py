"""The app's one job queue, with the OSC server and the drop folder on it: one model, one process.

A render a DAW asks for over OSC goes through the same queue as the GUI's, so it shows up in the
history with its progress. Every lifecycle step (open the journal, load a model, restart the OSC
server on a new port) runs on the serial worker pool, in order; the queue's events are re-posted
to the GUI thread as the ``job_event`` signal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from bridge import media
from bridge.dropfolder import DropFolder
from bridge.errors import BridgeError
from bridge.jobs import JobEvent, JobInfo
from bridge.journal import Journal
from bridge.osc import OscServer
from bridge.queue import JobQueue
from bridge.requests import JobSpec, Limits

from .workers import Done, run_task, wait

log = logging.getLogger("longplay.desktop")

# Model states
IDLE, LOADING, READY, MISSING, BROKEN = "idle", "loading", "ready", "missing", "broken"


@dataclass(frozen=True)
class BridgeState:
    """What the bridge panel and the status line show."""

    model: str = ""  # the name asked for
    model_state: str = IDLE
    model_message: str = ""
    osc_enabled: bool = True
    osc_port: int = 9030
    osc_address: str = ""  # "udp://127.0.0.1:9030" while listening
    osc_message: str = ""  # why it is not listening
    drop_enabled: bool = False
    drop_folder: str = ""
    drop_message: str = ""
    waiting: int = 0
    worker_message: str = ""  # why the render worker stopped (JobQueue.health), "" while it runs


@dataclass
class _Loaded:
    queue: JobQueue
    state: str
    message: str
    osc_address: str = ""
    osc_message: str = ""
    drop_message: str = ""


class Backend(QObject):
    """Owns the ``JobQueue``, the ``OscServer`` and the ``DropFolder``; re-creates them when the
    model or the port changes. Methods are called on the GUI thread and return at once."""

    job_event = Signal(object)  # bridge.jobs.JobEvent
    state_changed = Signal(object)  # BridgeState
    model_ready = Signal(dict)  # the model's sampler defaults
    queue_changed = Signal()  # a new queue (and so a journal to list) is in place

    def __init__(
        self,
        out_dir: str | Path,
        *,
        journal: str | Path | None = None,
        device: str | None = None,
        osc_enabled: bool = True,
        osc_port: int = 9030,
        drop_folder: str = "",
        drop_enabled: bool = False,
        drop_prompt: str = "",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.out_dir = Path(out_dir).expanduser().resolve()
        self.journal_path = Path(journal) if journal else self.out_dir / ".longplay" / "jobs.sqlite3"
        self.device = device
        self.drop_prompt = drop_prompt
        self.state = BridgeState(
            osc_enabled=osc_enabled, osc_port=osc_port, drop_enabled=drop_enabled, drop_folder=drop_folder
        )
        self.queue: JobQueue | None = None  # set on the GUI thread only
        self._journal: Journal | None = None  # owned by the serial pool
        self._osc: OscServer | None = None
        self._drop: DropFolder | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._newest: JobQueue | None = None  # the last queue the serial pool made
        self._busy = 0  # lifecycle tasks in flight
        self.stopped = False

    # ------------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        return self._busy > 0

    @property
    def ready(self) -> bool:
        return self.state.model_state == READY and self.queue is not None

    @property
    def model_name(self) -> str:
        return self.queue.model_name if self.queue is not None and self.ready else ""

    @property
    def limits(self) -> Limits:
        return self.queue.limits if self.queue is not None else Limits()

    def _set(self, **changes: Any) -> None:
        new = replace(self.state, **changes)
        if new != self.state:
            self.state = new
            self.state_changed.emit(new)

    def _lifecycle(self, fn: Callable[[], Any], on_done: Done) -> None:
        self._busy += 1

        def done(result: Any, error: BaseException | None) -> None:
            self._busy -= 1
            if not self.stopped:
                on_done(result, error)

        run_task(fn, done, serial=True)

    def _on_queue_event(self, event: JobEvent) -> None:  # on the queue's threads
        self.job_event.emit(event)

    def note_event(self, event: JobEvent) -> None:
        """Keep the queue length current (called by the controller for every job event)."""
        if self.queue is not None:
            health = self.queue.health
            self._set(
                waiting=self.queue.waiting,
                worker_message="" if health.ok else f"renders stopped: {health.reason or health.state}",
            )

    # ------------------------------------------------------------------ model
    def load_model(self, model: str | Path) -> None:
        """Stop the doors, then in a fresh queue over the same journal: show the history at once,
        load ``model`` (a folder or a name), reopen the doors. Jobs left queued run on the new queue."""
        name = str(model)
        self._set(
            model=name,
            model_state=LOADING,
            model_message=f"Loading {Path(name).name}…",
            osc_address="",
            osc_message="waiting for the model",
        )
        old, self.queue = self.queue, None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        state = self.state
        made: list[JobQueue] = []

        def open_queue() -> JobQueue:
            self._close_doors(old)
            if self._journal is None:
                self._journal = Journal(self.journal_path)
            queue = JobQueue(self._journal, model=name, device=self.device, out_dir=self.out_dir)
            self._newest = queue  # stop() closes it even if the app quits before it is handed over
            made.append(queue)
            return queue

        def opened(queue: JobQueue | None, error: BaseException | None) -> None:
            if queue is None:
                log.error("opening the job journal failed", exc_info=error)
                self._set(model_state=BROKEN, model_message=f"Cannot open the job history: {error}")
                return
            self.queue = queue  # not ready yet: the history can be listed while the model loads
            self._unsubscribe = queue.subscribe(self._on_queue_event)
            self.queue_changed.emit()

        def start() -> _Loaded | None:
            if not made:
                return None  # the journal could not be opened: opened() has said why
            queue = made[0]
            try:
                media.resolve_model(name)
            except media.ModelLoadError:
                return _Loaded(queue, MISSING, "No model found — pick a model folder")
            try:
                queue.start()
            except BridgeError as err:
                return _Loaded(queue, BROKEN, f"Could not load {Path(name).name}: {err}")
            return _Loaded(queue, READY, "", *self._open_osc(queue, state), self._open_drop(queue, state))

        def started(loaded: _Loaded | None, error: BaseException | None) -> None:
            if loaded is None:
                if error is None:
                    return
                log.error("loading %s failed", name, exc_info=error)
                self._set(model_state=BROKEN, model_message=f"Could not load {Path(name).name}: {error}")
                return
            if loaded.queue is not self.queue:
                return  # another model was asked for meanwhile
            waiting = "waiting for a model" if loaded.state != READY else loaded.osc_message
            self._set(
                model_state=loaded.state,
                model_message=loaded.message,
                osc_address=loaded.osc_address,
                osc_message=waiting,
                drop_message=loaded.drop_message,
                waiting=loaded.queue.waiting,
            )
            if loaded.state == READY:
                self.model_ready.emit(loaded.queue.model_defaults)

        self._lifecycle(open_queue, opened)
        self._lifecycle(start, started)

    # ------------------------------------------------------------------ doors
    def _open_osc(self, queue: JobQueue, state: BridgeState) -> tuple[str, str]:
        if not state.osc_enabled:
            return "", "off"
        server = OscServer(queue, "127.0.0.1", state.osc_port)
        try:
            host, port = server.start()
        except BridgeError as err:
            return "", str(err)
        self._osc = server
        return f"udp://{host}:{port}", ""

    def _open_drop(self, queue: JobQueue, state: BridgeState) -> str:
        if not state.drop_enabled or not state.drop_folder:
            return ""
        drop = DropFolder(queue, state.drop_folder, default_prompt=self.drop_prompt)
        try:
            drop.start()
        except OSError as err:
            return f"cannot watch {state.drop_folder}: {err.strerror or err}"
        self._drop = drop
        return ""

    def _close_doors(self, queue: JobQueue | None) -> None:
        if self._osc is not None:
            self._osc.stop()
            self._osc = None
        if self._drop is not None:
            self._drop.stop()
            self._drop = None
        if queue is not None:
            queue.stop()

    def set_osc(self, enabled: bool, port: int) -> None:
        """Restart the OSC server (on a new port, or not at all)."""
        if (enabled, port) == (self.state.osc_enabled, self.state.osc_port) and (
            self.state.osc_address or not enabled or not self.ready
        ):
            return
        self._set(osc_enabled=enabled, osc_port=port, osc_address="")
        self._restart_doors()

    def set_drop(self, enabled: bool, folder: str, prompt: str | None = None) -> None:
        if prompt is not None:
            self.drop_prompt = prompt
        self._set(drop_enabled=enabled, drop_folder=folder, drop_message="")
        self._restart_doors()

    def _restart_doors(self) -> None:
        queue, state = self.queue, self.state
        if queue is None or not self.ready:
            return

        def work() -> tuple[str, str, str]:
            self._close_doors(None)
            return (*self._open_osc(queue, state), self._open_drop(queue, state))

        def done(result: Any, error: BaseException | None) -> None:
            if error is not None:
                self._set(osc_message=str(error))
                return
            self._set(osc_address=result[0], osc_message=result[1], drop_message=result[2])

        self._lifecycle(work, done)

    # ------------------------------------------------------------------ jobs
    def submit(self, spec: JobSpec | Callable[[], JobSpec], on_done: Done) -> None:
        """Journal and enqueue (off the GUI thread: the journal fsyncs); -> ``on_done(JobInfo, error)``."""
        queue = self.queue
        if queue is None or not self.ready:
            on_done(None, BridgeError(self.state.model_message or "the model is still loading"))
            return

        def work() -> JobInfo:
            return queue.submit(spec() if callable(spec) else spec, source="gui")

        run_task(work, on_done, serial=True)

    def cancel(self, job_id: str, on_done: Done | None = None) -> None:
        queue = self.queue
        if queue is not None:
            run_task(lambda: queue.cancel(job_id), on_done, serial=True)

    def forget(self, job_id: str, on_done: Done | None = None) -> None:
        queue = self.queue
        if queue is not None:
            run_task(lambda: queue.forget(job_id), on_done, serial=True)

    def list_jobs(self, on_done: Done, limit: int = 500) -> None:
        """The newest jobs from the journal; not on the serial pool, so a model that takes minutes
        to load does not hold the history back."""
        queue = self.queue
        if queue is None:
            on_done([], None)
            return
        run_task(lambda: queue.list(limit), on_done)

    # ------------------------------------------------------------------ shutdown
    def stop(self) -> None:
        """Close the doors and stop the queue (blocks; the app is quitting). A running render
        stays queued in the journal and runs on the next start."""
        self.stopped = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        wait(60000)
        self._close_doors(self._newest)
        self.queue = self._newest = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None
