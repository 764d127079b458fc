"""One untrusted file in the watched folder: what it is (looked at, never opened), its bytes
(bounded, regular files only), the request it holds (parsed without trusting it), an id for its
status file, and a name to move it to (unique and within the file system's name limit).

Nothing here follows a link, opens anything but a regular file or reads without a bound, so no
file dropped into the inbox can block, exhaust or crash the watcher; every refusal is a
``UsageError`` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from .errors import UsageError
from .naming import slug
from .requests import MAX_REQUEST_BYTES

# No request value needs more digits than a 64-bit integer; Python itself refuses past 4,300
# (with a message about sys.set_int_max_str_digits that would mean nothing to a user).
_MAX_INT_DIGITS = 20
_NAME_MAX = 255  # bytes in a file name, where the file system does not say (NTFS, APFS, ext4: 255)
_MAX_SUFFIX = 16  # longer "suffixes" are part of the name ("x.<200 characters>")
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class _Unreadable(ValueError):
    """A JSON value refused while parsing (the message says what)."""


def kind_of(mode: int) -> str | None:
    """None for a regular file; else what the inbox entry is, for its status message."""
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    )
    return next((what for test, what in kinds if test(mode)), "a special file")


def open_regular(path: Path) -> Any:
    """Open ``path`` for reading (binary) only if it is a regular file: a link is not followed
    and a FIFO swapped in since it was looked at cannot block the open (``O_NONBLOCK``)."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        what = kind_of(os.fstat(fd).st_mode)
        if what is not None:
            raise UsageError(f"{path.name} is {what}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def content_id(name: str, digest: str) -> str:
    """``<file-name-slug>-<8 hex of the content's hash>``: stable across restarts and re-drops."""
    return f"{slug(Path(name).stem, 48)}-{digest[:8]}"


def file_id(path: Path) -> str:
    """``content_id`` of a file of any size, hashed as it is read."""
    h = hashlib.sha256()
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return content_id(path.name, h.hexdigest())


def entry_id(name: str, inode: int, mtime_ns: int) -> str:
    """An id for an entry that is never read (a link, a folder, a FIFO): its name's slug and a hash
    of its name, inode and time, so two such entries never share a status file."""
    h = hashlib.sha256(os.fsencode(name) + f"\0{inode}\0{mtime_ns}".encode())
    return content_id(name, h.hexdigest())


def read_request_file(path: Path) -> bytes:
    """The bytes of a request file; ``UsageError`` past ``MAX_REQUEST_BYTES`` (read no further)."""
    with open_regular(path) as fh:
        data = fh.read(MAX_REQUEST_BYTES + 1)
    if len(data) > MAX_REQUEST_BYTES:
        raise UsageError(
            f"{path.name} is larger than {MAX_REQUEST_BYTES // 1024} kB; a request is a few hundred bytes of JSON"
        )
    return bytes(data)


def parse_json(data: bytes, name: str) -> Any:
    """JSON from a file's bytes (UTF-8, a BOM allowed, as Windows editors write it); ``UsageError``
    naming ``name`` and what is wrong, however hostile the content."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{name} is not a readable JSON file: not UTF-8 text (byte {err.start})") from None
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:  # the C parser's own guard against deep nesting
        raise UsageError(f"{name} is not a readable JSON file: nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, or _Unreadable
        raise UsageError(f"{name} is not a readable JSON file: {err}") from None


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > _MAX_INT_DIGITS:
        raise _Unreadable(f"it holds a number with {digits} digits")
    return int(text)


def free_name(folder: Path, name: str) -> Path:
    """A path in ``folder`` nothing is at yet: ``name``, else ``stem-1.ext``, ``stem-2.ext``…, the
    stem cut so the name fits the file system's limit (a 254-character name with "-1" appended
    does not)."""
    limit = _name_max(folder)
    stem, suffix = os.path.splitext(name)
    if len(os.fsencode(suffix)) > _MAX_SUFFIX:
        stem, suffix = name, ""
    n = 0
    while True:
        tail = f"-{n}{suffix}" if n else suffix
        candidate = _fit(stem, limit - len(os.fsencode(tail))) + tail
        if not os.path.lexists(folder / candidate):
            return folder / candidate
        n += 1


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or the folder will not say
        return _NAME_MAX


def _fit(text: str, limit: int) -> str:
    """``text`` cut (at a character) to at most ``limit`` bytes as the file system stores it."""
    while len(os.fsencode(text)) > limit:
        text = text[:-1]
    return text
