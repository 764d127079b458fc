"""The app's controller: what the buttons and shortcuts do, with no widgets in sight.

Tests drive it directly (``generate()``, ``set_init_audio(path)``, ``cancel()``…) and watch the
view models (``form``, ``history``, ``progress``) and the services (``player``, ``peaks``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QFile, QObject, Signal

from bridge import media
from bridge.errors import BridgeError
from bridge.jobs import JobEvent, JobInfo
from bridge.requests import JobSpec, parse_request

from . import workers
from .backend import LOADING, READY, Backend
from .dialogs import Dialogs
from .edit_actions import EditModel
from .form import FormModel, FormValues
from .history import HistoryEntry, HistoryModel, read_history
from .player import Player
from .progress import ProgressModel
from .settings import Settings
from .waveform import COLUMNS, PeakCache

log = logging.getLogger("longplay.desktop")
DEFAULT_MODEL = "longplay-mini"


@dataclass(frozen=True)
class ModelChoice:
    name: str  # shown in the picker
    ref: str  # what load_model gets: a name or a folder path
    found: bool = True
    description: str = ""


class Controller(QObject):
    selection_changed = Signal(object)  # HistoryEntry | None
    models_changed = Signal(list)  # [ModelChoice]

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        *,
        dialogs: Dialogs | None = None,
        player: Player | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.backend = backend
        self.dialogs = dialogs or Dialogs()
        self.form = FormModel(FormValues.from_dict(settings["form/values"]), self)
        if settings["form/values"]:
            self.form.mark_restored(settings["form/values"])
        self.history = HistoryModel(self)
        self.progress = ProgressModel(parent=self)
        self.peaks = PeakCache(parent=self)
        self.player = player or Player(parent=self)
        self.player.set_loop(settings["player/loop"])
        self.selected: HistoryEntry | None = None
        self.models: list[ModelChoice] = []
        self.own_jobs: set[str] = set()  # submitted from this window: selected when they finish
        self._history_loading = False
        self._held: list[JobEvent] = []  # events that arrive while the history is read
        self.trash: Callable[[str], None] = move_to_trash

        self.form.changed.connect(self._save_form)
        backend.job_event.connect(self.on_job_event)
        backend.queue_changed.connect(self.reload_history)
        backend.model_ready.connect(self._on_model_ready)
        backend.state_changed.connect(self._on_backend_state)
        self.peaks.ready.connect(self.history.refresh_path)
        self.edits = EditModel(self)  # extend / replace on the selected render's waveform

    def _save_form(self) -> None:
        self.settings["form/values"] = self.form.values.to_dict()

    # ------------------------------------------------------------------ startup
    def start(self, model: str | None = None) -> None:
        """Find the models and load ``model`` (default: the one used last)."""
        self.refresh_models()
        self.choose_model(model or self.settings["model/selected"] or DEFAULT_MODEL, remember=model is None)

    def refresh_models(self) -> None:
        extra = [str(p) for p in self.settings["model/folders"]]

        def find() -> list[ModelChoice]:
            found = [ModelChoice(m.name, str(m.path), True, m.description) for m in media.find_models()]
            names = {m.name for m in found}
            for folder in extra:
                if Path(folder).name not in names:
                    found.append(ModelChoice(Path(folder).name, folder, (Path(folder) / "model_config.json").is_file()))
                    names.add(Path(folder).name)
            if DEFAULT_MODEL not in names:
                found.insert(0, ModelChoice(DEFAULT_MODEL, DEFAULT_MODEL, False, "not installed"))
            return found

        workers.run_task(find, self._on_models)

    def _on_models(self, models: list[ModelChoice] | None, error: BaseException | None) -> None:
        if models is None:
            log.error("listing models failed", exc_info=error)
            return
        current = self.backend.state.model
        if current and not any(current in (m.ref, m.name) for m in models):
            models.append(ModelChoice(Path(current).name, current, Path(current).is_dir()))
        self.models = models
        self.models_changed.emit(models)

    def choose_model(self, ref: str, remember: bool = True) -> None:
        if remember:
            self.settings["model/selected"] = ref
        state = self.backend.state
        if ref != state.model or state.model_state not in (LOADING, READY):  # a failed load is retried
            self.backend.load_model(ref)

    def add_model_folder(self, folder: str) -> None:
        folders = [f for f in self.settings["model/folders"] if f != folder] + [folder]
        self.settings["model/folders"] = folders
        self.choose_model(folder)
        self.refresh_models()

    def _on_model_ready(self, defaults: dict[str, Any]) -> None:
        self.history.model_name = self.backend.model_name
        self.form.set_limits(self.backend.limits)
        self.form.apply_model_defaults(defaults)

    def _on_backend_state(self, state: Any) -> None:
        if state.model_state == LOADING:
            self.progress.show_activity(state.model_message)
        else:
            self.progress.clear_activity()

    # ------------------------------------------------------------------ history
    def reload_history(self) -> None:
        self._history_loading = True
        default_model = self.backend.model_name

        def done(jobs: list[JobInfo] | None, error: BaseException | None) -> None:
            if jobs is None:
                self._history_loaded(None, error)
                return
            workers.run_task(lambda: read_history(jobs, default_model), self._history_loaded)

        self.backend.list_jobs(done)

    def _history_loaded(self, entries: list[HistoryEntry] | None, error: BaseException | None) -> None:
        self._history_loading = False
        if entries is None:
            log.error("reading the history failed", exc_info=error)
            entries = []
        self.history.load(entries)
        held, self._held = self._held, []
        for event in held:
            self.history.apply(event)
        if self.selected is None:  # open on the newest render, ready to play
            newest = next((e for e in self.history.entries if e.path), None)
            if newest is not None:
                self.select(newest)

    def on_job_event(self, event: JobEvent) -> None:
        if self._history_loading:
            self._held.append(event)
        else:
            self.history.apply(event)
        self.progress.on_event(event)
        self.backend.note_event(event)
        if event.kind == "done" and event.job.id in self.own_jobs:
            self.own_jobs.discard(event.job.id)
            row = self.history.row_of(event.job.id)
            if row >= 0:
                self.select(self.history.entry(row))

    def select(self, entry: HistoryEntry | None) -> None:
        if entry == self.selected:
            return
        if self.player.playing and (entry is None or entry.path != self.player.path):
            self.player.stop()
        self.selected = entry
        if entry is not None and entry.path:
            self.peaks.get(entry.path)
        self.selection_changed.emit(entry)

    def recall(self, entry: HistoryEntry | None = None) -> None:
        entry = entry or self.selected
        if entry is not None:
            self.form.recall(entry.job.spec.request, entry.seed)
            if entry.job.spec.request.init_audio:
                self.set_init_audio(entry.job.spec.request.init_audio)

    def reveal(self, entry: HistoryEntry | None = None) -> None:
        entry = entry or self.selected
        if entry is not None and entry.path:
            self.dialogs.reveal(entry.path)

    def delete(self, entry: HistoryEntry | None = None, confirm: bool = True) -> None:
        """Move the render (and its sidecar) to the trash; a job with no file left leaves the journal."""
        entry = entry or self.selected
        if entry is None or entry.job.state in ("queued", "running"):
            return
        if (
            confirm
            and entry.path
            and not self.dialogs.confirm("Delete render", f"Move {Path(entry.path).name} to the trash?")
        ):
            return
        path, job_id = entry.path, entry.job.id
        self.history.remove(entry)
        if self.selected is not None and self.selected.key == entry.key:
            self.select(None)
        if path:
            self.player.unload(path)
            self.peaks.forget(path)
        last = not self.history.job_entries(job_id)
        trash = self.trash
        workers.run_task(
            lambda: trash(path) if path else None, lambda _r, _e: self.backend.forget(job_id) if last else None
        )

    # ------------------------------------------------------------------ rendering
    def generate(self) -> bool:
        """Validate the form and submit it; -> False (and a message) if it cannot go."""
        if self.form.attempt():
            return False
        if not self.backend.ready:
            self.form.set_message(self.backend.state.model_message or "the model is still loading")
            return False
        build = self.form.spec_factory(self.backend.out_dir, self.backend.model_name)
        self.backend.submit(build, self._submitted)
        return True

    def _submitted(self, info: JobInfo | None, error: BaseException | None) -> None:
        if info is None:
            self.form.set_message(str(error))
            return
        self.own_jobs.add(info.id)
        self.form.note_seed(info.spec.request.seed)

    def submit_request(self, values: Mapping[str, Any], on_done: Callable[[JobInfo | None, str], None]) -> bool:
        """Submit key/values as any door sends them (the waveform's extend and replace), checked
        by the bridge's validator off the GUI thread (it reads the source file). -> False at once
        when no model is ready; then ``on_done(info, "")``, or ``(None, reason)`` if refused."""
        if not self.backend.ready:
            on_done(None, self.backend.state.model_message or "the model is still loading")
            return False
        limits, out_dir, model = self.backend.limits, self.backend.out_dir, self.backend.model_name

        def build() -> JobSpec:
            spec = parse_request(dict(values), limits=limits, out_dir=out_dir)
            return dataclasses.replace(spec, extra={**spec.extra, "model": model}) if model else spec

        def done(info: JobInfo | None, error: BaseException | None) -> None:
            if info is None:
                if not isinstance(error, BridgeError):
                    log.error("submitting %s failed", values.get("edit", "a request"), exc_info=error)
                on_done(None, str(error) or type(error).__name__)
                return
            self.own_jobs.add(info.id)  # selected when it finishes, as the form's renders
            on_done(info, "")

        self.backend.submit(build, done)
        return True

    def cancel(self) -> None:
        state = self.progress.state
        if state.active and state.job_id:
            self.backend.cancel(state.job_id)

    # ------------------------------------------------------------------ audio-to-audio
    def choose_init_audio(self) -> None:
        path = self.dialogs.open_audio(
            str(Path(self.form.values.init_audio).parent) if self.form.values.init_audio else ""
        )
        if path:
            self.set_init_audio(path)

    def set_init_audio(self, path: str) -> None:
        """Check and read a dropped or chosen file off the GUI thread; a good one becomes the
        init audio (its waveform shows), a bad one leaves a message at the drop zone."""
        self.form.set_source_message(f"Reading {Path(path).name}…")

        def done(peaks: media.AudioPeaks | None, error: BaseException | None) -> None:
            if peaks is None:
                self.form.set_source_message(
                    str(error)
                    if isinstance(error, media.AudioInputError)
                    else f"{Path(path).name} cannot be used: {error}"
                )
                return
            self.peaks.put(peaks)
            self.form.set_source_message("")
            self.form.update(init_audio=peaks.path)

        workers.run_task(lambda: media.read_peaks(str(Path(path).resolve()), COLUMNS), done)

    def clear_init_audio(self) -> None:
        self.form.set_source_message("")
        self.form.update(init_audio="")

    # ------------------------------------------------------------------ playback
    def toggle_play(self) -> None:
        if self.selected is not None and self.selected.path:
            self.player.toggle(self.selected.path)

    def set_loop(self, loop: bool) -> None:
        self.player.set_loop(loop)
        self.settings["player/loop"] = loop

    # ------------------------------------------------------------------ idle (for --smoke and tests)
    def is_idle(self) -> bool:
        return (
            not self.backend.busy
            and self.backend.state.model_state != LOADING
            and workers.pending() == 0
            and self.peaks.pending == 0
            and not self._history_loading
            and not self.progress.state.active
            and bool(self.models)
        )

    def shutdown(self) -> None:
        self.player.stop()
        self.settings["form/values"] = self.form.values.to_dict()
        self.settings.sync()
        self.backend.stop()


def move_to_trash(path: str) -> None:
    """The render and its sidecar go to the desktop's trash (recoverable), or are deleted where
    there is none. Runs off the GUI thread."""
    if not QFile.moveToTrash(path):  # no trash here (a headless box): delete for real
        Path(path).unlink(missing_ok=True)
    side = Path(path).with_suffix(".json")
    if side.exists() and not QFile.moveToTrash(str(side)):
        side.unlink(missing_ok=True)
