"""The job queue: journaled before acknowledged, idempotent ids, bounded, cancellable, recoverable."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from bridge.errors import DuplicateRequest, QueueFull, SourceNotFound, UnknownJob
from bridge.journal import Journal
from bridge.queue import JobEvent, JobQueue, classify
from bridge.requests import Limits, parse_request
from engine import AudioInputError, AudioNotFound, RenderCancelled, RenderRequest, RequestError, RequestTooLong

from .conftest import wait_for

MakeQueue = Callable[..., JobQueue]
QUICK = {"prompt": "pads", "seconds": 0.5, "steps": 2}
SLOW = {"prompt": "drone", "seconds": 0.5, "steps": 400}  # cancelled long before it ends


def _done(queue: JobQueue, job_id: str) -> Any:
    return wait_for(lambda: (j := queue.get(job_id)) is not None and j.is_final and j, what=f"{job_id} to finish")


def test_a_request_is_journaled_before_it_is_acknowledged(make_queue: MakeQueue, tmp_path: Path) -> None:
    seen_in_journal: list[str] = []

    def listener(event: JobEvent) -> None:
        if event.kind == "accepted":  # another connection sees the row when the door acknowledges
            db = sqlite3.connect(tmp_path / "jobs.sqlite3")
            seen_in_journal.append(db.execute("SELECT state FROM jobs WHERE id = ?", (event.job.id,)).fetchone()[0])
            db.close()

    queue = make_queue()
    queue.subscribe(listener)
    info = queue.submit(QUICK, "j1", source="osc")
    assert info.state == "queued" and info.position == 0 and not info.duplicate
    assert seen_in_journal == ["queued"]
    done = _done(queue, "j1")
    assert done.state == "done" and len(done.files) == 1 and done.elapsed > 0
    assert sf.info(done.files[0].path).frames == 22050
    db = sqlite3.connect(tmp_path / "jobs.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_events_fan_out_to_every_listener_until_unsubscribed(make_queue: MakeQueue) -> None:
    queue = make_queue()
    a: list[str] = []
    b: list[str] = []
    queue.subscribe(lambda e: a.append(e.kind))
    unsubscribe_b = queue.subscribe(lambda e: b.append(e.kind))
    queue.subscribe(lambda e: 1 / 0)  # a broken listener is logged; the others and the job go on
    queue.submit(QUICK, "fan")
    _done(queue, "fan")
    assert a == b and a[0] == "accepted" and a[-2:] == ["file", "done"] and "progress" in a
    unsubscribe_b()
    queue.submit(QUICK, "fan2")
    _done(queue, "fan2")
    assert len(a) > len(b)


def test_known_ids_answer_with_their_state_and_conflicts_are_409(make_queue: MakeQueue) -> None:
    queue = make_queue()
    first = queue.submit({**QUICK, "seed": -1}, "dup")
    again = queue.submit({**QUICK, "seed": -1}, "dup")
    assert again.duplicate and again.id == "dup" and again.spec.request.seed == first.spec.request.seed
    with pytest.raises(DuplicateRequest) as err:
        queue.submit({**QUICK, "prompt": "other"}, "dup")
    assert err.value.code == 409
    _done(queue, "dup")
    assert queue.submit({**QUICK, "seed": -1}, "dup").state == "done"
    assert len(list(queue.out_dir.glob("*.wav"))) == 1  # one render, not two
    # In-process doors (GUI) submit RenderRequests; a random seed is resolved once, at the door.
    req = RenderRequest(prompt="gui", seconds=0.5, steps=2)
    r1 = queue.submit(req, "gui-1", source="gui")
    assert r1.spec.request.seed >= 0 and queue.submit(req, "gui-1", source="gui").duplicate


def test_the_queue_is_bounded_and_cancel_works_queued_or_running(make_queue: MakeQueue) -> None:
    queue = make_queue(limit=2)
    queue.submit(SLOW, "run")
    wait_for(lambda: queue.get("run").stage == "sampling", what="sampling")
    assert [queue.submit(QUICK, f"q{i}").position for i in range(2)] == [1, 2]
    with pytest.raises(QueueFull, match="queue is full") as err:
        queue.submit(QUICK, "q2")
    assert err.value.code == 503 and queue.get("q2") is None
    assert queue.cancel("q0").state == "cancelled"
    assert queue.get("q1").position == 1
    queue.cancel("run")
    assert _done(queue, "run").state == "cancelled" and queue.get("run").error_code == 499
    assert _done(queue, "q1").state == "done"
    with pytest.raises(UnknownJob):
        queue.cancel("never")
    assert queue.cancel("q1").state == "done"  # finished jobs are left alone
    assert [j.id for j in queue.list(10)] == ["q1", "q0", "run"]


def test_forget_removes_finished_jobs_only(make_queue: MakeQueue) -> None:
    """The GUI's history delete: a finished job leaves the journal, a live one stays."""
    queue = make_queue()
    queue.submit(SLOW, "live")
    wait_for(lambda: queue.get("live").stage == "sampling", what="sampling")
    assert not queue.forget("live") and queue.get("live") is not None
    queue.cancel("live")
    _done(queue, "live")
    assert queue.forget("live") and queue.get("live") is None and not queue.forget("live")
    assert queue.model_defaults["steps"] >= 1


