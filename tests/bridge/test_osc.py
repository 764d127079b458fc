"""The OSC door over real UDP sockets on loopback, rendering with the tiny model."""

from __future__ import annotations

import dataclasses
import json
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from bridge.osc import OscServer
from bridge.queue import JobQueue
from bridge.writer import parse_riff

from .conftest import Client, build, wait_for

Osc = Callable[..., tuple[OscServer, JobQueue]]
ClientFor = Callable[[OscServer], Client]
FAST = ("steps", 2)


def test_hello_to_done_writes_a_bar_exact_file(osc: Osc, client_for: ClientFor) -> None:
    server, queue = osc()
    c = client_for(server)
    c.send("/longplay/hello", "pytest", c.port)
    address, args = c.recv()
    assert address == "/longplay/hello/ok" and args[1] == "tiny-test" and args[0]

    # Ints where floats are expected (bpm 240), as DAW scripts send them.
    c.send(
        "/longplay/render",
        "take-1",
        "prompt",
        "dusty drums",
        "bpm",
        240,
        "bars",
        1,
        "seed",
        7,
        *FAST,
        "name",
        "Verse",
        "variations",
        2,
    )
    got = c.recv_until("take-1")
    addresses = [a for a, _ in got]
    assert addresses[0] == "/longplay/accepted" and got[0][1] == ["take-1", 0]
    assert "/longplay/progress" in addresses
    progress = [args for a, args in got if a == "/longplay/progress"]
    assert all(isinstance(p[1], float) and 0 <= p[1] <= 1 for p in progress)
    assert [p[1] for p in progress] == sorted(p[1] for p in progress)
    files = [args for a, args in got if a == "/longplay/file"]
    assert [f[1] for f in files] == [1, 2] and [f[4] for f in files] == [7, 8]
    assert got[-1][0] == "/longplay/done" and got[-1][1][1] == 2 and got[-1][1][2] > 0

    path = Path(files[0][2])
    assert path.is_absolute() and path.name == "verse_240bpm_1bar_s7_v1.wav"
    info = sf.info(str(path))
    assert info.frames == round(1 * 4 * 60 / 240 * 44100) == 44100
    assert info.subtype == "PCM_24" and info.samplerate == 44100
    assert files[0][3] == pytest.approx(1.0)
    audio, _ = sf.read(str(path))
    assert abs(audio[0]).max() == 0 and abs(audio[-1]).max() == 0  # faded ends: no click at the cut
    chunks = parse_riff(path)
    assert struct.unpack("<IHHfIHHf", chunks[b"acid"])[4] == 4  # 4 beats
    assert struct.unpack("<IHHfIHHf", chunks[b"acid"])[7] == 240.0
    assert b"dusty drums" in chunks[b"LIST"]

    # Status after the fact: the files and done again, so a client that lost packets catches up.
    c.send("/longplay/status", "take-1")
    again = c.recv_until("take-1")
    assert [a for a, _ in again] == ["/longplay/file", "/longplay/file", "/longplay/done"]
    # Re-sending the same id answers with its state; no second render.
    c.send(
        "/longplay/render",
        "take-1",
        "prompt",
        "dusty drums",
        "bpm",
        240,
        "bars",
        1,
        "seed",
        7,
        *FAST,
        "name",
        "Verse",
        "variations",
        2,
    )
    assert [a for a, _ in c.recv_until("take-1")][-1] == "/longplay/done"
    assert len(list(path.parent.glob("*.wav"))) == 2
    # The same id with a different request is a conflict.
    c.send("/longplay/render", "take-1", "prompt", "something else")
    assert c.recv_until("take-1")[-1][1][1] == 409


def test_replies_go_to_the_port_registered_with_hello(osc: Osc, client_for: ClientFor) -> None:
    server, _ = osc()
    sender, listener = client_for(server), client_for(server)
    sender.send("/longplay/hello", "split", listener.port)
    assert listener.recv()[0] == "/longplay/hello/ok"
    sender.send("/longplay/render", "r1", "prompt", "pads", "seconds", 0.5, *FAST)
    assert listener.recv_until("r1")[-1][0] == "/longplay/done"


def test_cancel_a_running_render(osc: Osc, client_for: ClientFor) -> None:
    server, queue = osc()
    c = client_for(server)
    c.send("/longplay/render", "long", "prompt", "drone", "seconds", 2.0, "steps", 400)
    wait_for(lambda: (j := queue.get("long")) and j.stage == "sampling" and j.step >= 1, what="sampling")
    t0 = time.monotonic()
    c.send("/longplay/cancel", "long")
    got = c.recv_until("long", final=("/longplay/error",))
    assert got[-1][1][1:] == [499, "cancelled"]
    assert time.monotonic() - t0 < 20  # within a step or two, not after 400 steps
    assert queue.get("long").state == "cancelled"
    assert not queue.out_dir.exists() or not any(queue.out_dir.iterdir())  # nothing, not even a partial file
    c.send("/longplay/cancel", "nobody")
    assert c.recv_until("nobody")[-1][1][1] == 404


