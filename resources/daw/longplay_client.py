#!/usr/bin/env python3
"""A small OSC client for `longplay serve`: send one request, wait for the files, print their paths.

    python longplay_client.py "dusty boom bap drums" --bpm 92 --bars 8
    python longplay_client.py "glitchy drums" --transform /path/beatbox.wav --strength 0.6 --seconds 10

Prints one absolute path per line and exits 0 when the render is done; prints the server's error
(`longplay-client: error 400: steps must be ...`) and exits 1 otherwise. Needs only python-osc
(`pip install python-osc`). DAW scripts (see longplay_render.lua) shell out to it.

UDP may lose packets, so the client re-sends its request until it is acknowledged and asks for
`/longplay/status` when the server goes quiet; both are safe because the server answers a known
request id with its state instead of rendering twice.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
import uuid
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket


def build(address: str, *args: Any) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a, "f" if isinstance(a, float) else None)
    return b.build().dgram


class LongplayClient:
    """One UDP socket: requests go out from it and replies come back to it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9030, name: str = "longplay-client") -> None:
        self.server = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if host in ("127.0.0.1", "localhost") else "0.0.0.0", 0))
        self.name = name

    def close(self) -> None:
        self.sock.close()

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(build(address, *args), self.server)

    def receive(self, timeout: float) -> tuple[str, list[Any]] | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, _ = self.sock.recvfrom(65535)
        except (socket.timeout, ConnectionRefusedError):
            return None
        msgs = OscPacket(data).messages
        return (msgs[0].message.address, list(msgs[0].message.params)) if msgs else None

    def hello(self, timeout: float = 5.0) -> tuple[str, str]:
        """-> (server version, model name)."""
        port = self.sock.getsockname()[1]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send("/longplay/hello", self.name, port)
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                msg = self.receive(end - time.monotonic())
                if msg and msg[0] == "/longplay/hello/ok":
                    return str(msg[1][0]), str(msg[1][1])
        raise TimeoutError(f"no answer from longplay serve at {self.server[0]}:{self.server[1]}")

    def render(
        self,
        req_id: str,
        pairs: dict[str, Any],
        *,
        source: str | None = None,
        strength: float = 0.7,
        timeout: float = 600.0,
        on_progress: Any = None,
    ) -> list[str]:
        """Send /longplay/render (or /longplay/transform with a source) and wait for the files."""
        flat = [x for kv in pairs.items() for x in kv]
        request = (
            ("/longplay/transform", req_id, source, float(strength), *flat)
            if source
            else ("/longplay/render", req_id, *flat)
        )
        files: dict[int, str] = {}
        acknowledged, last_heard = False, time.monotonic()
        deadline = time.monotonic() + timeout
        self.send(*request)
        while time.monotonic() < deadline:
            msg = self.receive(1.0)
            now = time.monotonic()
            if msg is None:
                if now - last_heard > 1.0:  # lost packets, or a long quiet stage: ask again
                    self.send(*request) if not acknowledged else self.send("/longplay/status", req_id)
                    last_heard = now
                continue
            address, args = msg
            if not args or args[0] != req_id:
                continue
            last_heard, acknowledged = now, True
            if address == "/longplay/progress" and on_progress:
                on_progress(args[1], args[2], args[3], args[4])
            elif address == "/longplay/file":
                files[int(args[1])] = str(args[2])
            elif address == "/longplay/done":
                if len(files) < int(args[1]):  # a /file got lost: status repeats them all
                    self.send("/longplay/status", req_id)
                    continue
                return [files[k] for k in sorted(files)]
            elif address == "/longplay/error":
                raise RuntimeError(f"error {args[1]}: {args[2]}")
        raise TimeoutError(f"{req_id}: no result within {timeout:g} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("prompt")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9030)
    p.add_argument("--id", help="request id (default: a random one)")
    for key, typ in (
        ("seconds", float),
        ("bpm", float),
        ("bars", int),
        ("beats-per-bar", int),
        ("seed", int),
        ("steps", int),
        ("cfg", float),
        ("variations", int),
    ):
        p.add_argument(f"--{key}", type=typ)
    p.add_argument("--negative")
    p.add_argument("--name")
    p.add_argument("--format", help="wav (24-bit, default), wav16, wav32f, flac, flac16")
    p.add_argument("--loudness", help="integrated loudness in LUFS, -60 to 0 (server default -14), or off")
    p.add_argument("--transform", metavar="SOURCE", help="audio-to-audio from this file (absolute path)")
    p.add_argument("--strength", type=float, default=0.7)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    a = p.parse_args(argv)
    pairs = {
        k: v
        for k, v in {
            "prompt": a.prompt,
            "negative": a.negative,
            "seconds": a.seconds,
            "bpm": a.bpm,
            "bars": a.bars,
            "beats_per_bar": a.beats_per_bar,
            "seed": a.seed,
            "steps": a.steps,
            "cfg": a.cfg,
            "variations": a.variations,
            "name": a.name,
            "format": a.format,
        }.items()
        if v is not None
    }
    if a.loudness is not None:  # a number travels as an OSC float, "off" as a string
        pairs["loudness"] = a.loudness if a.loudness.strip().lower() in ("off", "none") else float(a.loudness)

    def progress(fraction: float, stage: str, step: int, steps: int) -> None:
        if not a.quiet:
            print(f"\r{fraction:4.0%} {stage} {step}/{steps}\033[K", end="", file=sys.stderr, flush=True)

    client = LongplayClient(a.host, a.port)
    try:
        client.hello()
        paths = client.render(
            a.id or uuid.uuid4().hex[:16],
            pairs,
            source=a.transform,
            strength=a.strength,
            timeout=a.timeout,
            on_progress=progress,
        )
    except (RuntimeError, TimeoutError) as err:
        print(f"\nlongplay-client: {err}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if not a.quiet:
        print(file=sys.stderr)
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
