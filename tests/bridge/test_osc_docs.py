"""docs/osc.md is held to the code: every limit it states is the constant the code enforces, and
its error-code table lists exactly the codes the bridge can answer with."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bridge.errors
from bridge.jobs import classify
from bridge.requests import ID_RE
from engine import AudioInputError, AudioNotFound, RenderCancelled, RequestError, RequestTooLong

DOC = Path(__file__).resolve().parents[2] / "docs" / "osc.md"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start : end if end >= 0 else None]


def _rows(section: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``section``, as stripped cells."""
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def _longest_id() -> int:
    return max(n for n in range(1, 300) if ID_RE.fullmatch("a" * n))


# How a constant is written in the doc when it is not the number itself.
AS_DOCUMENTED: dict[str, Callable[[Any], Any]] = {
    "osc.PROGRESS_INTERVAL": lambda seconds: round(1 / seconds),  # "10 per second"
    "requests.ID_RE": lambda _: _longest_id(),
}


def _constant(name: str) -> Any:
    """``osc.MAX_CLIENTS`` (a bridge module) or ``engine.audio_io.X`` -> its value as documented."""
    package, rest = ("engine", name.split(".", 1)[1]) if name.startswith("engine.") else ("bridge", name)
    module, *attrs = rest.split(".")
    value: Any = importlib.import_module(f"{package}.{module}")
    for attr in attrs:
        value = getattr(value, attr)
    return AS_DOCUMENTED.get(name, lambda v: v)(value)


def test_every_documented_limit_is_the_constant_the_code_uses() -> None:
    rows = _rows(_section("## Limits"))
    assert len(rows) >= 15
    for label, value, code in rows:
        names = re.findall(r"`([\w.]+)`", code)
        assert names, f"limit {label!r} names no constant"
        if names == ["osc_wire.TYPE_TAGS"]:
            documented = re.search(r"`([^`]+)`", value)
            assert documented and set(documented.group(1).split()) == set(_constant(names[0])), label
            continue
        numbers = [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", value)]
        constants = [_constant(n) for n in names]
        expected = [float(x) for c in constants for x in (c if isinstance(c, tuple) else (c,))]
        assert numbers[: len(expected)] == expected, (label, value)


def test_the_bundle_cap_in_the_doc_is_the_constant() -> None:
    from bridge.osc_wire import MAX_BUNDLE_MESSAGES

    [row] = [r for r in _rows(_section("## Limits")) if r[0].startswith("messages per datagram")]
    assert row[1].startswith(f"{MAX_BUNDLE_MESSAGES};")


def _bridge_error_codes() -> set[int]:
    codes: set[int] = set()
    todo: list[type[bridge.errors.BridgeError]] = [bridge.errors.BridgeError]
    while todo:
        cls = todo.pop()
        codes.add(cls.code)
        todo += cls.__subclasses__()
    return codes


def test_the_error_code_table_lists_every_code_the_bridge_answers_with() -> None:
    section = _section("**Error codes.**")
    documented = {int(row[0]) for row in _rows(section) if row and row[0].isdigit()}
    render_failures = [
        RenderCancelled("x"),
        RequestTooLong("x"),
        RequestError("x"),
        AudioNotFound("x"),
        AudioInputError("x"),
        MemoryError(),
        KeyError("bug"),
    ]
    answered = _bridge_error_codes() | {classify(err)[0] for err in render_failures}
    assert documented == answered
