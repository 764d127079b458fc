"""The watched folder door: drop a request (JSON) or an audio file in, get files out.

    <root>/inbox/          request JSON files (same keys as OSC) and audio files (.wav .flac .aif…)
    <root>/inbox/accepted/ what was submitted, moved aside (audio files are read from here)
    <root>/inbox/rejected/ bad requests, moved aside so they are not retried forever
    <root>/outbox/         renders, ``<name>_<bpm>bpm_<bars>bar_s<seed>_v<n>.wav`` + ``.json`` sidecars,
                           and ``<id>.status`` (JSON: state, stage, fraction, files, error)

A file is picked up once its size and modification time have stayed the same across two polls
(a DAW or a copy may still be writing it). Polling needs no extra dependency and works on network
shares where inotify does not. The request id is the JSON's ``req_id``, else the file name plus a
hash of the content, so dropping the same file twice answers with the first job's state while a
new recording of the same name renders again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import BridgeError, UsageError
from .journal import CANCELLED, DONE, FAILED
from .queue import JobEvent, JobInfo, JobQueue
from .requests import check_id
from .naming import slug
from .sniff import AUDIO_INPUT_SUFFIXES
from .writer import write_status

log = logging.getLogger("longplay.drop")
STATUS_INTERVAL = 1.0  # progress rewrites of a status file, at most once a second (state changes always)


class DropFolder:
    """Polls ``<root>/inbox`` and submits what it finds to ``queue``; writes status files."""

    def __init__(self, queue: JobQueue, root: str | os.PathLike[str], *, default_prompt: str = "",
                 default_strength: float = 0.7, audio_defaults: Mapping[str, Any] | None = None,
                 interval: float = 0.5) -> None:
        self.queue = queue
        self.root = Path(root).resolve()
        self.inbox, self.outbox = self.root / "inbox", self.root / "outbox"
        self.accepted, self.rejected = self.inbox / "accepted", self.inbox / "rejected"
        self.default_prompt = default_prompt
        self.default_strength = default_strength
        self.audio_defaults = dict(audio_defaults or {})
        self.interval = interval
        self._seen: dict[str, tuple[int, int]] = {}  # file name -> (size, mtime_ns) at the last poll
        self._last_status: dict[str, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        for folder in (self.inbox, self.outbox, self.accepted, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        self._unsubscribe = self.queue.subscribe(self.on_event)
        self._recover()
        self._thread = threading.Thread(target=self._loop, name="longplay-drop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a bad file or a full disk must not stop the watcher
                log.exception("drop folder poll failed")

    # ------------------------------------------------------------------ picking files up
    def poll(self) -> list[str]:
        """One scan of the inbox; -> the names of the files handled (submitted or rejected)."""
        handled = []
        current: dict[str, tuple[int, int]] = {}
        for path in sorted(self.inbox.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            current[path.name] = (st.st_size, st.st_mtime_ns)
            if self._seen.get(path.name) != current[path.name]:
                continue  # new or still growing: look again next time
            if path.suffix.lower() == ".json":
                self._take_json(path)
            elif path.suffix.lower() in AUDIO_INPUT_SUFFIXES:
                self._take_audio(path)
            else:
                self._reject(path, slug(path.stem), UsageError(
                    f"{path.name}: not a request (.json) or an audio file ({', '.join(AUDIO_INPUT_SUFFIXES)})"))
            current.pop(path.name, None)
            handled.append(path.name)
        self._seen = current
        return handled

    def _take_json(self, path: Path) -> None:
        fallback_id = slug(path.stem, 48)
        try:
            try:
                fallback_id = _content_id(path)
                values = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise UsageError(f"{path.name} is not a readable JSON file: {err}") from None
            if not isinstance(values, dict):
                raise UsageError(f"{path.name} must hold a JSON object of request keys")
            rid = values.pop("req_id", None)
            rid = fallback_id = check_id(rid) if rid is not None else fallback_id
            if "source_path" in values and isinstance(values["source_path"], str):
                # Relative sources are relative to the drop folder, not to the server's cwd.
                values["source_path"] = str(self.root / values["source_path"])
            info = self.queue.submit(values, rid, source="drop", out_dir=self.outbox)
        except BridgeError as err:
            self._reject(path, fallback_id, err)
            return
        self._after_submit(path, info)

    def _take_audio(self, path: Path) -> None:
        """Audio-to-audio with the folder's default prompt. The source moves to
        ``accepted/<id><suffix>`` first, so the job reads a file that stays put, a restart finds
        it by its id, and the same recording dropped again is recognised."""
        try:
            rid = _content_id(path)
        except OSError as err:
            self._reject(path, slug(path.stem, 48), UsageError(f"{path.name} is not readable: {err}"))
            return
        target = self.accepted / f"{rid}{path.suffix.lower()}"
        if target.exists():
            path.unlink()  # the same content under the same name: the job already has it
        else:
            os.replace(path, target)
        self._submit_audio(target, rid)

    def _submit_audio(self, source: Path, rid: str) -> None:
        values: dict[str, Any] = {"strength": self.default_strength, "name": rid.rsplit("-", 1)[0]}
        if self.default_prompt:
            values["prompt"] = self.default_prompt
        try:
            values.update(self.audio_defaults)
            values.update(self._folder_defaults())
            values["source_path"] = str(source)
            info = self.queue.submit(values, rid, source="drop", out_dir=self.outbox)
        except BridgeError as err:
            self._reject(source, rid, err)
            return
        if info.duplicate:
            self._write_status(info)

    def _folder_defaults(self) -> dict[str, Any]:
        """``<root>/defaults.json``: request keys for dropped audio files (prompt, strength, steps…),
        read at each pick-up so it can be edited while the server runs."""
        path = self.root / "defaults.json"
        if not path.is_file():
            return {}
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UsageError(f"{path} is not a readable JSON file: {err}") from None
        if not isinstance(values, dict):
            raise UsageError(f"{path} must hold a JSON object of request keys")
        return values

    def _after_submit(self, path: Path, info: JobInfo) -> None:
        if info.duplicate:
            self._write_status(info)
        os.replace(path, _free_name(self.accepted / path.name))

    def _reject(self, path: Path, rid: str, err: BridgeError) -> None:
        log.warning("drop folder rejected %s: %s", path.name, err.message)
        moved = _free_name(self.rejected / path.name)
        try:
            os.replace(path, moved)
        except OSError as move_err:
            log.error("could not move %s aside: %s", path, move_err)
        write_status(self.outbox, rid, {"id": rid, "state": "rejected", "request": str(moved),
                                        "error": {"code": err.code, "message": err.message}})

    def _recover(self) -> None:
        """Audio moved to accepted/ by a process killed before it submitted: submit it now. Its
        name is its id, so a job that was submitted is found and not rendered again."""
        for path in sorted(self.accepted.iterdir()):
            if path.is_file() and path.suffix.lower() in AUDIO_INPUT_SUFFIXES:
                try:
                    rid = check_id(path.stem)
                except UsageError:
                    continue  # not a name this folder gave
                if self.queue.get(rid) is None:
                    self._submit_audio(path, rid)

    # ------------------------------------------------------------------ status files
    def on_event(self, event: JobEvent) -> None:
        job = event.job
        if job.source != "drop" or Path(job.spec.out_dir) != self.outbox:
            return
        if event.kind == "progress":
            now = time.monotonic()
            last_t, last_stage = self._last_status.get(job.id, (0.0, ""))
            if job.stage == last_stage and now - last_t < STATUS_INTERVAL:
                return
            self._last_status[job.id] = (now, job.stage)
        if job.is_final:
            self._last_status.pop(job.id, None)
        self._write_status(job)

    def _write_status(self, job: JobInfo) -> None:
        status: dict[str, Any] = {"id": job.id, "state": job.state, "stage": job.stage,
                                  "fraction": round(job.fraction, 4), "position": job.position,
                                  "files": [f.path for f in job.files]}
        if job.state in (FAILED, CANCELLED):
            status["error"] = {"code": job.error_code, "message": job.error}
        if job.state == DONE:
            status["elapsed"] = round(job.elapsed, 3)
        try:
            write_status(self.outbox, job.id, status)
        except OSError as err:
            log.error("could not write the status of %s: %s", job.id, err)


def _content_id(path: Path) -> str:
    """``<file-name-slug>-<8 hex of the content's hash>``: stable across restarts and re-drops."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return f"{slug(path.stem, 48)}-{h.hexdigest()[:8]}"


def _free_name(path: Path) -> Path:
    n, candidate = 0, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate

