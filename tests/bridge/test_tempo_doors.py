"""The tempo check at every door: the OSC file/done replies, the drop folder's status, the CLI's
summary line, and `snap` as a request key (engine/tempo_check.py does the hearing)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.dropfolder import DropFolder
from bridge.jobs import FileInfo, tempo_text
from bridge.naming import sidecar_path
from bridge.osc import OscServer
from bridge.queue import JobQueue
from bridge.requests import Limits, parse_request

from .conftest import Client, wait_for

pytest.importorskip("librosa")

# longplay-mini keeps its tempo: 6 s of house at 124 BPM, 4 steps, heard within a few %.
TEMPO = {"prompt": "house, drums", "bpm": 124.0, "seconds": 6.0, "seed": 3, "steps": 4}


def test_osc_replies_and_the_drop_status_carry_the_tempo_check(
    make_queue: Callable[..., JobQueue], client_for: Callable[[OscServer], Client], tmp_path: Path
) -> None:
    queue = make_queue(model="longplay-mini")
    server = OscServer(queue, "127.0.0.1", 0)
    server.start()
    folder = DropFolder(queue, tmp_path / "drop", interval=0.05)
    try:
        c = client_for(server)
        pairs = [x for k, v in TEMPO.items() for x in (k, v)]
        c.send("/longplay/render", "t1", *pairs, "snap", 1)
        got = c.recv_until("t1")
        assert "checking" in [args[2] for a, args in got if a == "/longplay/progress"]
        [file] = [args for a, args in got if a == "/longplay/file"]
        address, done = got[-1]
        assert address == "/longplay/done" and len(done) == 6 and len(file) == 8
        check = json.loads(sidecar_path(Path(file[2])).read_text())["tempo_check"]
        assert check["asked_bpm"] == 124.0 and ("snapped" in check) != ("not_snapped" in check)
        measured = (check["bpm"], check["first_downbeat_s"], check["confidence"])
        assert done[3:] == pytest.approx(measured, rel=1e-5) and file[5:] == pytest.approx(measured, rel=1e-5)
        assert done[3] == pytest.approx(124.0, rel=0.03) and done[5] > 0.3

        c.send("/longplay/render", "t2", "prompt", "pads", "seconds", 1.0, "steps", 2)  # no tempo: zeros
        address, done = c.recv_until("t2")[-1]
        assert address == "/longplay/done" and done[3:] == [0.0, 0.0, 0.0]

        c.send("/longplay/render", "t3", "prompt", "pads", "seconds", 1.0, "snap", 1)
        address, err = c.recv_until("t3")[-1]
        assert address == "/longplay/error" and err[1] == 400 and "snap needs a tempo" in err[2]

        folder.start()
        (folder.inbox / "d.json").write_text(json.dumps({**TEMPO, "req_id": "d1", "snap": True}))
        path = folder.outbox / "d1.status"

        def done_status() -> dict[str, Any] | None:
            try:
                status = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
            return status if status["state"] == "done" else None

        status: dict[str, Any] = wait_for(done_status, what="d1.status to say done")
        [heard] = status["tempo_check"]
        assert heard["asked_bpm"] == 124.0 and heard["bpm"] == pytest.approx(124.0, rel=0.03)
        assert (
            heard["verdict"] == json.loads(sidecar_path(Path(status["files"][0])).read_text())["tempo_check"]["verdict"]
        )
    finally:
        folder.stop()
        server.stop()


def test_the_cli_prints_the_tempo_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.cli import main

    out = tmp_path / "take.wav"
    argv = ["generate", "house, drums", "--bpm", "124", "--seconds", "6", "--steps", "4", "--seed", "3"]
    assert main([*argv, "--snap", "--model", "longplay-mini", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out.resolve())  # stdout: the paths only
    assert "take.wav: " in captured.err and "BPM measured (asked 124)" in captured.err
    assert json.loads(sidecar_path(out).read_text())["snap"] is True

    assert main(["generate", "ambient pads", "--seconds", "2", "--snap", "--out", str(tmp_path / "x.wav")]) == 2
    assert "--snap needs a tempo" in capsys.readouterr().err


def test_snap_is_a_flag_that_needs_a_tempo() -> None:
    limits = Limits(max_seconds=60.0)
    assert parse_request({"prompt": "house, 124 BPM", "snap": 1}, limits=limits, out_dir=".").request.snap
    assert not parse_request({"prompt": "house", "bpm": 120, "snap": False}, limits=limits, out_dir=".").request.snap
    for bad, says in (
        ({"prompt": "pads", "snap": 1}, "snap needs a tempo"),
        ({"prompt": "x", "snap": 2}, "snap must be"),
    ):
        with pytest.raises(Exception, match=says):
            parse_request(bad, limits=limits, out_dir=".")


def test_the_line_people_read() -> None:
    recipe = {
        "tempo_check": {
            "asked_bpm": 124.0,
            "bpm": 123.97,
            "first_downbeat_s": 0.021,
            "confidence": 0.83,
            "verdict": "on tempo",
            "snapped": {"from_bpm": 121.6, "ratio": 1.0197},
        }
    }
    f = FileInfo.of(1, "/x.wav", 8.0, 3, recipe)
    line = "124.0 BPM measured (asked 124), downbeat +0.02 s, confidence 0.83: on tempo (snapped from 121.6)"
    assert f.tempo_text() == tempo_text(recipe["tempo_check"]) == line
    assert f.tempo_args() == (123.97, 0.021, 0.83)
    plain = FileInfo.of(1, "/x.wav", 8.0, 3, {})
    assert plain.tempo() is None and plain.tempo_text() == "" and plain.tempo_args() == (0.0, 0.0, 0.0)
    # A journaled file from before the check still loads.
    old_row: dict[str, Any] = {"variation": 1, "path": "/x.wav", "seconds": 1.0, "seed": 2}
    assert FileInfo(**old_row).tempo() is None
