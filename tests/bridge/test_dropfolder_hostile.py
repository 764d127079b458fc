"""The watched folder against poison and unlucky files (issue 17, findings 8-11): whatever goes
wrong with one file stays with that file (a status with the reason, the file moved aside under a
unique, length-safe name) and the folder goes on; non-regular files are never opened; dropped
audio is allowed under ``--source-root``. Real files, a real worker thread."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from bridge.dropfolder import DropFolder
from bridge.serve import ServeOptions, Server

from . import test_dropfolder
from .conftest import wait_for

drop = test_dropfolder.drop  # the fixture: a started DropFolder on a real queue
_status = test_dropfolder._status
Drop = Callable[..., DropFolder]
# Long enough for a render on a loaded 2-core box, short enough that a stuck folder fails fast.
PATIENCE = 30.0
VALID = {"prompt": "pads", "seconds": 0.5, "steps": 2}


def _statuses(folder: DropFolder) -> dict[str, dict[str, Any]]:
    out = {}
    for path in folder.outbox.glob("*.status"):
        try:
            out[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # being replaced right now
    return out


def _rejected_with(folder: DropFolder, needle: str) -> dict[str, Any]:
    """The rejected status whose message contains ``needle`` (waited for)."""

    def find() -> dict[str, Any] | None:
        for status in _statuses(folder).values():
            if status["state"] == "rejected" and needle in status["error"]["message"]:
                return status
        return None

    return wait_for(find, PATIENCE, f"a rejected status mentioning {needle!r}; have {_statuses(folder)}")


def _wav(path: Path, seconds: float = 0.5, rate: int = 22050) -> Path:
    sf.write(str(path), np.random.default_rng(0).uniform(-0.3, 0.3, (int(seconds * rate), 1)).astype(np.float32), rate)
    return path


def test_poison_requests_stay_with_their_file_and_the_folder_goes_on(
    drop: Drop, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 8: a 5,000-digit integer, a JSON nested 100,000 deep and the same 254-character
    name dropped twice each used to stop the folder (a traceback every poll, nothing else taken)."""
    caplog.set_level(logging.WARNING, logger="longplay")
    folder = drop()
    long_name = "x" * 249 + ".json"  # 254 characters: the name with "-1" appended no longer fits
    (folder.inbox / "digits.json").write_text('{"prompt": "p", "seed": ' + "9" * 5000 + "}")
    (folder.inbox / "deep.json").write_text("[" * 100_000 + "]" * 100_000)  # 200 kB: refused by its size
    (folder.inbox / "deeper.json").write_text("[" * 30_000 + "]" * 30_000)  # 60 kB: parsed, too deep
    (folder.inbox / long_name).write_text(json.dumps({**VALID, "seed": 1}))
    (folder.inbox / "aaa-first.json").write_text("{broken")  # sorts first: a poll goes past it
    wait_for(lambda: not (folder.inbox / long_name).exists(), PATIENCE, "the long name to be taken")
    (folder.inbox / long_name).write_text(json.dumps({**VALID, "seed": 1}))  # the same name again
    (folder.inbox / ("y" * 249 + ".json")).write_text("{bad")
    wait_for(lambda: not (folder.inbox / ("y" * 249 + ".json")).exists(), PATIENCE, "the bad long name to go")
    (folder.inbox / ("y" * 249 + ".json")).write_text("{bad, again")  # and a bad one twice
    (folder.inbox / "zz-valid.json").write_text(json.dumps({**VALID, "req_id": "after-poison"}))

    assert _status(folder, "after-poison")["state"] == "done"
    digits = _rejected_with(folder, "digits")
    assert digits["error"]["code"] == 400 and "digits.json" in digits["error"]["message"]
    assert _rejected_with(folder, "deep.json")["error"]["code"] == 400
    deeper = _rejected_with(folder, "nested")
    assert deeper["error"]["code"] == 400 and "deeper.json" in deeper["error"]["message"]
    wait_for(lambda: not [p for p in folder.inbox.iterdir() if p.is_file()], PATIENCE, "an empty inbox")
    rejected = sorted(p.name for p in folder.rejected.iterdir())
    assert {"digits.json", "deep.json", "deeper.json", "aaa-first.json"} <= set(rejected)
    assert len([n for n in rejected if n.startswith("yyy")]) == 2  # both kept, under two names
    assert len([n for n in os.listdir(folder.accepted) if n.startswith("xxx")]) == 2
    assert all(len(os.fsencode(n)) <= 255 for n in rejected + os.listdir(folder.accepted))
    # Each poison file is reported once, not once per poll.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage()[:200] for r in caplog.records]