def test_a_full_queue_refuses_with_503_and_keeps_serving(osc: Osc, client_for: ClientFor) -> None:
    server, queue = osc(limit=2)
    c = client_for(server)
    c.send("/longplay/render", "busy", "prompt", "drone", "seconds", 1.0, "steps", 400)
    c.recv_until("busy", final=("/longplay/accepted",))
    wait_for(lambda: queue.get("busy").state == "running", what="running")
    for rid in ("w1", "w2"):
        c.send("/longplay/render", rid, "prompt", "pads", "seconds", 0.5, *FAST)
        assert c.recv_until(rid, final=("/longplay/accepted",))[-1][1] == [rid, int(rid[1])]
    c.send("/longplay/render", "w3", "prompt", "pads", "seconds", 0.5, *FAST)
    err = c.recv_until("w3")[-1]
    assert err[0] == "/longplay/error" and err[1][1] == 503 and "queue is full" in err[1][2]
    c.send("/longplay/status", "w2")
    assert c.recv_until("w2", final=("/longplay/accepted",))[-1][1] == ["w2", 2]
    for rid in ("w2", "busy", "w1"):
        c.send("/longplay/cancel", rid)
        assert c.recv_until(rid)[-1][1][1:] == [499, "cancelled"]
    assert queue.waiting == 0


def test_progress_reports_every_stage(osc: Osc, client_for: ClientFor) -> None:
    server, _ = osc()
    c = client_for(server)
    c.send("/longplay/render", "p", "prompt", "pads", "seconds", 0.5, "steps", 3)
    got = c.recv_until("p")
    stages = [args[2] for a, args in got if a == "/longplay/progress"]
    assert {"starting", "conditioning", "sampling", "decoding", "writing"} <= set(stages)


def test_progress_is_at_most_ten_per_second_but_stage_changes_always_go(osc: Osc) -> None:
    server, queue = osc()
    sent: list[tuple[Any, ...]] = []
    server.send = lambda to, address, *args: sent.append((address, *args))  # type: ignore[method-assign]
    info = queue.submit({"prompt": "p", "seconds": 0.5, "steps": 2}, "rl", reply_to="127.0.0.1:9")
    sent.clear()
    from bridge.queue import JobEvent

    t0 = time.monotonic()
    for i in range(200):  # 200 steps in a burst, then a stage change
        server.on_event(JobEvent("progress", dataclasses.replace(info, state="running", stage="sampling", step=i)))
    server.on_event(JobEvent("progress", dataclasses.replace(info, state="running", stage="decoding")))
    elapsed = time.monotonic() - t0
    progress = [m for m in sent if m[0] == "/longplay/progress"]
    assert len(progress) <= 2 + 10 * elapsed + 1
    assert progress[-1][3] == "decoding"


def test_non_loopback_needs_an_allow_list_and_others_are_ignored(
    make_queue: Callable[..., JobQueue], caplog: pytest.LogCaptureFixture
) -> None:
    from bridge.errors import UsageError

    queue = make_queue()
    with pytest.raises(UsageError, match="allow-list"):
        OscServer(queue, "0.0.0.0", 0)
    server = OscServer(queue, "0.0.0.0", 0, allow=["10.1.2.0/24"])
    sent: list[tuple[Any, ...]] = []
    server.send = lambda to, address, *args: sent.append((to, address, *args))  # type: ignore[method-assign]
    server.handle(build("/longplay/status", "x"), ("10.1.2.7", 5000))
    assert sent and sent[-1][1] == "/longplay/error" and sent[-1][0] == ("10.1.2.7", 5000)
    sent.clear()
    with caplog.at_level("WARNING", logger="longplay.osc"):
        server.handle(build("/longplay/render", "x", "prompt", "p"), ("192.168.9.9", 5000))
    assert sent == [] and "not in the allow-list" in caplog.text
    assert queue.get("x") is None


def test_the_example_daw_client_renders_and_reports_errors(osc: Osc, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "resources" / "daw" / "longplay_client.py"
    spec = importlib.util.spec_from_file_location("longplay_client", path)
    assert spec is not None and spec.loader is not None
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    server, _ = osc()
    port = ["--port", str(server.port), "--quiet"]
    assert client.main(["warm pads", *port, "--bpm", "240", "--bars", "1", "--steps", "2", "--seed", "4"]) == 0
    [line] = capsys.readouterr().out.split("\n")[:-1]
    assert Path(line).name == "warm-pads_240bpm_1bar_s4_v1.wav" and sf.info(line).frames == 44100
    assert client.main(["warm pads", *port, "--steps", "0"]) == 1
    assert "error 400: steps must be an integer between 1 and 500" in capsys.readouterr().err
    # Loudness: off keeps the model's level (the recipe says so), a number out of range is refused.
    assert client.main(["warm pads", *port, "--seconds", "0.5", "--steps", "2", "--loudness", "off"]) == 0
    recipe = json.loads(Path(capsys.readouterr().out.strip()).with_suffix(".json").read_text())
    assert recipe["loudness"] is None and "gain_db" not in recipe
    assert client.main(["warm pads", *port, "--steps", "2", "--loudness", "6"]) == 1
    assert "error 400: loudness must be between -60 and 0 LUFS (got 6)" in capsys.readouterr().err
