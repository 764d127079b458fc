"""A structure-aware fuzz of the watched folder (issue 17): every poison we know of, dropped at
once into one inbox, with a real worker thread. Each file leaves the inbox with a status naming
a client's mistake (400/404/413; a 500 would be a bug of ours), none is rendered, no error is
logged, and a valid request dropped last renders."""

from __future__ import annotations

import json
import logging
import os
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from bridge.dropfolder import DropFolder
from bridge.requests import RENDER_KEYS, TRANSFORM_KEYS

from . import test_dropfolder
from .conftest import wait_for

drop = test_dropfolder.drop  # the fixture: a started DropFolder on a real queue
_status = test_dropfolder._status
Drop = Callable[..., DropFolder]
# Values of the wrong type (or out of range) for every key: each request holds one of them.
WRONG: tuple[Any, ...] = (
    None,
    True,
    [],
    {},
    "12",
    -1000,
    10**30,
    1e308,
    float("-inf"),
    "x" * 5000,
    [[[]]],
    {"prompt": "nested"},
)
TEXT_KEYS = ("prompt", "negative", "name", "format", "sampler", "source_path", "req_id")


def _poison(inbox: Path, outside: Path) -> list[str]:
    """Write the poison files; -> the names written."""
    rng = random.Random(17)
    files: dict[str, bytes] = {
        "empty.json": b"",
        "garbage.json": bytes(rng.getrandbits(8) for _ in range(4096)),
        "digits.json": b'{"prompt": "p", "seed": ' + b"7" * 5000 + b"}",
        "deep-list.json": b"[" * 100_000 + b"]" * 100_000,
        "deep-dict.json": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "huge.json": json.dumps({"prompt": "p" * (2 << 20)}).encode(),
        "long-prompt.json": json.dumps({"prompt": "p" * 20_000}).encode(),
        "null.json": b"null",
        "number.json": b"5",
        "nan.json": b'{"prompt": "p", "seconds": NaN}',
        "inf.json": b'{"prompt": "p", "seconds": 1e400}',
        "bom.json": b"\xef\xbb\xbf" + json.dumps({"prompt": "p"}).encode() + b"\xff\xfe",
        "latin1.json": '{"prompt": "caf\u00e9"}'.encode("latin-1"),
        "dupkeys.json": b'{"prompt": "p", "prompt": 5}',
        "traverse.json": json.dumps({"req_id": "../../etc/passwd", "prompt": "p"}).encode(),
        "bad-source.json": json.dumps({"prompt": "p", "source_path": "../../../etc/passwd", "strength": 0.5}).encode(),
        "missing-source.json": json.dumps({"prompt": "p", "source_path": "/nowhere/x.wav"}).encode(),
        "too-long.json": json.dumps({"prompt": "p", "seconds": 10**6}).encode(),
        "text.wav": b"this is not audio",
        "empty.wav": b"",
        "riff.wav": b"RIFF\xff\xff\xff\xffWAVEfmt " + b"\xff" * 64,
        "notes.txt": b"hello",
        "no-suffix": b"{}",
        "\u00fcnicode \u2603 name.json": b"{",
        "x" * 249 + ".json": b"{",
    }
    # Wrong types for every key (and req_id), one request each.
    for key in sorted(RENDER_KEYS | TRANSFORM_KEYS | {"req_id"}):
        for i, value in enumerate(WRONG):
            if (key, value) in (("loudness", None), ("req_id", None)) or (key in TEXT_KEYS and value == "12"):
                continue  # valid there: null is "off" for loudness and "no id" for req_id; "12" is text
            request: dict[str, Any] = {"prompt": "p", key: value}
            if key in TRANSFORM_KEYS:
                request.setdefault("source_path", "/nowhere.wav")
            files[f"type-{key}-{i}.json"] = json.dumps(request, allow_nan=True).encode()
    for name, data in files.items():
        (inbox / name).write_bytes(data)
    names = list(files)
    # A WAV declaring 4 Hz (1.9 GB once resampled, before the limits), and one declaring 3 days.
    sf.write(str(inbox / "slow.wav"), np.zeros((8000, 1), np.float32), 4, subtype="PCM_16")
    (inbox / "forever.wav").write_bytes(
        b"RIFF"
        + struct.pack("<I", 0xFFFFFF00)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
        + b"data"
        + struct.pack("<I", 0xFFFFFF00 - 36)
        + b"\0" * 1024
    )
    # A name that is not UTF-8 (Linux allows any bytes but "/" and NUL).
    with open(os.path.join(os.fsencode(inbox), b"latin-\xe9.json"), "wb") as fh:
        fh.write(b"{")
    # Links pointing outside, to a secret and to an audio file: never followed.
    (outside / "secret.json").write_text(json.dumps({"prompt": "stolen"}))
    sf.write(str(outside / "elsewhere.wav"), np.zeros((4410, 1), np.float32), 44100)
    os.symlink(outside / "secret.json", inbox / "link.json")
    os.symlink(outside / "elsewhere.wav", inbox / "link.wav")
    os.symlink(inbox / "nowhere", inbox / "dangling.json")
    os.mkfifo(inbox / "fifo.wav")
    (inbox / "folder.json").mkdir()
    return names + [
        "slow.wav",
        "forever.wav",
        "latin-?.json",
        "link.json",
        "link.wav",
        "dangling.json",
        "fifo.wav",
        "folder.json",
    ]


def test_fuzzed_drops_are_each_rejected_and_a_valid_request_still_renders(
    drop: Drop, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="longplay")
    folder = drop(default_prompt="drums")
    outside = tmp_path / "outside"
    outside.mkdir()
    names = _poison(folder.inbox, outside)

    def settled() -> bool:
        return not [n for n in os.listdir(folder.inbox) if n not in ("accepted", "rejected")]

    wait_for(settled, 40, "the inbox to empty")
    (folder.inbox / "valid.json").write_text(
        json.dumps({"req_id": "fuzz-ok", "prompt": "pads", "seconds": 0.5, "steps": 2})
    )
    assert _status(folder, "fuzz-ok")["state"] == "done"

    statuses = [json.loads(p.read_text()) for p in folder.outbox.glob("*.status")]
    rejected = [s for s in statuses if s["state"] == "rejected"]
    assert len(rejected) == len(names), (len(rejected), len(names))
    assert {s["error"]["code"] for s in rejected} <= {400, 404, 413}, [s for s in rejected if s["error"]["code"] >= 500]
    assert [s["id"] for s in statuses if s["state"] != "rejected"] == ["fuzz-ok"]
    assert len(os.listdir(folder.rejected)) == len(names)
    assert all(len(n) <= 255 for n in os.listdir(os.fsencode(folder.rejected)))
    assert (outside / "secret.json").exists() and (outside / "elsewhere.wav").exists()  # links moved, not targets
    assert len(list(folder.outbox.glob("*.wav"))) == 1
    errors = [r.getMessage()[:200] for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors
