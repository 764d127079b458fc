"""The worker cannot die unseen (issue 17, finding 14). A failure inside one job fails that job with
its reason; a failure of the worker itself (the journal cannot be written) stops new requests with
503 and the reason, is logged and shows in ``JobQueue.health``; nothing journaled is lost.

Disk-full comes from an ``OSError(ENOSPC)`` injected at the journal's writes (below SQLite's
connection, so the journal's own error handling runs), from SQLite's page limit (a real
SQLITE_FULL), and for job outputs from a real 64 kB tmpfs in a private mount namespace.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import BridgeError
from bridge.journal import Journal
from bridge.queue import JobQueue

from .conftest import WAIT, wait_for

MakeQueue = Callable[..., JobQueue]
QUICK = {"prompt": "pads", "seconds": 0.5, "steps": 2}
ROOT = Path(__file__).resolve().parents[2]


class _FullDisk:
    """Stands in for the journal's SQLite connection: reads pass through; once ``armed``, every
    write fails as a full disk makes it fail."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.armed = False

    def execute(self, sql: str, *args: Any) -> Any:
        if self.armed and sql.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_full_disk_under_the_journal_stops_the_worker_visibly(
    make_queue: MakeQueue, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobs.sqlite3"
    journal = Journal(path)
    disk = _FullDisk(journal._db)
    journal._db = disk  # type: ignore[assignment]
    queue = make_queue(journal=journal)
    assert queue.health.ok and queue.health.state == "ready"

    # The door's own insert fails: a clear 503, not an OSError (nor a 500).
    disk.armed = True
    with pytest.raises(BridgeError) as at_door:
        queue.submit(QUICK, "at-the-door")
    assert at_door.value.code == 503 and at_door.value.message == f"disk full: {path}"
    assert queue.health.ok  # the door refused one request; the worker is fine
    disk.armed = False

    # The worker's write fails (marking the job running): the render thread used to die here,
    # and later requests were accepted and never ran.
    real = disk.execute

    def updates_fail(sql: str, *args: Any) -> Any:
        if sql.lstrip().upper().startswith("UPDATE"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(sql, *args)

    disk.execute = updates_fail  # type: ignore[method-assign]
    caplog.set_level(logging.ERROR, logger="longplay")
    queue.submit(QUICK, "first")
    health = wait_for(lambda: not queue.health.ok and queue.health, what="the worker's failure to show")
    assert health.state == "failed" and health.reason is not None and f"disk full: {path}" in health.reason
    assert any("disk full" in r.getMessage() for r in caplog.records)
    with pytest.raises(BridgeError) as refused:
        queue.submit(QUICK, "second")
    assert refused.value.code == 503 and f"disk full: {path}" in refused.value.message
    assert queue.get("second") is None
    queue.stop()

    # Nothing journaled is lost: with space again, a restart runs the job.
    disk.execute = real  # type: ignore[method-assign]
    queue = make_queue(journal=journal)
    done = wait_for(lambda: (j := queue.get("first")) is not None and j.is_final and j, what="first to finish")
    assert done.state == "done" and queue.health.ok


def test_sqlite_running_out_of_room_is_disk_full_not_a_crash(make_queue: MakeQueue, tmp_path: Path) -> None:
    """A real SQLITE_FULL (the database may not grow past its page limit) at the door."""
    queue = make_queue(limit=512)
    journal = queue.journal
    pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
    journal._db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(BridgeError) as err:
        for i in range(400):  # each row holds a whole spec: the table outgrows its pages soon
            queue.submit({**QUICK, "prompt": f"pads {i} " + "x" * 900}, f"fill-{i}")
    assert err.value.code == 503 and err.value.message == f"disk full: {journal.path}"
    assert queue.health.ok  # the door refused one request; the worker is fine


_OUT_FULL = """
import json, sys, time
from bridge.queue import JobQueue
model, journal, small, roomy = sys.argv[1:5]
queue = JobQueue(journal, model=model, device="cpu", out_dir=small)
queue.start()
queue.submit({"prompt": "pads", "seconds": 2.0, "steps": 2, "format": "wav32f"}, "big")
queue.submit({"prompt": "pads", "seconds": 0.5, "steps": 2}, "elsewhere", out_dir=roomy)
deadline = time.monotonic() + 120
while time.monotonic() < deadline and not all(queue.get(i).is_final for i in ("big", "elsewhere")):
    time.sleep(0.05)
jobs = {i: queue.get(i) for i in ("big", "elsewhere")}
print(json.dumps({"health": queue.health.state,
                  **{i: [j.state, j.error_code, j.error] for i, j in jobs.items()}}))
queue.stop()
"""


def test_a_full_output_disk_fails_that_job_with_disk_full(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A job whose output does not fit fails with "disk full: <path>" (not libsndfile's "System
    error."), and the worker goes on with the next job."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) for a private tmpfs")
    small, roomy = tmp_path / "small", tmp_path / "roomy"
    small.mkdir()
    roomy.mkdir()
    script = (
        f'mount -t tmpfs -o size=64k tmpfs "{small}" && exec "{sys.executable}" -c "$0" '
        f'"{tiny_model_dir}" "{tmp_path / "jobs.sqlite3"}" "{small}" "{roomy}"'
    )
    flags = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        ["unshare", *flags, "sh", "-c", script, _OUT_FULL],
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0 and "mount" in proc.stderr and "Traceback" not in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    state, code, message = got["big"]
    assert state == "failed" and code == 503 and message.startswith(f"disk full: {small}"), got
    assert got["elsewhere"][0] == "done" and got["health"] == "ready", got


def test_a_stopped_worker_shows_in_osc_status_and_new_requests_get_503(osc: Any, client_for: Any) -> None:
    """`/longplay/status` with no id answers `/longplay/server` with the worker's state and reason;
    after the worker failed (disk full under the journal), a render is refused with 503 naming it."""
    server, queue = osc()
    client = client_for(server)
    client.send("/longplay/status")
    assert client.recv() == ("/longplay/server", ["", "ready", 0, ""])
    real = queue.journal._db
    disk = _FullDisk(real)
    queue.journal._db = disk  # type: ignore[assignment]

    def updates_fail(sql: str, *args: Any) -> Any:
        if sql.lstrip().upper().startswith("UPDATE"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real.execute(sql, *args)

    disk.execute = updates_fail  # type: ignore[method-assign]
    client.send("/longplay/render", "r1", "prompt", "pads", "seconds", 0.5, "steps", 2)
    wait_for(lambda: not queue.health.ok, what="the worker's failure")
    client.send("/longplay/status")
    address, args = client.recv()
    while address != "/longplay/server":  # r1's own replies may come first
        address, args = client.recv()
    assert args[1] == "failed" and "disk full" in args[3]
    client.send("/longplay/render", "r2", "prompt", "pads", "seconds", 0.5, "steps", 2)
    [(address, args)] = client.recv_until("r2")
    assert address == "/longplay/error" and args[1] == 503 and "disk full" in args[2]
    queue.journal._db = real  # type: ignore[assignment]