def test_a_stopped_server_leaves_its_running_job_queued(make_queue: MakeQueue, tmp_path: Path) -> None:
    queue = make_queue()
    queue.submit(SLOW, "interrupted")
    wait_for(lambda: queue.get("interrupted").stage == "sampling", what="sampling")
    queue.stop()
    row = Journal(tmp_path / "jobs.sqlite3").get("interrupted")
    assert row is not None and row["state"] == "queued" and row["attempts"] == 0


def test_restart_reruns_unfinished_jobs_reusing_complete_files(make_queue: MakeQueue, tmp_path: Path) -> None:
    """What a process killed mid-write leaves: a running row, v1 complete under its planned name,
    a temp file of v2. The next start finishes the job without rewriting v1 or leaving the temp."""
    out = tmp_path / "out"
    out.mkdir()
    journal = Journal(tmp_path / "jobs.sqlite3")
    spec = parse_request({**QUICK, "variations": 2, "seed": 5, "name": "crash"}, limits=Limits(), out_dir=out)
    journal.insert("crashed", source="osc", fingerprint="f", spec=spec.to_json())
    v1, v2 = out / "crash_s5_v1.wav", out / "crash_s6_v2.wav"
    sf.write(str(v1), [[0.0, 0.0]] * 10, 44100)  # stands for the complete file of the first attempt
    (out / ".crash_s6_v2.abc123.part").write_bytes(b"RIFF half a file")
    journal.update("crashed", state="running", attempts=1, planned=[str(v1), str(v2)])
    journal.insert("poison", source="osc", fingerprint="g", spec=spec.to_json())
    journal.update("poison", state="running", attempts=3)
    journal.close()

    queue = make_queue()
    done = _done(queue, "crashed")
    assert done.state == "done" and [f.path for f in done.files] == [str(v1), str(v2)]
    assert sf.info(str(v1)).frames == 10 and sf.info(str(v2)).frames == 22050
    assert not list(out.glob("*.part")) and (out / "crash_s5_v1.json").exists()
    poison = queue.get("poison")
    assert poison.state == "failed" and poison.error_code == 500 and "3 times" in poison.error
    assert [j.id for j in queue.list()] == ["poison", "crashed"]  # the history view reads the journal


def test_a_journal_from_another_version_is_refused(tmp_path: Path) -> None:
    from bridge.journal import JournalError

    db = sqlite3.connect(tmp_path / "future.sqlite3")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(JournalError, match="version 99"):
        Journal(tmp_path / "future.sqlite3")


def test_outputs_are_never_overwritten(make_queue: MakeQueue) -> None:
    queue = make_queue()
    for rid in ("a", "b"):
        queue.submit({**QUICK, "seed": 3, "name": "same"}, rid)
    paths = [Path(_done(queue, rid).files[0].path).name for rid in ("a", "b")]
    assert paths == ["same_s3_v1.wav", "same_s3_v1-1.wav"]


def test_failures_carry_the_designed_codes(make_queue: MakeQueue, tmp_path: Path) -> None:
    queue = make_queue()
    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage that is not audio")
    queue.submit({"prompt": "x", "source_path": str(fake), "strength": 0.5, "seconds": 0.5, "steps": 2}, "bad")
    failed = _done(queue, "bad")
    assert failed.state == "failed" and failed.error_code == 400 and "fake.wav" in failed.error
    with pytest.raises(SourceNotFound):
        queue.submit({"prompt": "x", "source_path": str(tmp_path / "gone.wav"), "strength": 0.5}, "gone")


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 2.00 GiB"), 503),
        (MemoryError(), 503),
        (RequestTooLong("seconds 90 is longer than this model's window of 47.55 s"), 413),
        (RequestError("steps must be between 1 and 500 (got 0)"), 400),
        (AudioNotFound("audio file not found: /x.wav"), 404),
        (AudioInputError("x.wav is not a readable audio file"), 400),
        (RenderCancelled("render cancelled"), 499),
        (OSError(28, "No space left on device", "/out/x.wav"), 503),  # "disk full: /out/x.wav"
        (OSError(13, "Permission denied", "/out/x.wav"), 500),
        (KeyError("boom"), 500),
    ],
)
def test_engine_errors_map_to_osc_codes(err: BaseException, code: int) -> None:
    got, message = classify(err)
    assert got == code and message and "\n" not in message


def test_submit_is_thread_safe(make_queue: MakeQueue) -> None:
    queue = make_queue(limit=64)
    queue.submit(SLOW, "hold")  # keeps the worker busy so the others stay queued
    errors: list[BaseException] = []

    def spam(n: int) -> None:
        try:
            for i in range(8):
                queue.submit(QUICK, f"t{n}-{i}")
                queue.submit(QUICK, f"t{n}-{i}")  # and a duplicate, racing the other threads
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=spam, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and queue.waiting == 32
    positions = sorted(queue.get(f"t{n}-{i}").position for n in range(4) for i in range(8))
    assert positions == list(range(1, 33))
    for job in queue.list(40):
        queue.cancel(job.id)
