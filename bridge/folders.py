"""Folders a command will write into, checked at the door: a read-only, unwritable or missing
place ends in one line naming the argument (exit 2), not in a traceback from deep in SQLite or in
the first render. Standard library only, so the CLI checks before it imports the engine."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UsageError


def check_writable_folder(flag: str, path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and its parents) if needed and prove a file can be written in it (as root,
    permissions say nothing, so a file is written and removed); -> the folder. ``UsageError``
    naming ``flag`` otherwise: read-only, no permission, a file in the way, a full disk."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag}: {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".longplay-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError(f"{flag}: cannot write to {folder} ({err.strerror or err})") from None
    return folder