def test_a_broken_defaults_file_leaves_a_status_for_the_dropped_audio(drop: Drop, tmp_path: Path) -> None:
    """Finding 9: every file that leaves inbox/ leaves a status, even when defaults.json is poison."""
    folder = drop(default_prompt="drums")
    (folder.root / "defaults.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder.inbox / "take.wav").write_bytes(_wav(tmp_path / "take.wav").read_bytes())
    status = _rejected_with(folder, "defaults.json")
    assert status["error"]["code"] == 400 and status["file"] == "take.wav", status
    assert not (folder.inbox / "take.wav").exists() and not list(folder.accepted.glob("*.wav"))
    assert [p.suffix for p in folder.rejected.iterdir()] == [".wav"]
    # Mended while the server runs: the next drop renders.
    (folder.root / "defaults.json").write_text(json.dumps({"steps": 2, "strength": 0.5}))
    (folder.inbox / "take2.wav").write_bytes((tmp_path / "take.wav").read_bytes())
    done = wait_for(lambda: [s for s in _statuses(folder).values() if s["state"] == "done"], PATIENCE, "a render")
    assert len(done) == 1


def test_fifos_sockets_and_folders_get_a_status_and_are_never_opened(drop: Drop, tmp_path: Path) -> None:
    """Finding 10: a FIFO (opening it for reading would block the watcher forever), a socket and a
    folder in inbox/ used to be ignored forever; each is moved aside with a status."""
    folder = drop()
    os.mkfifo(folder.inbox / "pipe.json")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock_path = folder.inbox / "s.wav"
    if len(os.fsencode(sock_path)) >= 104:  # AF_UNIX path limit
        pytest.skip("the temporary folder's path is too long for a unix socket")
    sock.bind(str(sock_path))
    (folder.inbox / "takes").mkdir()
    (folder.inbox / "takes" / "a.wav").write_bytes(_wav(tmp_path / "a.wav").read_bytes())
    (folder.inbox / "later.json").write_text(json.dumps({**VALID, "req_id": "after-fifo"}))
    try:
        assert _status(folder, "after-fifo")["state"] == "done"
        for name in ("pipe.json", "s.wav", "takes"):
            status = _rejected_with(folder, name)
            assert status["error"]["code"] == 400 and "not a regular file" in status["error"]["message"], status
        assert sorted(p.name for p in folder.rejected.iterdir()) == ["pipe.json", "s.wav", "takes"]
        assert (folder.rejected / "takes" / "a.wav").is_file()  # moved whole, not rendered
    finally:
        sock.close()


def test_dropped_audio_is_allowed_when_source_roots_are_set(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Finding 11: `serve --source-root DIR --drop D` rejected every dropped audio file, since the
    inbox is not under DIR. The inbox is always an allowed root; other places stay refused."""
    roots, drop_dir = tmp_path / "sources", tmp_path / "drop"
    roots.mkdir()
    server = Server(
        ServeOptions(
            port=0,
            drop=str(drop_dir),
            model=str(tiny_model_dir),
            out=str(tmp_path / "out"),
            device="cpu",
            source_roots=(str(roots),),
            prompt="drums",
        )
    )
    server.start()
    try:
        assert server.drop is not None
        folder = server.drop
        (folder.root / "defaults.json").write_text(json.dumps({"steps": 2}))
        (folder.inbox / "take.wav").write_bytes(_wav(tmp_path / "take.wav").read_bytes())
        done = wait_for(
            lambda: [s for s in _statuses(folder).values() if s["state"] in ("done", "rejected", "failed")],
            PATIENCE,
            "the dropped audio's status",
        )
        assert [s["state"] for s in done] == ["done"], done
        # A request naming a file outside the roots (and outside the inbox) is still refused.
        outside = _wav(tmp_path / "outside.wav")
        (folder.inbox / "req.json").write_text(
            json.dumps({"req_id": "outside", "prompt": "p", "steps": 2, "source_path": str(outside), "strength": 0.5})
        )
        status = _status(folder, "outside", "rejected")
        assert "outside the allowed source folders" in status["error"]["message"]
    finally:
        server.stop()


def test_a_file_that_cannot_be_moved_aside_is_reported_once(
    make_queue: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """If even moving a file aside fails, it gets its status and one log line, and is not retried
    while it stays as it is (polled by hand; rejected/ is a file here, so the move fails even as root)."""
    caplog.set_level(logging.WARNING, logger="longplay")
    folder = DropFolder(make_queue(), tmp_path / "drop")
    for sub in (folder.inbox, folder.outbox, folder.accepted):
        sub.mkdir(parents=True, exist_ok=True)
    folder.rejected.write_text("not a folder")
    (folder.inbox / "bad.json").write_text("{bad")
    assert folder.poll() == [] and folder.poll() == ["bad.json"]
    assert [folder.poll() for _ in range(3)] == [[], [], []]
    assert (folder.inbox / "bad.json").exists()
    [status] = _statuses(folder).values()
    assert status["state"] == "rejected" and status["request"] is None
    assert len([r for r in caplog.records if "could not move" in r.getMessage()]) == 1
    (folder.inbox / "bad.json").write_text("{worse")  # changed: looked at again
    assert folder.poll() == [] and folder.poll() == ["bad.json"]
