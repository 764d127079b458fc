"""Structure-aware fuzzing of the OSC door over real UDP sockets on loopback.

Every datagram is followed by a `/longplay/status sync-N` probe, so the replies between the two
are exactly the datagram's (one handler thread answers in order). A datagram fails the test if
any reply is a 500, if a request carrying an id is not answered under that id, if a message on a
reply address is answered, or if it gets more replies than it holds messages. The run ends with a
valid request rendering.
"""

from __future__ import annotations

import math
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

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
BIG = "x" * 65000  # fills a datagram: UDP carries at most 65,507 bytes


@dataclass
class Case:
    data: bytes
    what: str
    answered: bool  # must get at least one reply
    rid: str | None = None  # ...and one carrying this id (hello: /longplay/hello/ok counts)
    most: int = 1  # at most this many replies


def _typed(address: str, args: list[tuple[str, Any]]) -> bytes:
    """A message with explicit OSC type tags, e.g. ("h", 2**62), ("d", nan), ("m", (1, 2, 3, 4))."""
    b = OscMessageBuilder(address)
    for tag, value in args:
        if tag == "[":
            b.add_arg(value)  # a list: python-osc writes it as an array
        else:
            b.add_arg(value, tag)
    return b.build().dgram


def _pad(s: bytes) -> bytes:
    return s + b"\x00" * (4 - len(s) % 4)


def _raw(address: str, tags: str, payload: bytes = b"") -> bytes:
    """A message with any type tag string (python-osc's builder refuses the exotic ones)."""
    return _pad(address.encode()) + _pad(("," + tags).encode()) + payload


def _bundle(*elements: bytes) -> bytes:
    return b"#bundle\x00" + struct.pack(">Q", 1) + b"".join(struct.pack(">i", len(e)) + e for e in elements)


WRONG: list[tuple[str, Any]] = [
    ("i", 7),
    ("i", -(2**31)),
    ("i", 2**31 - 1),
    ("h", 2**62),
    ("h", -(2**63)),
    ("h", 2**63 - 1),
    ("f", 0.5),
    ("f", math.nan),
    ("f", math.inf),
    ("f", -math.inf),
    ("d", 1e308),
    ("d", math.nan),
    ("d", -math.inf),
    ("d", 5e-324),
    ("s", ""),
    ("s", "../../etc/passwd"),
    ("s", "\u00e9\u4e2d\U0001f600"),
    ("s", "~no-such-user-17/x.wav"),
    ("s", "/" + "a" * 300),
    ("s", "/" + "a/" * 3000),
    ("b", b"\x00\xff" * 8),
    ("T", True),
    ("F", False),
    ("N", None),
    ("m", (0x90, 60, 127, 0)),
    ("r", 0xFF00FF00),
    ("[", [1, "a", [2.5]]),
    ("[", []),
]
# Templates that are valid OSC but never start a render: each request is wrong twice over (an empty
# prompt and 0 steps; a missing source and strength 2), so replacing one argument at a time by
# each WRONG value cannot make it valid. Status and cancel ask for ids nobody used.
TEMPLATES: dict[str, list[tuple[str, Any]]] = {
    "/longplay/hello": [("s", "fuzz"), ("i", 0)],
    "/longplay/render": [
        ("s", "RID"),
        ("s", "prompt"),
        ("s", ""),
        ("s", "seconds"),
        ("f", 0.5),
        ("s", "steps"),
        ("i", 0),
    ],
    "/longplay/transform": [("s", "RID"), ("s", "/nonexistent/fuzz.wav"), ("f", 2.0)],
    "/longplay/cancel": [("s", "RID")],
    "/longplay/status": [("s", "RID")],
    "/longplay/frobnicate": [("s", "RID")],
    **{address: [("s", "RID"), ("i", 400), ("s", "text")] for address in REPLIES},
}


def _message(address: str, args: list[tuple[str, Any]], n: int) -> tuple[bytes, str | None]:
    """Encode with the request id RID made unique; -> (datagram, the id a reply must carry)."""
    args = [(t, f"f{n}" if v == "RID" else v) for t, v in args]
    rid = args[0][1][:128] if args and args[0][0] == "s" else None  # hello: the client name
    return _typed(address, args), rid


