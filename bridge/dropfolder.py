"""The watched folder door: drop a request (JSON) or an audio file in, get files out.

    <root>/inbox/          request JSON files (same keys as OSC) and audio files (.wav .flac .aif…)
    <root>/inbox/accepted/ what was submitted, moved aside (audio files are read from here)
    <root>/inbox/rejected/ everything refused, moved aside so it is not retried forever
    <root>/outbox/         renders, ``<name>_<bpm>bpm_<bars>bar_s<seed>_v<n>.wav`` + ``.json`` sidecars,
                           and ``<id>.status`` (JSON: state, stage, fraction, files, error)

An entry is picked up once its type, size and modification time have stayed the same across two
polls (a DAW or a copy may still be writing it). Polling needs no extra dependency and works on
network shares where inotify does not. The request id is the JSON's ``req_id``, else the file name
plus a hash of the content, so dropping the same file twice answers with the first job's state
while a new recording of the same name renders again.

Whatever goes wrong with one entry stays with that entry: it is moved to ``rejected/`` under a
unique name that fits the file system, with a status file saying why, and the folder goes on. So
every file that leaves the inbox leaves a status. Entries are looked at with ``lstat`` and only
regular files are ever opened (``bridge.dropfiles``): a FIFO, a socket, a folder or a link is
refused unopened. While the render worker is stopped (``JobQueue.health``) nothing is picked up:
dropped files wait in the inbox for a restart.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dropfiles import content_id, entry_id, file_id, free_name, kind_of, parse_json, read_request_file
from .errors import BridgeError, DiskFull, DuplicateRequest, UsageError
from .jobs import JobEvent, JobInfo, classify
from .journal import CANCELLED, DONE, FAILED
from .queue import JobQueue
from .requests import DEFAULT_STRENGTH, check_id
from .sniff import AUDIO_INPUT_SUFFIXES
from .writer import write_status

log = logging.getLogger("longplay.drop")
STATUS_INTERVAL = 1.0  # progress rewrites of a status file, at most once a second (state changes always)
_Signature = tuple[int, int, int, int]  # (mode, size, mtime_ns, inode) of an inbox entry


@dataclass
class _Drop:
    """One inbox entry being handled: where it is now and the id its status goes under."""

    name: str  # as it was found in the inbox
    signature: _Signature
    path: Path | None  # where it is now (None: removed, its content already accepted)
    entry: str  # an id of the entry itself (`entry_id`)
    rid: str = ""  # its status's id if refused: the request's own req_id, else the entry's

    def __post_init__(self) -> None:
        self.rid = self.rid or self.entry


class DropFolder:
    """Polls ``<root>/inbox`` and submits what it finds to ``queue``; writes status files."""

    def __init__(
        self,
        queue: JobQueue,
        root: str | os.PathLike[str],
        *,
        default_prompt: str = "",
        default_strength: float = DEFAULT_STRENGTH,
        audio_defaults: Mapping[str, Any] | None = None,
        interval: float = 0.5,
    ) -> None:
        self.queue = queue
        self.root = Path(root).resolve()
        self.inbox, self.outbox = self.root / "inbox", self.root / "outbox"
        self.accepted, self.rejected = self.inbox / "accepted", self.inbox / "rejected"
        self.default_prompt = default_prompt
        self.default_strength = default_strength
        self.audio_defaults = dict(audio_defaults or {})
        self.interval = interval
        self._seen: dict[str, _Signature] = {}  # entry name -> signature at the last poll
        self._stuck: dict[str, _Signature] = {}  # entries that could not be moved aside: not retried unchanged
        self._last_status: dict[str, tuple[float, str]] = {}
        self._paused = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        for folder in (self.inbox, self.outbox, self.accepted, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        # Dropped audio is read from inbox/accepted/: always an allowed source, whatever the roots.
        self.queue.allow_source_root(self.inbox)
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
        last = ""
        while not self._stop.wait(self.interval):
            try:
                self.poll()
                last = ""
            except Exception as err:  # noqa: BLE001 - the scan itself (the inbox gone, a full disk)
                if repr(err) != last:  # once per reason, not every half second
                    log.exception("drop folder poll failed")
                last = repr(err)

    # ------------------------------------------------------------------ picking entries up
    def poll(self) -> list[str]:
        """One scan of the inbox; -> the names of the entries handled (submitted or rejected)."""
        if not self.queue.health.ok:
            if not self._paused:
                log.warning(
                    "the render worker stopped (%s): dropped files wait in %s until a restart",
                    self.queue.health.reason,
                    self.inbox,
                )
            self._paused = True
            return []
        self._paused = False
        handled = []
        current: dict[str, _Signature] = {}
        for name in sorted(os.listdir(self.inbox)):
            if name.startswith(".") or name in (self.accepted.name, self.rejected.name):
                continue
            try:
                st = os.lstat(self.inbox / name)  # never follows a link, never opens: nothing can block
            except OSError:
                continue  # gone since the listing
            current[name] = signature = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)
            if self._seen.get(name) != signature or self._stuck.get(name) == signature:
                continue  # new or still growing: look again next time
            handled.append(name)
            self._take(_Drop(name, signature, self.inbox / name, entry_id(name, st.st_ino, st.st_mtime_ns)), st.st_mode)
            if self._stuck.get(name) != signature:
                current.pop(name)  # taken: a new file under this name waits its two polls again
        self._seen = current
        self._stuck = {n: s for n, s in self._stuck.items() if current.get(n) == s}
        return handled

    def _take(self, drop: _Drop, mode: int) -> None:
        """Hand one stable entry to its door. Whatever goes wrong stays with this entry."""
        try:
            what = kind_of(mode)
            suffix = Path(drop.name).suffix.lower()
            if what is not None:
                raise UsageError(
                    f"{drop.name} is {what}, not a regular file; it was moved aside unopened (drop the file itself)"
                )
            if suffix == ".json":
                self._take_json(drop)
            elif suffix in AUDIO_INPUT_SUFFIXES:
                self._take_audio(drop)
            else:
                raise UsageError(
                    f"{drop.name}: not a request (.json) or an audio file ({', '.join(AUDIO_INPUT_SUFFIXES)})"
                )
        except Exception as err:  # noqa: BLE001 - one file's trouble is reported on that file
            self._reject(drop, err)

    def _take_json(self, drop: _Drop) -> None:
        assert drop.path is not None
        data = read_request_file(drop.path)
        values = parse_json(data, drop.name)
        if not isinstance(values, dict):
            raise UsageError(f"{drop.name} must hold a JSON object of request keys")
        rid = values.pop("req_id", None)
        if rid is not None:
            drop.rid = check_id(rid)  # a client waits for <req_id>.status, refused or not
        if "source_path" in values and isinstance(values["source_path"], str):
            # Relative sources are relative to the drop folder, not to the server's cwd.
            values["source_path"] = str(self.root / values["source_path"])
        job_id = drop.rid if rid is not None else content_id(drop.name, hashlib.sha256(data).hexdigest())
        try:
            info = self.queue.submit(values, job_id, source="drop", out_dir=self.outbox)
        except DuplicateRequest:
            drop.rid = drop.entry  # the id is another job's: its status is not this file's to overwrite
            raise
        if info.duplicate:
            self._write_status(info)
        self._move(drop, self.accepted)

    def _take_audio(self, drop: _Drop) -> None:
        """Audio-to-audio with the folder's default prompt. The source moves to
        ``accepted/<id><suffix>`` first, so the job reads a file that stays put, a restart finds
        it by its id, and the same recording dropped again is recognised."""
        assert drop.path is not None
        rid = file_id(drop.path)
        target = self.accepted / f"{rid}{drop.path.suffix.lower()}"
        if os.path.lexists(target):  # the same content under the same name: a job has it already
            self._submit_audio(target, rid)  # refused, this copy (not the job's) is moved aside
            drop.path.unlink()
            return
        os.replace(drop.path, target)
        drop.path = target
        self._submit_audio(target, rid)

    def _submit_audio(self, source: Path, rid: str) -> None:
        values: dict[str, Any] = {"strength": self.default_strength, "name": rid.rsplit("-", 1)[0]}
        if self.default_prompt:
            values["prompt"] = self.default_prompt
        values.update(self.audio_defaults)
        values.update(self._folder_defaults())
        values["source_path"] = str(source)
        info = self.queue.submit(values, rid, source="drop", out_dir=self.outbox)
        if info.duplicate:
            self._write_status(info)

    def _folder_defaults(self) -> dict[str, Any]:
        """``<root>/defaults.json``: request keys for dropped audio files (prompt, strength, steps…),
        read at each pick-up so it can be edited while the server runs."""
        path = self.root / "defaults.json"
        try:
            what = kind_of(os.lstat(path).st_mode)
        except FileNotFoundError:
            return {}
        if what is not None:
            raise UsageError(f"{path} is {what}, not a regular file")
        values = parse_json(read_request_file(path), str(path))
        if not isinstance(values, dict):
            raise UsageError(f"{path} must hold a JSON object of request keys")
        return values

    def _move(self, drop: _Drop, folder: Path) -> Path | None:
        """Move the entry into ``folder`` under a free name; None (logged, and not retried while it
        stays unchanged) if it cannot be moved."""
        if drop.path is None:
            return None
        target = free_name(folder, drop.path.name)
        try:
            os.replace(drop.path, target)
        except OSError as err:
            log.error("could not move %s to %s: %s", drop.path, folder, err)
            if drop.path.parent == self.inbox:
                self._stuck[drop.name] = drop.signature
            return None
        drop.path = target
        return target

    def _reject(self, drop: _Drop, err: Exception) -> None:
        if isinstance(err, BridgeError):
            code, message = err.code, err.message
            log.warning("drop folder rejected %s: %s", drop.name, message)
        elif isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            code, message = DiskFull.code, f"disk full: {err.filename or self.root}"
            log.error("drop folder could not take %s: %s", drop.name, message)
        elif isinstance(err, OSError):
            code, message = UsageError.code, f"{drop.name} cannot be read or moved ({err.strerror or err})"
            log.warning("drop folder rejected %s: %s", drop.name, message)
        else:  # a bug of ours: its traceback, once, and the folder goes on
            code, message = classify(err)
            log.error("drop folder could not take %s", drop.name, exc_info=err)
        moved = self._move(drop, self.rejected)
        try:
            write_status(
                self.outbox,
                drop.rid,
                {
                    "id": drop.rid,
                    "state": "rejected",
                    "file": drop.name,
                    "request": str(moved) if moved else None,
                    "error": {"code": code, "message": message},
                },
            )
        except OSError as status_err:
            log.error("could not write the status of %s: %s", drop.name, status_err)

    def _recover(self) -> None:
        """Audio moved to accepted/ by a process killed before it submitted: submit it now. Its
        name is its id, so a job that was submitted is found and not rendered again."""
        for path in sorted(self.accepted.iterdir()):
            if not (path.suffix.lower() in AUDIO_INPUT_SUFFIXES and path.is_file() and not path.is_symlink()):
                continue
            try:
                rid = check_id(path.stem)
            except UsageError:
                continue  # not a name this folder gave
            if self.queue.get(rid) is not None:
                continue
            st = path.lstat()
            drop = _Drop(
                path.name,
                (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino),
                path,
                entry_id(path.name, st.st_ino, st.st_mtime_ns),
            )
            try:
                self._submit_audio(path, rid)
            except Exception as err:  # noqa: BLE001 - as for a fresh drop
                self._reject(drop, err)

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
        status: dict[str, Any] = {
            "id": job.id,
            "state": job.state,
            "stage": job.stage,
            "fraction": round(job.fraction, 4),
            "position": job.position,
            "files": [f.path for f in job.files],
        }
        if job.state in (FAILED, CANCELLED):
            status["error"] = {"code": job.error_code, "message": job.error}
        if job.state == DONE:
            status["elapsed"] = round(job.elapsed, 3)
            if any(f.asked_bpm is not None for f in job.files):  # one per file, as "files"
                status["tempo_check"] = [f.tempo() for f in job.files]
        try:
            write_status(self.outbox, job.id, status)
        except OSError as err:
            log.error("could not write the status of %s: %s", job.id, err)
