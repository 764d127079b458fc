"""The OSC door against hostile and unlucky clients (issue 17, findings 1-7), over real UDP sockets
on loopback: no self-loops, no reply hijack, answers instead of 500s, no amplification, bursts
answered, bounded logs, both IP families on `::`."""

from __future__ import annotations

import collections
import dataclasses
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_packet import OscPacket

from bridge.osc import OscServer
from bridge.queue import JobQueue

from .conftest import Client, build

Osc = Callable[..., tuple[OscServer, JobQueue]]
ClientFor = Callable[[OscServer], Client]
REPLIES = (
    "/longplay/hello/ok",
    "/longplay/accepted",
    "/longplay/progress",
    "/longplay/file",
    "/longplay/done",
    "/longplay/error",
)


def _quiet(c: Client, seconds: float = 0.3) -> list[tuple[str, list[Any]]]:
    """Everything ``c`` receives until it has been quiet for ``seconds`` (bounded: 20 s in all)."""
    got: list[tuple[str, list[Any]]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            got.append(c.recv(timeout=seconds))
        except TimeoutError:
            return got
    raise AssertionError(f"still receiving after 20 s: {len(got)} messages")


def _bundle(*elements: bytes) -> bytes:
    """An OSC bundle (timetag "immediately") of already-encoded messages or bundles."""
    return b"#bundle\x00" + struct.pack(">Q", 1) + b"".join(struct.pack(">i", len(e)) + e for e in elements)


# ------------------------------------------------------------------ 1. self-reply loops


def test_a_hello_naming_the_servers_own_socket_is_refused_not_looped(osc: Osc, client_for: ClientFor) -> None:
    server, _ = osc()
    handled: list[tuple[str, int]] = []
    real = server.handle

    def counting(data: bytes, addr: tuple[str, int]) -> None:
        handled.append(addr)
        real(data, addr)

    server.handle = counting  # type: ignore[method-assign]
    c = client_for(server)
    c.send("/longplay/hello", "loop", server.port)
    got = _quiet(c, 1.0)
    assert [a for a, _ in got] == ["/longplay/error"], got
    assert got[0][1][1] == 400 and "reply_port" in got[0][1][2]
    assert len(handled) == 1  # the server never heard itself
    c.send("/longplay/status", "ghost")  # and it still answers the client at its source port
    assert c.recv(5)[1][:2] == ["ghost", 404]


def test_messages_on_reply_addresses_are_dropped_and_counted(
    osc: Osc, client_for: ClientFor, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = osc()
    c = client_for(server)
    with caplog.at_level("INFO", logger="longplay.osc"):
        for _ in range(20):
            for address in REPLIES:
                c.send(address, "x", 400, "boom")
        c.send("/longplay/status", "ghost")
        got = _quiet(c)
    assert [(a, args[:2]) for a, args in got] == [("/longplay/error", ["ghost", 404])]
    lines = [r.getMessage() for r in caplog.records if "reply address" in r.getMessage()]
    assert 1 <= len(lines) <= 2, lines  # one line for 120 drops, not 120 lines


# ------------------------------------------------------------------ 2. reply hijack


def test_a_hello_redirects_only_the_replies_of_the_client_that_sent_it(osc: Osc, client_for: ClientFor) -> None:
    server, _ = osc()
    a, listener, b = client_for(server), client_for(server), client_for(server)
    a.send("/longplay/hello", "a", listener.port)
    assert listener.recv(5)[0] == "/longplay/hello/ok"
    b.send("/longplay/status", "ghost-b")  # b never said hello: its answer goes to its source port
    assert [(x, args[:2]) for x, args in _quiet(b)] == [("/longplay/error", ["ghost-b", 404])]
    a.send("/longplay/status", "ghost-a")
    assert [(x, args[:2]) for x, args in _quiet(listener)] == [("/longplay/error", ["ghost-a", 404])]
    assert _quiet(a, 0.1) == []


# ------------------------------------------------------------------ 3. answers, not crashes


@pytest.mark.parametrize("source", ["~no-such-user-17/x.wav", "/" + "a" * 300 + "/b.wav", "/" + "a" * 300])
def test_unusable_source_paths_are_400_naming_the_argument(osc: Osc, client_for: ClientFor, source: str) -> None:
    server, _ = osc()
    c = client_for(server)
    c.send("/longplay/transform", "t", source, 0.5)
    address, args = c.recv(5)
    assert address == "/longplay/error" and args[1] == 400 and "source_path" in args[2], args


def test_error_codes_come_from_the_exception_type_not_its_text() -> None:
    from bridge.jobs import classify
    from engine import AudioInputError, RequestError

    # The words "longer than" / "not found" in a message must not choose a code...
    assert classify(RequestError("steps is longer than the longest steps (got 900)"))[0] == 400
    assert classify(AudioInputError("x.wav: header says sample rate not found"))[0] == 400
    assert classify(RuntimeError("worker out of memory budget? no: a bug"))[0] == 500
    # ...the type does.
    from engine import AudioNotFound, RequestTooLong

    assert classify(RequestTooLong("seconds 90 exceeds the window"))[0] == 413
    assert classify(AudioNotFound("gone.wav is gone"))[0] == 404

    class OutOfMemoryError(RuntimeError):  # what torch raises, named as torch names it
        pass

    assert classify(OutOfMemoryError("CUDA: tried to allocate 2 GiB"))[0] == 503


def test_the_engine_raises_the_typed_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    from engine import AudioNotFound, Generator, RenderRequest, RequestTooLong, load_audio, load_model

    gen = Generator(load_model(tiny_model_dir), device="cpu")
    with pytest.raises(RequestTooLong):
        gen.resolve(RenderRequest(prompt="x", seconds=1e6))
    with pytest.raises(AudioNotFound):
        load_audio(tmp_path / "gone.wav")


# ------------------------------------------------------------------ 4. amplification


def test_a_bundle_of_3000_messages_gets_one_error_not_3000_replies(osc: Osc, client_for: ClientFor) -> None:
    from bridge.osc_wire import MAX_BUNDLE_MESSAGES

    server, _ = osc()
    c = client_for(server)
    c.send_raw(_bundle(*[build("/x") for _ in range(3000)]))
    got = _quiet(c)
    assert len(got) == 1 and got[0][1][1] == 400 and "bundle" in got[0][1][2], got[:3]
    # Nested bundles count too: 4 bundles of 10 is 40 messages.
    c.send_raw(_bundle(*[_bundle(*[build("/longplay/status", f"n{i}-{j}") for j in range(10)]) for i in range(4)]))
    got = _quiet(c)
    assert len(got) == 1 and f"at most {MAX_BUNDLE_MESSAGES}" in got[0][1][2], got[:3]
    # At the cap every message is answered, one reply each.
    c.send_raw(_bundle(*[build("/longplay/status", f"s{i}") for i in range(MAX_BUNDLE_MESSAGES)]))
    got = _quiet(c)
    assert sorted(args[0] for _, args in got) == sorted(f"s{i}" for i in range(MAX_BUNDLE_MESSAGES))


def test_status_askers_following_a_job_are_bounded(tiny_model_dir: Path, tmp_path: Path) -> None:
    from bridge.osc import MAX_WATCHERS
    from bridge.queue import JobEvent

    queue = JobQueue(tmp_path / "w.sqlite3", model=tiny_model_dir, out_dir=tmp_path / "out")  # not started
    server = OscServer(queue, "127.0.0.1", 0)
    sent: list[tuple[str, int]] = []
    server.send = lambda to, address, *args: sent.append(to)  # type: ignore[method-assign]
    info = queue.submit({"prompt": "p", "seconds": 0.5}, "held", reply_to="127.0.0.1:9")
    for i in range(200):  # one status each from 200 source ports
        server.handle(build("/longplay/status", "held"), ("127.0.0.1", 20000 + i))
    assert len(sent) == 200  # each asker gets the state it asked for
    sent.clear()
    server.on_event(JobEvent("progress", dataclasses.replace(info, state="running", stage="sampling")))
    assert len(sent) == 1 + MAX_WATCHERS  # but later events go to the submitter and a bounded few


# ------------------------------------------------------------------ 5. bursts


def _burst(port: int, n: int) -> collections.Counter[Any]:
    """Send ``n`` one-KB render requests as fast as possible; -> reply codes seen per request id
    ("accepted" or the error code), counting each id once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # the test's own side must not drop
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    codes: dict[str, Any] = {}
    prompt = "burst " + "x" * 950
    packets = [build("/longplay/render", f"b{i}", "prompt", prompt, "seconds", 0.5, "steps", 2) for i in range(n)]
    assert all(1000 <= len(p) <= 1100 for p in packets)

    def read() -> None:
        while len(codes) < n:
            try:
                data, _ = sock.recvfrom(65535)
            except OSError:
                return
            msg = OscPacket(data).messages[0].message
            args = list(msg.params)
            codes.setdefault(args[0], "accepted" if msg.address == "/longplay/accepted" else args[1])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    for p in packets:
        sock.sendto(p, ("127.0.0.1", port))
    reader.join(60)
    sock.close()
    return collections.Counter(codes.values())


def test_a_burst_of_1000_requests_is_answered(tiny_model_dir: Path, tmp_path: Path) -> None:
    # Not started: nothing renders, so 32 requests wait and the rest must be refused with 503.
    queue = JobQueue(tmp_path / "burst.sqlite3", model=tiny_model_dir, out_dir=tmp_path / "out", limit=32)
    server = OscServer(queue, "127.0.0.1", 0)
    server.start()
    try:
        seen = _burst(server.port, 1000)
    finally:
        server.stop()
        queue.stop()
    assert seen["accepted"] == 32, seen
    assert seen["accepted"] + seen[503] >= 990, seen
    assert set(seen) <= {"accepted", 503}, seen


def test_a_full_backlog_is_refused_with_503_at_once(
    osc: Osc, client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bridge.osc

    monkeypatch.setattr(bridge.osc, "MAX_BACKLOG", 2)
    server, _ = osc()
    entered, gate = threading.Event(), threading.Event()
    real = server.handle

    def held(data: bytes, addr: tuple[str, int]) -> None:
        entered.set()
        gate.wait(10)
        real(data, addr)

    server.handle = held  # type: ignore[method-assign]
    c = client_for(server)
    c.send("/longplay/status", "q0")
    assert entered.wait(5)  # q0 is being handled; two more may wait, the rest are refused at once
    for i in range(1, 6):
        c.send("/longplay/status", f"q{i}")
    busy = [c.recv(5) for _ in range(3)]
    assert [(a, args[:2]) for a, args in busy] == [("/longplay/error", [f"q{i}", 503]) for i in (3, 4, 5)]
    gate.set()
    assert sorted(args[0] for _, args in _quiet(c)) == ["q0", "q1", "q2"]


# ------------------------------------------------------------------ 6. log floods


def test_a_flood_of_bad_packets_writes_a_few_log_lines(osc: Osc, caplog: pytest.LogCaptureFixture) -> None:
    server, _ = osc()
    sent: list[tuple[Any, ...]] = []
    server.send = lambda to, address, *args: sent.append((address, *args))  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO):  # the root logger too: python-osc logs unknown type tags there
        for i in range(300):
            server.handle(b"\x00garbage %d" % i, ("127.0.0.1", 9))
            server.handle(build("/longplay/render", f"r{i}", "steps", 0), ("127.0.0.1", 9))
            server.handle(b"/longplay/status\x00\x00\x00\x00,ccc\x00\x00\x00\x00", ("127.0.0.1", 9))
            server.handle(build("/longplay/status", "x"), ("192.168.9.9", 9))  # not allowed
    assert len(sent) == 900  # every allowed packet is still answered
    assert len(caplog.records) <= 8, [r.getMessage()[:80] for r in caplog.records[:12]]


# ------------------------------------------------------------------ 7. dual stack


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_listening_on_the_ipv6_wildcard_serves_ipv4_clients_too(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue()
    server = OscServer(queue, "::", 0, allow=["192.0.2.0/24", "2001:db8::/32"])
    server.start()
    try:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.bind((host, 0))
                s.settimeout(5)
                s.sendto(build("/longplay/status", f"ghost-{family.name}"), (host, server.port))
                msg = OscPacket(s.recvfrom(65535)[0]).messages[0].message
                assert (msg.address, list(msg.params)[:2]) == ("/longplay/error", [f"ghost-{family.name}", 404])
        # The allow-list holds for both families, IPv4 clients arriving as v4-mapped IPv6 addresses.
        sent: list[Any] = []
        server.send = lambda to, address, *args: sent.append(to)  # type: ignore[method-assign]
        for host in ("::ffff:192.0.2.7", "2001:db8::7", "::ffff:198.51.100.7", "2001:db9::7"):
            server.handle(build("/longplay/status", "x"), (host, 5000))
        assert sent == [("::ffff:192.0.2.7", 5000), ("2001:db8::7", 5000)]
    finally:
        server.stop()
