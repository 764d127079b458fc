"""Loops, extend and replace at every door (issue 22): the CLI, OSC and the drop folder take the same
keys (bridge/edits.py, bridge/requests.py), write new files that never overwrite their source, and
answer a bad request with an error naming the key."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import soundfile as sf

from bridge.cli import main
from bridge.dropfolder import DropFolder
from bridge.writer import parse_riff

from .conftest import wait_for

BAR = round(4 * 60 / 240 * 44100)  # one bar at 240 BPM: 44,100 samples


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_source(model: Path, folder: Path) -> Path:
    argv = ["generate", "dusty pads", "--bpm", "240", "--bars", "1", "--seed", "5", "--steps", "2"]
    assert main([*argv, "--model", str(model), "--device", "cpu", "--out", str(folder / "take.wav")]) == 0
    return folder / "take.wav"


def test_cli_loop_extend_and_replace(tiny_model_dir: Path, tmp_path: Path, capsys: Any) -> None:
    model = ["--model", str(tiny_model_dir), "--device", "cpu"]
    argv = ["generate", "dusty pads", "--bpm", "240", "--bars", "2", "--loop", "--steps", "2", "--seed", "1"]
    assert main([*argv, *model, "--out", str(tmp_path / "loop.wav")]) == 0
    smpl = struct.unpack("<9I6I", parse_riff(tmp_path / "loop.wav")[b"smpl"])
    assert smpl[7] == 1 and (smpl[11], smpl[12]) == (0, 2 * BAR - 1)  # one loop: start 0, end the last sample
    assert json.loads((tmp_path / "loop.json").read_text())["fade_ms"] == 0.0

    source = make_source(tiny_model_dir, tmp_path)
    before = digest(source)
    capsys.readouterr()
    assert main(["extend", str(source), "--bars", "1", "--steps", "2", "--seed", "2", *model]) == 0
    [extended] = [Path(p) for p in capsys.readouterr().out.split() if p.endswith(".wav")]
    assert extended.parent == source.parent and extended != source and digest(source) == before
    assert sf.info(str(extended)).frames == 2 * BAR
    recipe = json.loads(extended.with_suffix(".json").read_text())
    assert recipe["parent"] == {"file": str(source), "sha256": before}
    assert recipe["prompt"] == "dusty pads" and recipe["bpm"] == 240  # from the parent's recipe

    assert main(["replace", str(extended), "--from-bar", "2", "--to-bar", "2", "--steps", "2", *model]) == 0
    assert main(["replace", str(source), "--from-bar", "1", "--to-bar", "1", "--out", str(source), *model]) == 2
    assert "must not be FILE itself" in capsys.readouterr().err
    assert main(["replace", str(source), "--from-bar", "2", "--to-bar", "3", "--steps", "2", *model]) == 2
    assert "past the source's end" in capsys.readouterr().err
    assert digest(source) == before


def test_osc_extend_replace_and_loop(tiny_model_dir: Path, tmp_path: Path, osc: Any, client_for: Any) -> None:
    source = make_source(tiny_model_dir, tmp_path)
    server, _ = osc(out_dir=tmp_path / "osc")
    client = client_for(server)
    client.send("/longplay/extend", "ext", str(source), 1, "steps", 2, "seed", 3)
    got = client.recv_until("ext")
    assert got[-1][0] == "/longplay/done", got
    file = Path(next(args[2] for address, args in got if address == "/longplay/file"))
    assert sf.info(str(file)).frames == 2 * BAR and file.parent == tmp_path / "osc"
    assert json.loads(file.with_suffix(".json").read_text())["parent"]["file"] == str(source)

    client.send("/longplay/replace", "rep", str(source), 1)
    assert client.recv_until("rep")[-1][1][1:] == [
        400,
        "/longplay/replace needs req_id, source_path, from_bar, to_bar; to_bar is missing",
    ]
    client.send("/longplay/render", "bad", "prompt", "x", "edit", "extend")
    assert "unknown argument 'edit'" in client.recv_until("bad")[-1][1][2]  # edits have their own addresses
    client.send("/longplay/render", "lp", "prompt", "x", "bpm", 240, "bars", 1, "loop", 1, "steps", 2)
    got = client.recv_until("lp")
    assert got[-1][0] == "/longplay/done", got
    file = Path(next(args[2] for address, args in got if address == "/longplay/file"))
    assert b"smpl" in parse_riff(file)
    client.send("/longplay/render", "lp2", "prompt", "x", "seconds", 1.0, "loop", 1)
    assert "loop needs bars and a bpm" in client.recv_until("lp2")[-1][1][2]


def test_drop_folder_replace(tiny_model_dir: Path, tmp_path: Path, make_queue: Any) -> None:
    source = make_source(tiny_model_dir, tmp_path)
    folder = DropFolder(make_queue(journal=tmp_path / "drop.sqlite3"), tmp_path / "drop", interval=0.05)
    folder.start()
    try:
        request = {"req_id": "rep", "edit": "replace", "source_path": str(source), "from_bar": 1, "to_bar": 1}
        (folder.inbox / "rep.json").write_text(json.dumps({**request, "steps": 2}))
        status = wait_for(
            lambda: (
                (p := folder.outbox / "rep.status").is_file()
                and json.loads(p.read_text())["state"] in ("done", "failed", "rejected")
                and json.loads(p.read_text())
            ),
            what="the replace request to finish",
        )
    finally:
        folder.stop()
    assert status["state"] == "done", status
    assert sf.info(status["files"][0]).frames == BAR
