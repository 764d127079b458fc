"""The OSC door (DESIGN.md's address space) over UDP, on a socket loop this module owns.

python-osc decodes messages and builds replies; the structure of a datagram is checked first
(``osc_wire``). Nothing is swallowed: a packet that does not parse, an unknown address or a bad
argument is logged (rate-limited) and answered with ``/longplay/error <req_id> <code> <reason>``,
and the server keeps serving. Renders never run here: handlers only validate and submit.

Two threads: one only receives datagrams and queues them in memory (a burst must leave the
kernel's buffer faster than requests are journaled), the other handles them in arrival order.

A reply goes to the port its sender (host + source port) registered with ``/longplay/hello``,
else to the packet's source port: one client's hello never redirects another's replies. Messages
on the addresses this server sends (``REPLY_ADDRESSES``) are never requests: they are dropped, so
two servers (or a server and itself) cannot answer each other forever.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder

from .errors import BridgeError, ServerBusy, UnknownJob, UsageError
from .jobs import JobEvent, JobInfo
from .journal import CANCELLED, DONE, FAILED, QUEUED, RUNNING
from .osc_net import is_allowed, is_loopback, is_own, networks, open_udp
from .osc_wire import MAX_ID_ECHO, RECV_BYTES, decode, peek_id, split
from .queue import JobQueue
from .ratelog import RateLimitedLog
from .requests import RENDER_KEYS, TRANSFORM_KEYS, as_int, as_text, check_id, kind, show
from .writer import VERSION

log = logging.getLogger("longplay.osc")

DEFAULT_PORT = 9030
PROGRESS_INTERVAL = 0.1  # at most 10 progress replies per second per job; stage changes always go
MAX_CLIENT_NAME = 64  # characters of /longplay/hello's client_name
MAX_CLIENTS = 1024  # reply ports remembered from /longplay/hello; the oldest is forgotten first
MAX_WATCHERS = 16  # addresses (besides the submitter's) that hear a job's events after status/cancel
MAX_BACKLOG = 4096  # datagrams received but not yet handled; past it (or MAX_BACKLOG_BYTES): 503
MAX_BACKLOG_BYTES = 32 << 20
REPLY_ADDRESSES = frozenset(
    {
        "/longplay/hello/ok",
        "/longplay/accepted",
        "/longplay/progress",
        "/longplay/file",
        "/longplay/done",
        "/longplay/error",
        "/longplay/server",
    }
)
Address = tuple[str, int]


class OscServer:
    """Serves DESIGN.md's ``/longplay/*`` addresses for one ``JobQueue``."""

    def __init__(
        self, queue: JobQueue, host: str = "127.0.0.1", port: int = DEFAULT_PORT, allow: Sequence[str] = ()
    ) -> None:
        if not is_loopback(host) and not allow:
            raise UsageError(
                f"listening on {host!r} (not loopback) needs an allow-list of client hosts "
                "(--allow HOST); without one only this machine can send requests"
            )
        self.queue = queue
        self.host, self.port = host, port
        self._bound_host = host
        self._allowed = networks(allow)
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ports: collections.OrderedDict[Address, int] = collections.OrderedDict()  # from /hello
        self._watchers: dict[str, set[Address]] = {}  # job id -> extra addresses (from status/cancel)
        self._last_progress: dict[str, tuple[float, str]] = {}
        self._backlog: collections.deque[tuple[bytes, Address]] = collections.deque()
        self._backlog_bytes = 0
        self._wake = threading.Condition()
        self._log = RateLimitedLog(log)
        self._unsubscribe: Callable[[], None] | None = None
        self._handlers: dict[str, Callable[[list[Any], Address], None]] = {
            "/longplay/hello": self._hello,
            "/longplay/render": self._render,
            "/longplay/transform": self._transform,
            "/longplay/extend": self._extend,
            "/longplay/replace": self._replace,
            "/longplay/cancel": self._cancel,
            "/longplay/status": self._status,
        }

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Address:
        """Bind and serve on background threads; -> the bound (host, port) (port 0 picks one)."""
        sock, self._bound_host = open_udp(self.host, self.port)
        sock.settimeout(0.2)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._unsubscribe = self.queue.subscribe(self.on_event)
        self._threads = [
            threading.Thread(target=self._receive, name="longplay-osc-receive", daemon=True),
            threading.Thread(target=self._serve, name="longplay-osc", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self.host, self.port

    def stop(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._unsubscribe is not None:
            self._unsubscribe()
        for thread in self._threads:
            thread.join(5)
        if self._sock is not None:
            self._sock.close()
        self._log.flush()

    @property
    def receive_buffer(self) -> int:
        """The socket's receive buffer in bytes as the kernel reports it (0 before ``start``)."""
        return self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) if self._sock is not None else 0

    def _receive(self) -> None:
        """Only receive and queue: the kernel's buffer is emptied as fast as datagrams arrive."""
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(RECV_BYTES)
            except TimeoutError:
                continue
            except OSError as err:  # e.g. ECONNREFUSED: an earlier reply hit a closed port
                if self._stop.is_set():
                    return
                log.debug("recv: %s", err)
                continue
            addr = (peer[0], peer[1])
            if not self._admit(addr):
                continue
            with self._wake:
                full = len(self._backlog) >= MAX_BACKLOG or self._backlog_bytes + len(data) > MAX_BACKLOG_BYTES
                if not full:
                    self._backlog.append((data, addr))
                    self._backlog_bytes += len(data)
                    self._wake.notify()
            if full:
                self._log.warning(
                    "busy",
                    "OSC backlog full (%d datagrams): refused one from %s:%d with 503",
                    len(self._backlog),
                    addr[0],
                    addr[1],
                )
                busy = ServerBusy("the server is busy (too many requests waiting to be read); send it again")
                self.send(self._reply_address(addr), "/longplay/error", peek_id(data), busy.code, busy.message)

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._backlog and not self._stop.is_set():
                    self._wake.wait()
                if self._stop.is_set():
                    return
                data, addr = self._backlog.popleft()
                self._backlog_bytes -= len(data)
            self.handle(data, addr)

    # ------------------------------------------------------------------ incoming
    def handle(self, data: bytes, addr: Address) -> None:
        """Handle one datagram from ``addr``. Never raises: every failure is logged and answered."""
        if not self._admit(addr):  # again: callers other than the receiving thread come here too
            return
        try:
            self._packet(data, addr)
        except Exception as err:  # noqa: BLE001 - a bug of ours must cost one answer, not the server
            self._log.exception("internal", "OSC packet from %s:%d failed", addr[0], addr[1])
            self.send(self._reply_address(addr), "/longplay/error", "", 500, f"internal error: {show(str(err))}")

    def _packet(self, data: bytes, addr: Address) -> None:
        try:
            messages = split(data)
        except BridgeError as err:  # a broken or oversized bundle: one answer for the datagram
            self._log.warning("malformed", "bad OSC packet from %s:%d: %s", addr[0], addr[1], err.message)
            self.send(self._reply_address(addr), "/longplay/error", peek_id(data), err.code, err.message)
            return
        for view in messages:
            try:
                address, args = decode(view)
            except BridgeError as err:
                self._log.warning("malformed", "bad OSC message from %s:%d: %s", addr[0], addr[1], err.message)
                self.send(self._reply_address(addr), "/longplay/error", peek_id(view), err.code, err.message)
                continue
            if address in REPLY_ADDRESSES:  # another server's answer (or our own): never a request
                self._log.info(
                    "reply-address", "dropped %s from %s:%d: a reply address, not a request", address, addr[0], addr[1]
                )
                continue
            self._dispatch(address, args, addr)

    def _admit(self, addr: Address) -> bool:
        """Loopback and allow-listed hosts only, and never a datagram from this server's socket."""
        if not is_allowed(addr[0], self._allowed):
            self._log.warning("not-allowed", "ignored OSC from %s: not in the allow-list", addr[0])
            return False
        if self._is_own(addr):
            self._log.warning("own", "ignored OSC from this server's own socket %s:%d", addr[0], addr[1])
            return False
        return True

    def _dispatch(self, address: str, args: list[Any], addr: Address) -> None:
        rid = args[0][:MAX_ID_ECHO] if args and isinstance(args[0], str) else ""
        try:
            handler = self._handlers.get(address)
            if handler is None:
                raise UsageError(f"unknown address {show(address)}; expected one of {', '.join(self._handlers)}")
            handler(args, addr)
        except BridgeError as err:
            self._log.info(
                "refused", "%s from %s:%d refused: %d %s", show(address), addr[0], addr[1], err.code, err.message
            )
            self.send(self._reply_address(addr), "/longplay/error", rid, err.code, err.message)
        except Exception as err:  # noqa: BLE001 - a bug in a handler must not stop the server
            self._log.exception("internal", "%s from %s:%d failed", show(address), addr[0], addr[1])
            self.send(self._reply_address(addr), "/longplay/error", rid, 500, f"internal error: {show(str(err))}")

    def _hello(self, args: list[Any], addr: Address) -> None:
        _count(args, ("client_name", "reply_port"))
        name = as_text("client_name", args[0], MAX_CLIENT_NAME)
        port = as_int("reply_port", args[1], 0, 65535) or addr[1]
        if self._is_own((addr[0], port)):
            raise UsageError(
                f"reply_port {port} is this server's own port: its replies would come back to it; "
                "give the port your client listens on (0: this packet's source port)"
            )
        with self._lock:
            self._ports[addr] = port
            self._ports.move_to_end(addr)
            while len(self._ports) > MAX_CLIENTS:
                self._ports.popitem(last=False)
        log.info("hello from %s at %s:%d (replies to port %d)", show(name), addr[0], addr[1], port)
        self.send(self._reply_address(addr), "/longplay/hello/ok", VERSION, self.queue.model_name)

    def _render(self, args: list[Any], addr: Address) -> None:
        rid = _req_id(args)
        values = _pairs(args[1:], first=2)
        for key in values:
            if key in TRANSFORM_KEYS:
                raise UsageError(f"{key} belongs to /longplay/transform, not /longplay/render")
        self._submit(rid, values, addr)

    def _extend(self, args: list[Any], addr: Address) -> None:
        self._edit("extend", ("source_path", "bars"), args, addr)

    def _replace(self, args: list[Any], addr: Address) -> None:
        self._edit("replace", ("source_path", "from_bar", "to_bar"), args, addr)

    def _edit(self, edit: str, positional: tuple[str, ...], args: list[Any], addr: Address) -> None:
        """`/longplay/<edit> req_id <positional...> [key value ...]` (bridge/edits.py's keys)."""
        rid = _req_id(args)
        if len(args) < 1 + len(positional):
            raise UsageError(
                f"/longplay/{edit} needs req_id, {', '.join(positional)}; {positional[len(args) - 1]} is missing"
            )
        values = _pairs(args[1 + len(positional) :], first=2 + len(positional))
        for key in (*positional, "edit"):
            if key in values:
                raise UsageError(f"{key} is given twice (it is a positional argument of /longplay/{edit})")
        self._submit(rid, {"edit": edit, **dict(zip(positional, args[1:], strict=False)), **values}, addr)

    def _transform(self, args: list[Any], addr: Address) -> None:
        rid = _req_id(args)
        if len(args) < 3:
            raise UsageError(
                f"/longplay/transform needs req_id, source_path, strength; "
                f"{('source_path', 'strength')[len(args) - 1]} is missing"
            )
        values = _pairs(args[3:], first=4)
        for key in TRANSFORM_KEYS:
            if key in values:
                raise UsageError(f"{key} is given twice (it is a positional argument of /longplay/transform)")
        self._submit(rid, {"source_path": args[1], "strength": args[2], **values}, addr)

    def _submit(self, rid: str, values: dict[str, Any], addr: Address) -> None:
        reply = self._reply_address(addr)
        info = self.queue.submit(values, rid, source="osc", reply_to=f"{reply[0]}:{reply[1]}")
        if info.duplicate:  # a re-sent id: answer with its state, not a second render
            self._answer_state(info, reply)

    def _cancel(self, args: list[Any], addr: Address) -> None:
        _count(args, ("req_id",))
        reply = self._reply_address(addr)
        rid = check_id(args[0])
        info = self.queue.get(rid)
        if info is None:
            raise UnknownJob(f"unknown request id {rid!r}")
        if not info.is_final:
            self._watch(rid, reply)  # the requester hears the 499 too, not only the submitter
            info = self.queue.cancel(rid)
        if info.is_final and info.error_code != 499:
            self._answer_state(info, reply)  # it finished before the cancel came: say so
            with self._lock:
                self._watchers.pop(rid, None)

    def _status(self, args: list[Any], addr: Address) -> None:
        if not args:  # the server itself: is its worker running, and how many jobs wait
            health = self.queue.health
            self.send(
                self._reply_address(addr), "/longplay/server", "", health.state, self.queue.waiting, health.reason or ""
            )
            return
        _count(args, ("req_id",))
        rid = check_id(args[0])
        info = self.queue.get(rid)
        if info is None:
            raise UnknownJob(f"unknown request id {rid!r}")
        reply = self._reply_address(addr)
        self._answer_state(info, reply)
        if not info.is_final:
            self._watch(rid, reply)

    # ------------------------------------------------------------------ outgoing
    def on_event(self, event: JobEvent) -> None:
        """Queue listener: forward events of OSC-submitted or watched jobs to their clients."""
        job = event.job
        targets = self._targets(job)
        if not targets:
            return
        if event.kind == "progress":
            now = time.monotonic()
            with self._lock:
                last_t, last_stage = self._last_progress.get(job.id, (0.0, ""))
                if job.stage == last_stage and now - last_t < PROGRESS_INTERVAL:
                    return
                self._last_progress[job.id] = (now, job.stage)
        for to in targets:
            if event.kind == "file" and event.file is not None:
                f = event.file
                self.send(to, "/longplay/file", job.id, f.variation, f.path, float(f.seconds), f.seed, *f.tempo_args())
            elif event.kind == "done":  # its files went out one by one as they were written
                self._done(to, job)
            else:
                self._answer_state(job, to)
        if job.is_final:
            with self._lock:
                self._watchers.pop(job.id, None)
                self._last_progress.pop(job.id, None)

    def _answer_state(self, job: JobInfo, to: Address) -> None:
        """What a client needs to catch up: accepted / progress while waiting or running, the files
        and done (or the error) once finished."""
        if job.state == QUEUED:
            self.send(to, "/longplay/accepted", job.id, max(job.position, 0))
        elif job.state == RUNNING:
            self.send(to, "/longplay/progress", job.id, float(job.fraction), job.stage, job.step, job.steps)
        elif job.state == DONE:
            for f in job.files:
                self.send(to, "/longplay/file", job.id, f.variation, f.path, float(f.seconds), f.seed, *f.tempo_args())
            self._done(to, job)
        elif job.state in (FAILED, CANCELLED):
            self.send(to, "/longplay/error", job.id, job.error_code or 500, job.error or job.state)

    def _done(self, to: Address, job: JobInfo) -> None:
        """``/longplay/done``, then the first file's tempo check (measured bpm, first downbeat,
        confidence; 0.0 when not measured): trailing arguments, so older clients read on as before."""
        tempo = job.files[0].tempo_args() if job.files else (0.0, 0.0, 0.0)
        self.send(to, "/longplay/done", job.id, len(job.files), float(round(job.elapsed, 3)), *tempo)

    def send(self, to: Address, address: str, *args: Any) -> None:
        assert address in REPLY_ADDRESSES  # what the server sends, it drops on receipt: no loops
        if self._is_own(to):  # e.g. a journaled reply address from before this check existed
            self._log.warning("own", "not sending %s to %s:%d: that is this server's own socket", address, to[0], to[1])
            return
        builder = OscMessageBuilder(address)
        for a in args:
            builder.add_arg(a, "f" if isinstance(a, float) else None)
        try:
            data = builder.build().dgram
            if self._sock is not None:
                self._sock.sendto(data, to)
        except Exception as err:  # noqa: BLE001 - a reply that cannot go out is logged, not fatal
            self._log.warning("send", "could not send %s to %s:%d: %s", address, to[0], to[1], err)

    # ------------------------------------------------------------------ addresses
    def _is_own(self, addr: Address) -> bool:
        return self._sock is not None and is_own(addr[0], addr[1], self._bound_host, self.port)

    def _reply_address(self, addr: Address) -> Address:
        with self._lock:
            return addr[0], self._ports.get(addr, addr[1])

    def _watch(self, job_id: str, to: Address) -> None:
        with self._lock:
            watchers = self._watchers.setdefault(job_id, set())
            if len(watchers) < MAX_WATCHERS:  # else each event would buy one reply per asker: poll instead
                watchers.add(to)

    def _targets(self, job: JobInfo) -> set[Address]:
        targets: set[Address] = set()
        if job.reply_to:
            host, _, port = job.reply_to.rpartition(":")
            targets.add((host, int(port)))
        with self._lock:
            targets |= self._watchers.get(job.id, set())
        return targets


def _req_id(args: list[Any]) -> str:
    if not args:
        raise UsageError("req_id is missing (the first argument)")
    return check_id(args[0])


def _count(args: list[Any], names: tuple[str, ...]) -> None:
    if len(args) < len(names):
        raise UsageError(f"{names[len(args)]} is missing (expected {', '.join(names)})")
    if len(args) > len(names):
        raise UsageError(f"too many arguments: expected {', '.join(names)}, got {len(args)} values")


def _pairs(args: list[Any], first: int) -> dict[str, Any]:
    """Key/value pairs after the positional arguments; ``first`` numbers the first one for messages."""
    if len(args) % 2:
        raise UsageError(f"arguments must be key/value pairs: {show(args[-1])} has no value")
    values: dict[str, Any] = {}
    for i in range(0, len(args), 2):
        key = args[i]
        if not isinstance(key, str):
            raise UsageError(f"argument {first + i} must be a key name such as 'prompt' (got {kind(key)})")
        if key == "lora":  # several LoRA files: the key repeated, one file each (docs/osc.md)
            values.setdefault("lora", []).append(args[i + 1])
            continue
        if key in values:
            raise UsageError(f"{show(key)} is given twice")
        if key not in RENDER_KEYS | TRANSFORM_KEYS:
            raise UsageError(f"unknown argument {show(key)}; expected some of {', '.join(sorted(RENDER_KEYS))}")
        values[key] = args[i + 1]
    return values
