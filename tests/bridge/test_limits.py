"""One table of limits (`engine.LIMITS`): every door and the docs agree with it (issue 18)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from engine import LIMITS

DOC = Path(__file__).resolve().parents[2] / "docs" / "osc.md"


def _num(x: float) -> str:
    text = str(int(x)) if float(x).is_integer() else f"{x:g}"
    return text.replace("-", "−")


def _key_rows() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `(\w+)`", line)
        if m:
            rows.setdefault(m.group(1), line)
    return rows


@pytest.mark.parametrize("key", ["steps", "cfg", "variations", "fade_ms", "loudness", "bars", "prompt", "name", "seed"])
def test_docs_key_table_states_the_limit(key: str) -> None:
    rows = _key_rows()
    b = LIMITS[key]
    line = rows[key]
    if key == "bars":  # `bars` + `bpm` (+ `beats_per_bar`) share a row: "1–512, 20–300, 1–32"
        want = ", ".join(f"{_num(LIMITS[k].lo)}–{_num(LIMITS[k].hi)}" for k in ("bars", "bpm", "beats_per_bar"))
    elif key == "name":
        want = f"≤ {_num(b.hi)}"
    elif key == "seed":
        want = f"0 – {_num(b.hi)}"
    else:
        want = f"{_num(b.lo)}–{_num(b.hi)}"
    assert want in line, f"docs/osc.md's `{key}` row should say {want!r}: {line}"


def _parse(values: dict[str, Any]) -> Any:
    from bridge.requests import Limits, parse_request

    return parse_request(values, limits=Limits(max_seconds=60.0), out_dir="/tmp")


@pytest.mark.parametrize("key", ["steps", "cfg", "variations", "fade_ms", "bpm", "beats_per_bar", "strength"])
def test_every_door_refuses_just_past_the_limit_and_accepts_the_limit(key: str, tmp_path: Path) -> None:
    """The bridge's parser, the CLI's flags and the engine's own check all use the same bound."""
    import engine
    from bridge.cli import build_parser, validate_generate
    from bridge.errors import UsageError

    b = LIMITS[key]
    past = b.hi + (1 if b.integer else 0.5)
    extra = {"bpm": 300, "bars": 1} if key == "beats_per_bar" else {}
    if key == "strength":
        src = tmp_path / "s.wav"
        import numpy as np
        import soundfile as sf

        sf.write(str(src), np.zeros((4410, 2), np.float32), 44100)
        extra = {"source_path": str(src)}
    base = {"prompt": "p", **extra}
    _parse({**base, key: b.hi})
    with pytest.raises(UsageError, match=key):
        _parse({**base, key: past})
    flag = {"strength": "--init-strength", "beats_per_bar": None, "fade_ms": None}.get(
        key, f"--{key}"
    )  # no CLI flag: None
    if flag:
        argv = ["generate", "p", flag, str(past)] + (["--init-audio", str(src)] if key == "strength" else [])
        args = build_parser().parse_args(argv)
        with pytest.raises(UsageError, match=flag):
            validate_generate(args)
    field = {"strength": "init_strength"}.get(key, key)
    model = engine.build_model(engine.tiny_config())
    req = engine.RenderRequest(
        "p", seconds=0.5, **{**({"bpm": 120.0, "bars": 1} if key == "beats_per_bar" else {}), field: past}
    )
    with pytest.raises(engine.RequestError, match=field):
        engine.Generator(model, device="cpu").resolve(req)
