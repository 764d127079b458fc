"""Errors raised at the bridge's doors. Each carries a one-line reason a person can act on.

``code`` is the OSC error code of DESIGN.md that reports the error (400 bad argument, 404 missing
source or unknown id, 409 duplicate id, 413 too long, 499 cancelled, 500 internal, 503 busy or out
of memory); the drop folder writes it into status files too.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base class for bridge errors; ``str(err)`` is a single line shown to the user."""

    code = 500

    def __init__(self, message: str) -> None:
        # Collapse to one line: the message ends up on a terminal, in an OSC reply or a status file.
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(BridgeError):
    """A request that fails validation at the door (CLI exit code 2, OSC error code 400)."""

    code = 400


class SourceNotFound(UsageError):
    """A transform's source file does not exist (OSC 404)."""

    code = 404


class TooLong(UsageError):
    """A requested length past what the model can render (OSC 413)."""

    code = 413


class MalformedPacket(UsageError):
    """A datagram that is not well-formed OSC: a broken bundle, an unsupported type tag (OSC 400)."""


class BundleTooLarge(UsageError):
    """A datagram holding more messages, or deeper bundles, than the door answers (OSC 400): one
    error for the whole datagram, so a small packet cannot buy thousands of replies."""


class UnknownJob(BridgeError):
    """A status or cancel request for an id the journal has never seen (OSC 404)."""

    code = 404


class DuplicateRequest(BridgeError):
    """A known request id re-sent with a different request (OSC 409)."""

    code = 409


class QueueFull(BridgeError):
    """The queue holds as many waiting jobs as it may; the request is refused, not dropped (OSC 503)."""

    code = 503


class ServerBusy(QueueFull):
    """More datagrams arrived than the OSC door holds waiting to be handled (OSC 503)."""


class EngineUnavailable(BridgeError):
    """The engine's public API cannot be imported (not built yet, or a broken install)."""

    def __init__(self, cause: ImportError) -> None:
        super().__init__(f"the engine is not available: {cause}")


class DiskFull(BridgeError):
    """A write failed for want of space (a full disk or quota, SQLite's "database or disk is
    full"): "disk full: <path>" (OSC 503: free some space and send again)."""

    code = 503


class WorkerStopped(BridgeError):
    """The render worker has stopped (the reason follows); requests are refused until the server
    restarts, and what is journaled runs then (OSC 503)."""

    code = 503
