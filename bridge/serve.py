"""``longplay serve``: the job queue, the OSC server and (optionally) the watched folder, headless.

For a GPU box next to the studio machine, or a DAW user's own machine: one process, one worker
that owns the model, every door submitting to the same durable queue. SIGTERM / SIGINT stop it
cleanly (the running render is interrupted and stays queued for the next start); SIGKILL loses
nothing that was acknowledged.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dropfolder import DropFolder
from .osc import DEFAULT_PORT, OscServer
from .queue import JobQueue
from .requests import DEFAULT_STRENGTH, Limits


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allow: tuple[str, ...] = ()
    drop: str | None = None
    model: str | None = None
    out: str = "outputs"
    device: str | None = None
    journal: str | None = None  # default: <out>/.longplay/jobs.sqlite3
    queue_limit: int = 32
    source_roots: tuple[str, ...] = ()  # transform sources must lie under these (empty: anywhere)
    prompt: str = ""  # the drop folder's prompt for audio files
    strength: float = DEFAULT_STRENGTH
    verbose: bool = False


class Server:
    """The running pieces of ``serve``; tests and the desktop app can run it in-process."""

    def __init__(self, opts: ServeOptions) -> None:
        self.opts = opts
        out = Path(opts.out)
        journal = Path(opts.journal) if opts.journal else out / ".longplay" / "jobs.sqlite3"
        limits = Limits(
            allowed_roots=tuple(Path(r).resolve() for r in opts.source_roots),
            default_prompt=opts.prompt,
            default_strength=opts.strength,
        )
        self.queue = JobQueue(
            journal, model=opts.model, device=opts.device, out_dir=out, limit=opts.queue_limit, limits=limits
        )
        self.osc = OscServer(self.queue, opts.host, opts.port, opts.allow)
        self.drop = (
            DropFolder(self.queue, opts.drop, default_prompt=opts.prompt, default_strength=opts.strength)
            if opts.drop
            else None
        )

    def start(self) -> str:
        """Load the model, recover the journal, open the doors; -> the one line saying where."""
        try:
            self.queue.start()
            host, port = self.osc.start()
            if self.drop is not None:
                self.drop.start()
        except BaseException:
            self.stop()
            raise
        where = [f"OSC on udp://{host}:{port}"]
        if self.drop is not None:
            where.append(f"drop folder {self.drop.root}")
        where += [f"outputs in {self.queue.out_dir}", f"model {self.queue.model_name}"]
        return "longplay serve: " + ", ".join(where)

    def stop(self) -> None:
        self.osc.stop()
        if self.drop is not None:
            self.drop.stop()
        self.queue.stop()


def run(opts: ServeOptions, ready: Callable[[str], Any] | None = None, stop: threading.Event | None = None) -> int:
    """Serve until SIGTERM / SIGINT (or ``stop`` is set); -> the exit code."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("longplay: %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("longplay")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if opts.verbose else logging.WARNING)
    stop = stop or threading.Event()
    previous = {}
    try:
        server = Server(opts)
        line = server.start()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: stop.set())
        try:
            (ready or (lambda s: print(s, flush=True)))(line)
            while not stop.wait(0.5):
                pass
        finally:
            server.stop()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        logger.removeHandler(handler)
    return 0
