"""The datagram checks at the OSC door, without sockets: bundles flattened in order and bounded,
type tags checked before python-osc sees them, request ids recovered from broken messages."""

from __future__ import annotations

import struct

import pytest

from bridge.errors import BundleTooLarge, MalformedPacket
from bridge.osc_wire import MAX_ARRAY_DEPTH, MAX_BUNDLE_DEPTH, MAX_BUNDLE_MESSAGES, decode, peek_id, split

from .conftest import build


def _bundle(*elements: bytes) -> bytes:
    return b"#bundle\x00" + struct.pack(">Q", 1) + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def test_nested_bundles_are_flattened_in_order() -> None:
    data = _bundle(build("/a", "1"), _bundle(build("/b", 2), _bundle(build("/c"))), build("/d", 4.0))
    assert [decode(m) for m in split(data)] == [("/a", ["1"]), ("/b", [2]), ("/c", []), ("/d", [4.0])]


def test_the_message_cap_counts_nested_bundles_and_the_depth_is_bounded() -> None:
    assert len(split(_bundle(*[build("/x")] * MAX_BUNDLE_MESSAGES))) == MAX_BUNDLE_MESSAGES
    half = _bundle(*[build("/x")] * (MAX_BUNDLE_MESSAGES // 2 + 1))
    with pytest.raises(BundleTooLarge, match=f"at most {MAX_BUNDLE_MESSAGES} messages"):
        split(_bundle(half, half))
    deep = build("/x")
    for _ in range(MAX_BUNDLE_DEPTH):
        deep = _bundle(deep)
    assert len(split(deep)) == 1
    with pytest.raises(BundleTooLarge, match="nest"):
        split(_bundle(deep))


@pytest.mark.parametrize(
    "data",
    [
        b"#bundle\x00" + bytes(4),
        _bundle(b"/x\x00\x00") + b"\x00\x00",
        b"#bundle\x00" + bytes(8) + struct.pack(">i", 64) + b"/x\x00\x00",
        b"#bundle\x00" + bytes(8) + struct.pack(">i", -4),
        _bundle(),
    ],
)
def test_broken_bundles_are_malformed(data: bytes) -> None:
    with pytest.raises(MalformedPacket, match="bundle"):
        split(data)


def test_type_tags_are_checked_before_decoding() -> None:
    with pytest.raises(MalformedPacket, match="argument 2: unsupported OSC type tag 'c'"):
        decode(memoryview(b"/r\x00\x00,sc\x00id\x00\x00\x00\x00\x00\x00A"))
    nested = b"/r\x00\x00" + (b"," + b"[" * (MAX_ARRAY_DEPTH + 1) + b"]" * (MAX_ARRAY_DEPTH + 1)).ljust(16, b"\x00")
    with pytest.raises(MalformedPacket, match=f"at most {MAX_ARRAY_DEPTH} deep"):
        decode(memoryview(nested))
    with pytest.raises(MalformedPacket, match="address"):
        decode(memoryview(b"xyz\x00"))


def test_the_request_id_of_a_broken_message_is_recovered() -> None:
    assert peek_id(b"/r\x00\x00,sc\x00take-1\x00\x00\x00\x00\x00A") == "take-1"
    assert peek_id(b"/r\x00\x00,ic\x00" + bytes(8)) == ""
    assert peek_id(build("/r", "y" * 500)) == "y" * 128
    assert peek_id(_bundle(build("/r", "z"))) == ""
    assert peek_id(b"/r\x00\x00,s\x00\x00\xff\xfe\x00\x00") == ""  # not UTF-8


def test_a_truncated_message_names_the_argument_it_ends_in() -> None:
    full = build("/longplay/render", "id", "prompt", "p", "steps", 2)
    assert decode(memoryview(full)) == ("/longplay/render", ["id", "prompt", "p", "steps", 2])
    with pytest.raises(MalformedPacket, match=r"argument 2 \('s'\): the datagram ends inside it"):
        decode(memoryview(full[:36]))
    with pytest.raises(MalformedPacket, match=r"argument 5 \('i'\)"):
        decode(memoryview(full[:-1]))
    with pytest.raises(MalformedPacket, match="argument 1: a string that is not UTF-8"):
        decode(memoryview(b"/r\x00\x00,s\x00\x00\xff\xfe\x00\x00"))
