"""The OSC door (DESIGN.md's address space) over UDP, on a socket loop this module owns.

python-osc does the wire format (``OscPacket`` to parse, ``OscMessageBuilder`` to build); the
loop is ours so that nothing is swallowed: a packet that does not parse, an unknown address or a
bad argument is logged and answered with ``/longplay/error <req_id> <code> <reason>``, and the
server keeps serving. Renders never run here: handlers only validate and submit to the queue.

Replies go to the sender's host, on the port that sender (host + source port) registered with
``/longplay/hello``, else the port the host registered last, else the packet's source port.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from typing import Any, Callable, Sequence

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from .errors import BridgeError, UnknownJob, UsageError
from .journal import CANCELLED, DONE, FAILED, QUEUED, RUNNING
from .queue import JobEvent, JobInfo, JobQueue
from .requests import RENDER_KEYS, TRANSFORM_KEYS, as_int, as_text, check_id, kind, show
from .writer import VERSION

log = logging.getLogger("longplay.osc")

DEFAULT_PORT = 9030
PROGRESS_INTERVAL = 0.1  # at most 10 progress replies per second per job; stage changes always go
Address = tuple[str, int]


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _networks(allow: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Allow-list entries (IP, CIDR or host name) -> networks; host names are resolved once."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in allow:
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(entry, None, type=socket.SOCK_DGRAM)
        except OSError as err:
            raise UsageError(f"--allow {entry}: not an IP address, network or known host name ({err})") from None
        nets += [ipaddress.ip_network(info[4][0]) for info in infos]
    return nets


class OscServer:
    """Serves DESIGN.md's ``/longplay/*`` addresses for one ``JobQueue``."""

    def __init__(self, queue: JobQueue, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 allow: Sequence[str] = ()) -> None:
        if not is_loopback(host) and not allow:
            raise UsageError(f"listening on {host!r} (not loopback) needs an allow-list of client hosts "
                             "(--allow HOST); without one only this machine can send requests")
        self.queue = queue
        self.host, self.port = host, port
        self._allowed = _networks(allow)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ports: dict[Address, int] = {}  # (host, source port) -> reply port from /hello
        self._host_ports: dict[str, int] = {}  # host -> the reply port it registered last
        self._watchers: dict[str, set[Address]] = {}  # job id -> extra addresses (from status/cancel)
        self._last_progress: dict[str, tuple[float, str]] = {}
        self._ignored_logged: dict[str, float] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._handlers: dict[str, Callable[[list[Any], Address], None]] = {
            "/longplay/hello": self._hello, "/longplay/render": self._render,
            "/longplay/transform": self._transform, "/longplay/cancel": self._cancel,
            "/longplay/status": self._status,
        }

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Address:
        """Bind and serve on a background thread; -> the bound (host, port) (port 0 picks one)."""
        info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(info[0], socket.SOCK_DGRAM)
        try:
            sock.bind(info[4])
        except OSError as err:
            sock.close()
            raise BridgeError(f"cannot listen for OSC on {self.host}:{self.port}: {err}") from err
        sock.settimeout(0.2)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._unsubscribe = self.queue.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._loop, name="longplay-osc", daemon=True)
        self._thread.start()
        return self.host, self.port

    def stop(self) -> None:
        self._stop.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()

    def _loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data, addr = self._sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError as err:  # e.g. ECONNREFUSED: an earlier reply hit a closed port
                if self._stop.is_set():
                    return
                log.debug("recv: %s", err)
                continue
            self.handle(data, (addr[0], addr[1]))

    # ------------------------------------------------------------------ incoming
    def handle(self, data: bytes, addr: Address) -> None:
        """Handle one datagram from ``addr``. Never raises: every failure is logged and answered."""
        if not self._is_allowed(addr[0]):
            return
        reply = self._reply_address(addr)
        try:
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as err:  # noqa: BLE001 - python-osc raises several types for malformed data
            log.warning("malformed OSC packet from %s:%d: %s", addr[0], addr[1], err)
            self.send(reply, "/longplay/error", "", 400, f"malformed OSC packet: {show(str(err), 120)}")
            return
        if not messages:
            self.send(reply, "/longplay/error", "", 400, "the OSC bundle holds no messages")
        for msg in messages:
            self._dispatch(msg.address, list(msg.params), addr)

    def _dispatch(self, address: str, args: list[Any], addr: Address) -> None:
        rid = args[0][:128] if args and isinstance(args[0], str) else ""
        try:
            handler = self._handlers.get(address)
            if handler is None:
                raise UsageError(f"unknown address {show(address)}; expected one of {', '.join(self._handlers)}")
            handler(args, addr)
        except BridgeError as err:
            log.info("%s from %s:%d refused: %d %s", show(address), addr[0], addr[1], err.code, err.message)
            self.send(self._reply_address(addr), "/longplay/error", rid, err.code, err.message)
        except Exception as err:  # noqa: BLE001 - a bug in a handler must not stop the server
            log.exception("%s from %s:%d failed", show(address), addr[0], addr[1])
            self.send(self._reply_address(addr), "/longplay/error", rid, 500, f"internal error: {show(str(err))}")

    def _hello(self, args: list[Any], addr: Address) -> None:
        _count(args, ("client_name", "reply_port"))
        name = as_text("client_name", args[0], 64)
        port = as_int("reply_port", args[1], 0, 65535)
        with self._lock:
            self._ports[addr] = port or addr[1]
            self._host_ports[addr[0]] = port or addr[1]
        log.info("hello from %s at %s:%d (replies to port %d)", show(name), addr[0], addr[1], port or addr[1])
        self.send(self._reply_address(addr), "/longplay/hello/ok", VERSION, self.queue.model_name)

    def _render(self, args: list[Any], addr: Address) -> None:
        rid = _req_id(args)
        values = _pairs(args[1:], first=2)
        for key in values:
            if key in TRANSFORM_KEYS:
                raise UsageError(f"{key} belongs to /longplay/transform, not /longplay/render")
        self._submit(rid, values, addr)

    def _transform(self, args: list[Any], addr: Address) -> None:
        rid = _req_id(args)
        if len(args) < 3:
            raise UsageError(f"/longplay/transform needs req_id, source_path, strength; "
                             f"{('source_path', 'strength')[len(args) - 1]} is missing")
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
                self.send(to, "/longplay/file", job.id, f.variation, f.path, float(f.seconds), f.seed)
            elif event.kind == "done":  # its files went out one by one as they were written
                self.send(to, "/longplay/done", job.id, len(job.files), float(round(job.elapsed, 3)))
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
                self.send(to, "/longplay/file", job.id, f.variation, f.path, float(f.seconds), f.seed)
            self.send(to, "/longplay/done", job.id, len(job.files), float(round(job.elapsed, 3)))
        elif job.state in (FAILED, CANCELLED):
            self.send(to, "/longplay/error", job.id, job.error_code or 500, job.error or job.state)

    def send(self, to: Address, address: str, *args: Any) -> None:
        builder = OscMessageBuilder(address)
        for a in args:
            builder.add_arg(a, "f" if isinstance(a, float) else None)
        try:
            data = builder.build().dgram
            if self._sock is not None:
                self._sock.sendto(data, to)
        except Exception as err:  # noqa: BLE001 - a reply that cannot go out is logged, not fatal
            log.warning("could not send %s to %s:%d: %s", address, to[0], to[1], err)

    # ------------------------------------------------------------------ addresses
    def _is_allowed(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if ip.is_loopback or any(ip in net for net in self._allowed):
            return True
        now = time.monotonic()
        if now - self._ignored_logged.get(host, -1e9) > 10:  # one line per host per 10 s, not a flood
            self._ignored_logged[host] = now
            log.warning("ignored OSC from %s: not in the allow-list", host)
        return False

    def _reply_address(self, addr: Address) -> Address:
        with self._lock:
            port = self._ports.get(addr) or self._host_ports.get(addr[0]) or addr[1]
        return addr[0], port

    def _watch(self, job_id: str, to: Address) -> None:
        with self._lock:
            self._watchers.setdefault(job_id, set()).add(to)

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
        if key in values:
            raise UsageError(f"{show(key)} is given twice")
        if key not in RENDER_KEYS | TRANSFORM_KEYS:
            raise UsageError(f"unknown argument {show(key)}; expected some of {', '.join(sorted(RENDER_KEYS))}")
        values[key] = args[i + 1]
    return values
