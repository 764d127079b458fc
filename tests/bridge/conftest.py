"""Bridge fixtures: a real JobQueue on the tiny random model, an OSC server on a loopback port,
and a UDP test client. Nothing is faked: every render runs the engine."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from bridge.osc import OscServer
from bridge.queue import JobQueue

Message = tuple[str, list[Any]]
# Renders of the tiny model take ~0.3 s with 2 steps here, but the CI box is shared: be generous.
WAIT = 60.0


@pytest.fixture
def make_queue(tiny_model_dir: Path, tmp_path: Path) -> Iterator[Callable[..., JobQueue]]:
    """Start JobQueues on the tiny model (journal and outputs under tmp_path); all stopped at teardown."""
    queues: list[JobQueue] = []

    def make(**kw: Any) -> JobQueue:
        kw.setdefault("model", tiny_model_dir)
        kw.setdefault("device", "cpu")
        kw.setdefault("out_dir", tmp_path / "out")
        journal = kw.pop("journal", tmp_path / "jobs.sqlite3")
        q = JobQueue(journal, **kw)
        q.start(timeout=WAIT)
        queues.append(q)
        return q

    yield make
    for q in queues:
        q.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def build(address: str, *args: Any) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a, "f" if isinstance(a, float) else None)
    return b.build().dgram


class Client:
    """A UDP OSC client on a loopback port: what a DAW script does, minus the DAW."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.inbox: list[Message] = []

    def close(self) -> None:
        self.sock.close()

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(build(address, *args), self.server)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def recv(self, timeout: float = WAIT) -> Message:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65535)
        msg = OscPacket(data).messages[0].message
        return msg.address, list(msg.params)

    def recv_until(
        self, req_id: str, final: tuple[str, ...] = ("/longplay/done", "/longplay/error"), timeout: float = WAIT
    ) -> list[Message]:
        """Every message for ``req_id`` up to and including the first of ``final``."""
        got: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {final} for {req_id} within {timeout:g} s; got {got}")
            address, args = self.recv(left)
            if args and args[0] == req_id:
                got.append((address, args))
                if address in final:
                    return got


@pytest.fixture
def osc(make_queue: Callable[..., JobQueue]) -> Iterator[Callable[..., tuple[OscServer, JobQueue]]]:
    """Start an OscServer on 127.0.0.1:<free port> over a fresh queue."""
    servers: list[OscServer] = []

    def make(**queue_kw: Any) -> tuple[OscServer, JobQueue]:
        q = make_queue(**queue_kw)
        server = OscServer(q, "127.0.0.1", 0)
        server.start()
        servers.append(server)
        return server, q

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def client_for() -> Iterator[Callable[[OscServer], Client]]:
    clients: list[Client] = []

    def make(server: OscServer) -> Client:
        c = Client(("127.0.0.1", server.port))
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
