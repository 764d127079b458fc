"""The OSC wire format at the door: a datagram's structure is checked before anything decodes it.

python-osc decodes messages (``OscMessage``), but it trusts what it is given: a bundle's elements
are all decoded (3,000 messages -> 3,000 replies), each bundle element copies the rest of the
datagram, an unknown type tag is skipped with a root-logger warning (the arguments shift and the
log floods), and arrays nest as deep as the type tag says (a repr of them then overflows the
stack). So the structure is walked here first, cheaply: element sizes, counts, nesting and type
tags, each with a limit.
"""

from __future__ import annotations

import struct

from pythonosc.osc_message import OscMessage

from .errors import BundleTooLarge, MalformedPacket

MAX_BUNDLE_MESSAGES = 32  # messages per datagram, nested bundles included: one reply each at most
MAX_BUNDLE_DEPTH = 4  # bundles inside bundles, the outermost counting as 1
MAX_ARRAY_DEPTH = 4  # OSC arrays inside arrays ("[[...]]"); no request argument is an array
MAX_ID_ECHO = 128  # characters of a (possibly invalid) request id echoed in an error reply
RECV_BYTES = 65535  # the largest UDP datagram (IPv4 carries at most 65,507 bytes of it)
TYPE_TAGS = frozenset("ihfdsbrmtTFN[]")  # what python-osc decodes; anything else is refused
_BUNDLE = b"#bundle\x00"
_FIXED = {"i": 4, "f": 4, "r": 4, "m": 4, "h": 8, "d": 8, "t": 8}  # bytes of the fixed-size types


def split(data: bytes) -> list[memoryview]:
    """A datagram -> its messages (bundles flattened, in order). Raises ``MalformedPacket`` for a
    broken structure and ``BundleTooLarge`` past ``MAX_BUNDLE_MESSAGES`` or ``MAX_BUNDLE_DEPTH``."""
    out: list[memoryview] = []
    _walk(memoryview(data), 1, out)
    if not out:
        raise MalformedPacket("bundle: it holds no messages")
    return out


def _walk(view: memoryview, depth: int, out: list[memoryview]) -> None:
    if view[:8] != _BUNDLE:
        out.append(view)
        if len(out) > MAX_BUNDLE_MESSAGES:
            raise BundleTooLarge(
                f"bundle: a datagram may hold at most {MAX_BUNDLE_MESSAGES} messages, nested "
                "bundles included; this one holds more (send them in several datagrams)"
            )
        return
    if depth > MAX_BUNDLE_DEPTH:
        raise BundleTooLarge(f"bundle: bundles may nest at most {MAX_BUNDLE_DEPTH} deep")
    if len(view) < 16:
        raise MalformedPacket(f"bundle: {len(view)} bytes is shorter than a bundle header (16)")
    pos = 16
    while pos < len(view):
        if pos + 4 > len(view):
            raise MalformedPacket(f"bundle: {len(view) - pos} stray bytes after element at byte {pos}")
        (size,) = struct.unpack_from(">i", view, pos)
        if size <= 0 or size % 4 or pos + 4 + size > len(view):
            raise MalformedPacket(
                f"bundle: element at byte {pos} has a bad size ({size}; {len(view) - pos - 4} bytes follow)"
            )
        _walk(view[pos + 4 : pos + 4 + size], depth + 1, out)
        pos += 4 + size


def decode(view: memoryview) -> tuple[str, list[object]]:
    """One message -> (address, arguments). ``MalformedPacket`` names what is wrong."""
    raw = bytes(view)
    _check_tags(raw)
    try:
        msg = OscMessage(raw)
    except Exception as err:  # noqa: BLE001 - python-osc raises ParseError, but also e.g. UnicodeDecodeError
        raise MalformedPacket(f"malformed OSC message: {' '.join(str(err).split())[:120]}") from None
    return msg.address, list(msg.params)


def _check_tags(raw: bytes) -> None:
    """Every argument's type is one python-osc decodes and its bytes are all there, so a failure
    names the argument ("argument 3 ('s'): the datagram ends inside it")."""
    address, pos = _string(raw, 0)
    if address is None or not address.startswith(b"/"):
        raise MalformedPacket("malformed OSC message: the address must be a string starting with '/'")
    if pos >= len(raw):
        return  # no type tag string: a message without arguments
    tags, pos = _string(raw, pos)
    if tags is None:
        raise MalformedPacket("malformed OSC message: the type tag string has no end (truncated?)")
    if not tags.startswith(b","):
        raise MalformedPacket("malformed OSC message: the type tag string must start with ','")
    n = depth = 0
    for tag in tags[1:].decode("latin-1"):
        if tag in "[]":
            depth += 1 if tag == "[" else -1
            if depth < 0:
                raise MalformedPacket(f"argument {n + 1}: a ']' without its '['")
            if depth > MAX_ARRAY_DEPTH:
                raise MalformedPacket(f"argument {n + 1}: arrays may nest at most {MAX_ARRAY_DEPTH} deep")
            continue
        n += 1
        if tag not in TYPE_TAGS:
            raise MalformedPacket(
                f"argument {n}: unsupported OSC type tag {tag!r} (supported: {''.join(sorted(TYPE_TAGS))})"
            )
        pos += _size(raw, pos, tag, n)
        if pos > len(raw):
            raise MalformedPacket(f"argument {n} ({tag!r}): the datagram ends inside it (truncated?)")
    if depth:
        raise MalformedPacket("arrays: a '[' without its ']'")


def _size(raw: bytes, pos: int, tag: str, n: int) -> int:
    """Bytes taken by argument ``n`` of type ``tag`` at ``pos`` (past the end when truncated)."""
    if tag in _FIXED:
        return _FIXED[tag]
    if tag == "s":
        text, end = _string(raw, pos)
        if text is None:
            return len(raw) - pos + 1
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket(f"argument {n}: a string that is not UTF-8 text") from None
        return end - pos
    if tag == "b":
        if pos + 4 > len(raw):
            return len(raw) - pos + 1
        size: int = struct.unpack_from(">i", raw, pos)[0]
        if size < 0:
            raise MalformedPacket(f"argument {n}: a blob of negative size ({size})")
        return 4 + -(-size // 4) * 4
    return 0  # T, F, N: the tag is the value


def _string(raw: bytes, pos: int) -> tuple[bytes | None, int]:
    """The NUL-terminated, 4-byte padded OSC string at ``pos`` -> (bytes, next position)."""
    end = raw.find(b"\x00", pos)
    if end < 0:
        return None, len(raw)
    return raw[pos:end], pos + ((end - pos) // 4 + 1) * 4


def peek_id(data: memoryview | bytes) -> str:
    """The request id of a message that cannot be decoded, when its first argument is a readable
    string, so even its error reply reaches the client under that id; else "" (and for bundles)."""
    raw = bytes(data)
    if raw.startswith(_BUNDLE):
        return ""
    _, pos = _string(raw, 0)
    tags, pos = _string(raw, pos)
    if tags is None or not tags.startswith(b",s"):
        return ""
    rid, _ = _string(raw, pos)
    try:
        return rid.decode("utf-8")[:MAX_ID_ECHO] if rid is not None else ""
    except UnicodeDecodeError:
        return ""
