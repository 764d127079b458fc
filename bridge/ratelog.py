"""A log that cannot be flooded: the first line of a kind goes out, repeats within ``interval``
seconds are counted, and the next line out (or ``flush``) says how many were held back.

A door facing the network must log what it drops (nothing is swallowed), but a flood of bad
packets must not become a flood of log lines: 10,000 junk datagrams a second would otherwise
fill a disk and bury the one line that matters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

LOG_INTERVAL = 10.0  # seconds between two lines of one kind
MAX_KEYS = 256  # kinds remembered; more share one key, so spoofed sources cannot grow the table
_OVERFLOW = "\x00other"


class RateLimitedLog:
    """Rate-limits log lines per ``key`` (a kind of event, not its details)."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = LOG_INTERVAL,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [time of the last line out, lines held back since, level, message, args]
        self._state: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        return len(self._state)

    def log(self, level: int, key: str, msg: str, *args: Any, exc_info: bool = False) -> bool:
        """Log ``msg % args`` unless a line of this ``key`` went out less than ``interval`` ago;
        -> whether it went out."""
        now = self._clock()
        with self._lock:
            if key not in self._state and len(self._state) >= self.max_keys:
                key = _OVERFLOW
            state = self._state.get(key)
            if state is not None and now - state[0] < self.interval:
                state[1] += 1
                state[2:] = [level, msg, args]
                return False
            held = state[1] if state is not None else 0
            self._state[key] = [now, 0, level, msg, args]
        if held:
            msg = f"{msg} (… {held} more suppressed)"
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def info(self, key: str, msg: str, *args: Any) -> bool:
        return self.log(logging.INFO, key, msg, *args)

    def warning(self, key: str, msg: str, *args: Any) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def exception(self, key: str, msg: str, *args: Any) -> bool:
        """An error with the current exception's traceback (call it from an ``except`` block)."""
        return self.log(logging.ERROR, key, msg, *args, exc_info=True)

    def flush(self) -> None:
        """Say how many lines each key still holds back (e.g. when a server stops)."""
        with self._lock:
            pending = [(s[1], s[2], s[3], s[4]) for s in self._state.values() if s[1]]
            for s in self._state.values():
                s[1] = 0
        for held, level, msg, args in pending:
            self.logger.log(level, f"… {held} more suppressed: {msg}", *args)
