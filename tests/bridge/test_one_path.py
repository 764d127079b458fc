"""One request path (issue 18): the same request and seed through the CLI, OSC and the drop folder
give the same samples, the same RIFF chunks (recipe and ACID tempo) and the same sidecar, apart
from what names the job. (The app's form takes the same path: tests/desktop/test_app.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bridge.cli import main
from bridge.dropfolder import DropFolder
from bridge.writer import parse_riff

from .conftest import wait_for

REQUEST = {"prompt": "dusty pads", "bpm": 240, "bars": 1, "seed": 11, "steps": 2, "cfg": 3.0}
# What names a job rather than renders it (its id, the file the recipe sits beside) and the wall time.
JOB_KEYS = ("job_id", "file", "render_seconds")


def rendered(path: Path) -> dict[str, Any]:
    """A file's samples, tempo chunk, and recipe (from the RIFF comment and the sidecar) without
    the keys that name the job."""
    audio, rate = sf.read(str(path), dtype="float64")
    chunks = parse_riff(path)
    info = chunks[b"LIST"]
    comment = json.loads(info[info.index(b"ICMT") + 8 :].split(b"\x00", 1)[0])
    sidecar = json.loads(path.with_suffix(".json").read_text())
    strip = lambda d: {k: v for k, v in d.items() if k not in JOB_KEYS}  # noqa: E731
    return {
        "audio": audio,
        "rate": rate,
        "acid": chunks.get(b"acid"),
        "riff_recipe": strip(comment),
        "sidecar": strip(sidecar),
    }


def render_with_cli(model_dir: Path, out: Path) -> Path:
    """`REQUEST` through `longplay generate` into the folder `out`; -> the file it wrote."""
    argv = ["generate", REQUEST["prompt"], "--bpm", "240", "--bars", "1", "--seed", "11", "--steps", "2"]
    argv += ["--cfg", "3", "--model", str(model_dir), "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    [path] = sorted(out.glob("*.wav"))
    return path


def same(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    assert a["rate"] == b["rate"] and np.array_equal(a["audio"], b["audio"]), f"{what}: samples differ"
    assert a["acid"] is not None and a["acid"] == b["acid"], f"{what}: ACID chunks differ"
    assert a["riff_recipe"] == b["riff_recipe"], f"{what}: RIFF recipes differ"
    assert a["sidecar"] == b["sidecar"], f"{what}: sidecars differ"


def test_cli_osc_and_drop_folder_write_the_same_file(
    tiny_model_dir: Path, tmp_path: Path, osc: Any, client_for: Any, make_queue: Any
) -> None:
    cli_file = render_with_cli(tiny_model_dir, tmp_path / "cli")
    cli = rendered(cli_file)
    assert cli["sidecar"]["prompt"] == REQUEST["prompt"] and cli["sidecar"]["seed"] == 11

    server, _ = osc(out_dir=tmp_path / "osc")
    client = client_for(server)
    client.send("/longplay/render", "one-path", *[x for kv in REQUEST.items() for x in kv])
    got = client.recv_until("one-path")
    assert got[-1][0] == "/longplay/done", got
    osc_file = Path(next(args[2] for address, args in got if address == "/longplay/file"))
    same(cli, rendered(osc_file), "CLI vs OSC")
    assert osc_file.name == cli_file.name  # the same name rules too

    folder = DropFolder(
        make_queue(out_dir=tmp_path / "unused", journal=tmp_path / "drop.sqlite3"), tmp_path / "drop", interval=0.05
    )
    folder.start()
    try:
        (folder.inbox / "req.json").write_text(json.dumps({"req_id": "dropped", **REQUEST}))
        status = wait_for(
            lambda: (
                (p := folder.outbox / "dropped.status").is_file()
                and json.loads(p.read_text())["state"] in ("done", "failed", "rejected")
                and json.loads(p.read_text())
            ),
            what="the dropped request to finish",
        )
    finally:
        folder.stop()
    assert status["state"] == "done", status
    same(cli, rendered(Path(status["files"][0])), "CLI vs drop folder")
