"""Errors raised at the bridge's doors. Each carries a one-line reason a person can act on."""

from __future__ import annotations


class BridgeError(Exception):
    """Base class for bridge errors; ``str(err)`` is a single line shown to the user."""

    def __init__(self, message: str) -> None:
        # Collapse to one line: the message ends up on a terminal, in an OSC reply or a status file.
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(BridgeError):
    """A request that fails validation at the door (CLI exit code 2, OSC error code 400)."""


class EngineUnavailable(BridgeError):
    """The engine's public API cannot be imported (not built yet, or a broken install)."""

    def __init__(self, cause: ImportError) -> None:
        super().__init__(f"the engine is not available: {cause}")
