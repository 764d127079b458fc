"""The watched folder end to end: JSON requests and audio files in, renders and status files out."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from bridge.dropfolder import DropFolder
from bridge.queue import JobQueue

from .conftest import wait_for

MakeQueue = Callable[..., JobQueue]


@pytest.fixture
def drop(make_queue: MakeQueue, tmp_path: Path) -> Iterator[Callable[..., DropFolder]]:
    folders: list[DropFolder] = []

    def make(**kw: Any) -> DropFolder:
        kw.setdefault("interval", 0.05)
        folder = DropFolder(make_queue(), tmp_path / "drop", **kw)
        folder.start()
        folders.append(folder)
        return folder

    yield make
    for f in folders:
        f.stop()


def _status(
    folder: DropFolder, rid: str, state: str | tuple[str, ...] = ("done", "failed", "rejected")
) -> dict[str, Any]:
    states = (state,) if isinstance(state, str) else state
    path = folder.outbox / f"{rid}.status"

    def read() -> dict[str, Any] | None:
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return status if status["state"] in states else None

    return wait_for(read, what=f"{path.name} to say {states}")


def test_a_json_request_renders_into_the_outbox(drop: Callable[..., DropFolder]) -> None:
    folder = drop()
    request = {"req_id": "bed-1", "prompt": "lofi bed", "bpm": 240, "bars": 1, "seed": 9, "steps": 2, "name": "Bed"}
    (folder.inbox / "bed.json").write_text(json.dumps(request))
    status = _status(folder, "bed-1")
    assert status["state"] == "done" and status["fraction"] == 1.0
    [wav] = [Path(p) for p in status["files"]]
    assert wav.parent == folder.outbox and wav.name == "bed_240bpm_1bar_s9_v1.wav"
    assert sf.info(str(wav)).frames == 44100 and sf.info(str(wav)).subtype == "PCM_24"
    assert json.loads(wav.with_suffix(".json").read_text())["prompt"] == "lofi bed"
    assert (folder.accepted / "bed.json").exists() and not (folder.inbox / "bed.json").exists()

    # The same request dropped again: its state, not a second render.
    (folder.inbox / "bed.json").write_text(json.dumps(request))
    wait_for(lambda: len(list(folder.accepted.glob("bed*.json"))) == 2, what="the second drop to be taken")
    assert len(list(folder.outbox.glob("*.wav"))) == 1
    # Same seed and name under a new id: a new file beside it, never over it.
    (folder.inbox / "again.json").write_text(json.dumps({**request, "req_id": "bed-2"}))
    again = _status(folder, "bed-2")
    assert Path(again["files"][0]).name == "bed_240bpm_1bar_s9_v1-1.wav"


def test_an_audio_file_is_transformed_with_the_default_prompt(drop: Callable[..., DropFolder], tmp_path: Path) -> None:
    folder = drop(default_prompt="glitchy drums", audio_defaults={"steps": 3})
    (folder.root / "defaults.json").write_text(json.dumps({"strength": 0.5, "steps": 2}))  # edited live
    src = tmp_path / "Beatbox Take.wav"
    sf.write(str(src), np.random.default_rng(0).uniform(-0.3, 0.3, (11025, 1)).astype(np.float32), 22050)
    (folder.inbox / src.name).write_bytes(src.read_bytes())
    wait_for(lambda: list(folder.outbox.glob("beatbox-take-*.status")), what="a status file")
    rid = next(folder.outbox.glob("beatbox-take-*.status")).stem
    status = _status(folder, rid)
    assert status["state"] == "done", status
    wav = Path(status["files"][0])
    assert wav.name.startswith("beatbox-take_s") and sf.info(str(wav)).channels == 2
    recipe = json.loads(wav.with_suffix(".json").read_text())
    assert recipe["prompt"] == "glitchy drums" and recipe["init_strength"] == 0.5 and recipe["steps"] == 2
    assert sf.info(str(wav)).frames == 22050  # the source's length (0.5 s), resampled to 44.1 kHz
    assert Path(recipe["init_audio"]).parent == folder.accepted and Path(recipe["init_audio"]).exists()


@pytest.mark.parametrize(
    ("name", "content", "code", "needle"),
    [
        ("broken.json", "{not json", 400, "not a readable JSON file"),
        ("list.json", "[1, 2]", 400, "JSON object"),
        ("steps.json", json.dumps({"req_id": "bad-steps", "prompt": "p", "steps": 0}), 400, "steps must be"),
        ("long.json", json.dumps({"req_id": "too-long", "prompt": "p", "seconds": 1500}), 413, "longer than"),
        ("evil.json", json.dumps({"req_id": "evil", "prompt": "p", "name": "../../etc/x"}), 400, "plain file name"),
        ("notes.txt", "hello", 400, "not a request"),
        ("fake.wav", "RIFF but not really", 400, "not readable audio"),
    ],
)
def test_bad_drops_are_moved_aside_with_a_reason(
    drop: Callable[..., DropFolder], name: str, content: str, code: int, needle: str
) -> None:
    folder = drop()
    (folder.inbox / name).write_text(content)
    wait_for(lambda: list(folder.outbox.glob("*.status")), what="a status file")
    status_path = next(folder.outbox.glob("*.status"))
    status = _status(folder, status_path.stem, "rejected")
    assert status["error"]["code"] == code and needle in status["error"]["message"], status
    assert not (folder.inbox / name).exists() and list(folder.rejected.iterdir())
    assert not list(folder.outbox.glob("*.wav"))


def test_a_file_is_taken_only_once_its_size_is_stable(make_queue: MakeQueue, tmp_path: Path) -> None:
    folder = DropFolder(make_queue(), tmp_path / "drop")  # not started: polled by hand
    for sub in (folder.inbox, folder.outbox, folder.accepted, folder.rejected):
        sub.mkdir(parents=True, exist_ok=True)
    growing = folder.inbox / "req.json"
    growing.write_text('{"req_id": "grow", "prompt": "p", "seconds": 0.5,')
    assert folder.poll() == []  # first sight
    with growing.open("a") as fh:
        fh.write(' "steps": 2}')
    assert folder.poll() == []  # it changed: wait again
    assert folder.poll() == ["req.json"]
    assert folder.queue.get("grow") is not None
