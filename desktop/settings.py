"""The app's persistent options, declared once with their type and default (Picard's style), stored
as values, never as widget indices (a model is remembered by its name, a length mode by "bars").

    settings = Settings()                # QSettings("Longplay", "Longplay"): ~/.config on Linux
    port = settings["osc/port"]          # an int, whatever the backend stored
    settings["model/folders"] = [...]    # lists are stored as JSON
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QSettings

log = logging.getLogger("longplay.desktop")


@dataclass(frozen=True)
class Option:
    key: str
    type: type
    default: Any


OPTIONS: dict[str, Option] = {
    o.key: o
    for o in [
        Option("output/folder", str, ""),  # "": ~/Music/Longplay
        Option("model/selected", str, "longplay-mini"),
        Option("model/folders", list, []),  # folders added with "Add model folder…"
        Option("osc/enabled", bool, True),
        Option("osc/port", int, 9030),
        Option("drop/enabled", bool, False),
        Option("drop/folder", str, ""),
        Option("drop/prompt", str, ""),
        Option("player/loop", bool, False),
        Option("window/geometry", bytes, b""),
        Option("window/splitter", bytes, b""),
        Option("form/values", dict, {}),  # FormValues as a dict of field -> value
    ]
}


class Settings:
    """Typed access to QSettings; a value of the wrong type falls back to the option's default."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings("Longplay", "Longplay")

    def __getitem__(self, key: str) -> Any:
        opt = OPTIONS[key]
        raw = self.store.value(key)
        if raw is None:
            return _copy(opt.default)
        try:
            return _convert(raw, opt.type)
        except (TypeError, ValueError) as err:
            log.warning("setting %s: ignoring stored %r (%s)", key, raw, err)
            return _copy(opt.default)

    def __setitem__(self, key: str, value: Any) -> None:
        opt = OPTIONS[key]
        if opt.type in (list, dict):
            self.store.setValue(key, json.dumps(value))
        elif opt.type is bytes:
            self.store.setValue(key, bytes(value))
        else:
            self.store.setValue(key, opt.type(value))

    def sync(self) -> None:
        self.store.sync()


def _copy(value: Any) -> Any:
    return type(value)(value) if isinstance(value, (list, dict)) else value


def _convert(raw: Any, kind: type) -> Any:
    """QSettings' INI backend hands back strings; the registry and plist hand back typed values."""
    if kind is bool:
        if isinstance(raw, str):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError("not a boolean")
            return raw.lower() in ("true", "1")
        return bool(raw)
    if kind is int:
        return int(float(raw)) if isinstance(raw, str) else int(raw)
    if kind in (list, dict):
        value = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(value, kind):
            raise TypeError(f"expected a {kind.__name__}")
        return value
    if kind is bytes:
        return bytes(raw.data()) if hasattr(raw, "data") else bytes(raw)
    return kind(raw)