def _is_valid_hello_port(value: Any) -> bool:
    """A wrong-type hello that is in fact a valid reply port would send our replies elsewhere."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and float(value).is_integer()
        and 0 <= value <= 65535
    )


def _cases(server_port: int, rng: random.Random) -> list[Case]:
    cases: list[Case] = []
    singles: list[tuple[bytes, str, bool]] = []  # (datagram, address, is a reply address) for bundles
    n = 0
    for address, template in TEMPLATES.items():
        reply_address = address in REPLIES
        variants = [list(template)] + [
            template[:i] + [w] + template[i + 1 :] for i in range(len(template)) for w in WRONG + [("s", BIG)]
        ]
        variants += [template[:i] for i in range(len(template))]  # missing arguments
        variants.append(template + [("s", "extra"), ("h", 2**62)])  # too many / stray pairs
        for args in variants:
            if address == "/longplay/hello" and len(args) > 1 and _is_valid_hello_port(args[1][1]):
                continue
            n += 1
            data, rid = _message(address, args, n)
            cases.append(
                Case(
                    data,
                    f"{address} {[t for t, _ in args]}",
                    not reply_address,
                    None if reply_address else rid,
                    0 if reply_address else 1,
                )
            )
            if len(data) < 2000:
                singles.append((data, address, reply_address))
    # The server's own socket as a reply port: refused with 400, never looped.
    cases.append(Case(build("/longplay/hello", "self", server_port), "hello self", True, "self"))
    # Exotic and unknown type tags, deep arrays: answered under the id when the id is readable.
    exotic = ("sc", "sI", "sS", "sx", "s" + "c" * 5000, "s" + "[" * 3000 + "]" * 3000, "s[", "s]", "s" + "N" * 20000)
    for tags in exotic:
        n += 1
        rid = f"t{n}"
        payload = _pad(rid.encode()) + (b"\x00\x00\x00\x41" if "c" in tags else b"")
        cases.append(Case(_raw("/longplay/render", tags, payload), f"tags {tags[:12]}", True, rid))
    # Truncated packets: every 4-byte cut of a few requests, and one byte short. Each is answered
    # once: as malformed, or (cut right after the address) for its missing arguments.
    for address in ("/longplay/render", "/longplay/transform", "/longplay/hello", "/longplay/status"):
        n += 1
        full, _ = _message(address, TEMPLATES[address], n)
        for cut in range(0, len(full), 4):
            cases.append(Case(full[:cut], f"truncated {address} at {cut}", True))
        cases.append(Case(full[:-1], f"{address} minus a byte", True))
    # Bundles: random mixes, nested, oversized; each answered once per request message, or once.
    from bridge.osc_wire import MAX_BUNDLE_DEPTH, MAX_BUNDLE_MESSAGES

    for _ in range(120):
        picks = [rng.choice(singles) for _ in range(rng.choice([0, 1, 2, 5, 31, 32, 33, 60, 400]))]
        depth = rng.choice([1, 1, 2, 3, MAX_BUNDLE_DEPTH, MAX_BUNDLE_DEPTH + 1])
        elements = [data for data, _, _ in picks]
        data = _bundle(*elements)
        for _level in range(depth - 1):
            data = _bundle(data)
        if len(data) > 65000:
            continue
        requests = sum(not reply for _, _, reply in picks)
        if not picks or len(picks) > MAX_BUNDLE_MESSAGES or depth > MAX_BUNDLE_DEPTH:
            cases.append(Case(data, f"bundle {len(picks)} deep {depth} (refused)", True, most=1))
        else:
            cases.append(Case(data, f"bundle {len(picks)} deep {depth}", requests > 0, most=requests))
    # Broken bundles and plain garbage.
    cases += [
        Case(b"#bundle\x00" + bytes(4), "short bundle", True),
        Case(_bundle(b"/x\x00\x00") + b"\x00\x00", "bundle tail", True),
        Case(b"#bundle\x00" + bytes(8) + struct.pack(">i", 1000) + b"/x\x00\x00", "bundle size past end", True),
        Case(b"#bundle\x00" + bytes(8) + struct.pack(">i", -4) + b"/x\x00\x00", "negative size", True),
        Case(b"#bundle\x00" + bytes(8) + struct.pack(">i", 0), "zero size", True),
    ]
    for _ in range(150):
        size = rng.choice([1, 3, 4, 8, 63, 500, 4000])
        body = bytes(rng.randrange(256) for _ in range(size))
        cases.append(Case(rng.choice([b"", b"/", b"/longplay/", b"#bundle\x00"]) + body, "garbage", True, most=8))
    return cases


def _exchange(c: Client, case: Case, n: int) -> list[tuple[str, list[Any]]] | None:
    """Send one case and a sync probe; -> the replies that came before the probe's answer, None if
    the probe is not answered within 10 s."""
    c.send_raw(case.data)
    sync = f"sync-{n}"
    c.send("/longplay/status", sync)
    got: list[tuple[str, list[Any]]] = []
    deadline = time.monotonic() + 10
    try:
        while True:
            address, args = c.recv(timeout=max(0.01, deadline - time.monotonic()))
            if args[:1] == [sync]:
                assert address == "/longplay/error" and args[1] == 404, (address, args)
                return got
            got.append((address, args))
    except TimeoutError:
        return None


def test_structure_aware_fuzz_gets_answers_never_500s_and_ends_rendering(osc: Osc, client_for: ClientFor) -> None:
    server, queue = osc()
    c = client_for(server)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    cases = _cases(server.port, random.Random(17))
    assert len(cases) > 1000
    t0 = time.monotonic()
    failures: list[str] = []
    for n, case in enumerate(cases):
        got = _exchange(c, case, n)
        if got is None:
            failures.append(f"the server stopped answering after {case.what}")
            break
        codes = [args[1] for a, args in got if a == "/longplay/error" and len(args) > 1]
        if 500 in codes:
            failures.append(f"500 for {case.what}: {got}")
        if case.answered and not got:
            failures.append(f"no answer to {case.what}")
        if len(got) > max(case.most, 0) and not (case.most == 0 and not got):
            failures.append(f"{len(got)} replies (at most {case.most}) to {case.what}: {got[:3]}")
        if (
            case.rid is not None
            and case.answered
            and got
            and not any(a == "/longplay/hello/ok" or args[:1] == [case.rid] for a, args in got)
        ):
            failures.append(f"no reply under id {case.rid[:20]!r} to {case.what}: {got[:2]}")
        if any(a == "/longplay/error" and not (0 < len(args[2]) < 400) for a, args in got):
            failures.append(f"error message length out of bounds for {case.what}")
    assert not failures, f"{len(failures)} of {len(cases)} failed:\n" + "\n".join(failures[:30])
    assert time.monotonic() - t0 < 45
    assert queue.list(10) == [] and queue.waiting == 0  # nothing fuzzed was journaled

    c.send("/longplay/render", "after-fuzz", "prompt", "still alive", "seconds", 0.5, "steps", 2)
    got = c.recv_until("after-fuzz")
    assert got[0][0] == "/longplay/accepted" and got[-1][0] == "/longplay/done", got
    path = next(Path(args[2]) for a, args in got if a == "/longplay/file")
    assert sf.info(str(path)).frames == 22050


# ------------------------------------------------------------------ hand-picked malformed requests


def _bad_packets(source_dir: Path) -> list[bytes]:
    """Hundreds of malformed requests; none of them may start a render."""
    not_audio = source_dir / "notes.txt"
    not_audio.write_text("hello")
    r = "/longplay/render"
    valid = ["prompt", "ok", "seconds", 0.5, "steps", 2]
    huge = "x" * 20000
    cases: list[tuple[Any, ...]] = [
        (r,),
        (r, 42),
        (r, ""),
        (r, "a b"),
        (r, "../x"),
        (r, huge),
        (r, 1.5, *valid),
        (r, True, *valid),
        (r, "id", "prompt"),
        (r, "id", "prompt", "p", "steps"),
        (r, "id", 3, "x"),
        (r, "id", "prompt", "p", "prompt", "q"),
        (r, "id", "frobnicate", 1, *valid),
        (r, "id", "source_path", "/x", *valid),
        (r, "id"),
        (r, "id", "prompt", ""),
        (r, "id", "prompt", huge),
        (r, "id", huge, 1),
        (r, "id", "prompt", b"blob"),
        (r, "id", "prompt", None),
        (r, "id", "negative", huge, *valid),
        ("/longplay/transform", "t"),
        ("/longplay/transform", "t", "/tmp/x.wav"),
        ("/longplay/transform", "t", "relative.wav", 0.5),
        ("/longplay/transform", "t", str(source_dir / "no.wav"), 0.5),
        ("/longplay/transform", "t", str(not_audio), 0.5),
        ("/longplay/transform", "t", str(source_dir), 0.5),
        ("/longplay/transform", "t", "/../../etc/passwd", 0.5),
        ("/longplay/transform", "t", 5, 0.5),
        ("/longplay/transform", "t", str(not_audio), "strong"),
        ("/longplay/transform", "t", str(not_audio), 2.0),
        ("/longplay/transform", "t", str(not_audio), 0.5, "strength", 0.2),
        ("/longplay/hello",),
        ("/longplay/hello", "me"),
        ("/longplay/hello", "me", 70000),
        ("/longplay/hello", 1, 2),
        ("/longplay/hello", "me", 9000, "extra"),
        ("/longplay/hello", "me", "port"),
        ("/longplay/hello", huge, 9000),
        ("/longplay/cancel",),
        ("/longplay/cancel", "a", "b"),
        ("/longplay/cancel", 7),
        ("/longplay/cancel", "ghost"),
        ("/longplay/status", "ghost"),
        ("/longplay/status", "a", 1),
        ("/longplay/status", 1.0),  # bare: the server
        ("/longplay/frobnicate", "id"),
        ("/longplay",),
        ("/", "x"),
        ("/longplay/render/now", "id", *valid),
        ("/LONGPLAY/RENDER", "id", *valid),
    ]
    bad_values: dict[str, list[Any]] = {
        "prompt": [1, 2.5, True, None, b"\x01", huge, ""],
        "seconds": [-1, 0, 0.0, -0.5, math.nan, math.inf, -math.inf, "5", 1e9, 1500, None, True],
        "bars": [0, -4, 513, 2.5, "8", math.nan, 200],  # 200 bars at 30 BPM: 1600 s, over the longest render
        "bpm": [0, 19.9, 301, -120, math.nan, math.inf, "120"],
        "beats_per_bar": [0, 33, -1, 2.5],
        "steps": [0, -3, 501, 2**31 - 1, 2.5, "20", math.nan],
        "cfg": [-0.1, 25.1, math.nan, math.inf, "7"],
        "seed": [-2, 2**31 - 1, 1.5, "1"],
        "variations": [0, -1, 17, 1.5, "2"],
        "name": ["../evil", "a/b", "..", "/etc/passwd", "C:\\x\\y", ".hidden", "tab\there", 12, "n" * 65],
        "format": ["mp3", "", 24, "wav/../x"],
        "sampler": ["nope", 3],
        "fade_ms": [-1, 101, math.nan],
    }
    for key, values in bad_values.items():
        for value in values:
            if key == "bars":
                cases.append((r, "id", "prompt", "p", "bpm", 30, "bars", value, "steps", 2))
            elif key == "bpm":
                cases.append((r, "id", "prompt", "p", "bpm", value, "bars", 1, "steps", 2))
            elif key == "prompt":
                cases.append((r, "id", "prompt", value, "steps", 2))
            else:
                cases.append((r, "id", *valid, key, value))
    cases += [(r, "id", "prompt", "p", "bars", 1), (r, "id", "prompt", "p", "seconds", 1, "bpm", 120, "bars", 1)]
    packets = [build(*c) for c in cases]

    rng = random.Random(1234)
    keys = list(bad_values)
    while len(packets) < 400:  # random single-key corruptions of a valid request
        key = rng.choice(keys)
        value = rng.choice(bad_values[key])
        pairs = dict(zip(valid[::2], valid[1::2]))
        if key in ("bars", "bpm"):
            continue
        pairs[key] = value
        flat = [x for kv in pairs.items() for x in kv]
        packets.append(build(r, f"rnd{len(packets)}", *flat))
    good = build(r, "id", *valid)
    packets += [
        b"",
        b"\x00",
        b"#bundle\x00",
        good[:7],
        good[:-3],
        b"/longplay/render\x00\x00\x00\x00,zz\x00",
        bytes(rng.randrange(256) for _ in range(64)),
        b"/x\x00\x00,s\x00\x00abc",
        b"#bundle\x00" + bytes(8),
    ]
    packets += [b"/" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(40)]
    return packets


def test_every_malformed_request_is_answered_and_the_server_keeps_serving(
    osc: Osc, client_for: ClientFor, tmp_path: Path
) -> None:
    server, queue = osc()
    c = client_for(server)
    packets = _bad_packets(tmp_path)
    assert len(packets) >= 400
    codes: dict[int, int] = {}
    for data in packets:
        c.send_raw(data)
        address, args = c.recv(timeout=20)
        assert address == "/longplay/error", (data[:80], address, args)
        assert isinstance(args[0], str) and len(args[0]) <= 128 and args[1] in (400, 404, 413), (data[:80], args)
        assert isinstance(args[2], str) and 0 < len(args[2]) < 400
        codes[args[1]] = codes.get(args[1], 0) + 1
    assert codes.get(404) and codes.get(413) and codes[400] > 300
    assert queue.list(10) == [] and queue.waiting == 0  # nothing malformed was journaled

    c.send("/longplay/render", "after-fuzz", "prompt", "still alive", "seconds", 0.5, "steps", 2)
    got = c.recv_until("after-fuzz")
    assert got[-1][0] == "/longplay/done"
    path = next(Path(args[2]) for a, args in got if a == "/longplay/file")
    assert sf.info(str(path)).frames == 22050
