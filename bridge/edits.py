"""Extend and replace at the door: key/values -> a ``JobSpec`` whose request has ``edit`` set.

The same keys from every door (OSC ``/longplay/extend`` and ``/longplay/replace``, a drop-folder
JSON with ``"edit"``, the CLI's ``longplay extend`` / ``longplay replace``, the app's waveform):

- ``edit``: ``extend`` (add ``bars`` bars to the end) or ``replace`` (regenerate bars
  ``from_bar``-``to_bar``, 1-based and inclusive; bar 1 starts at the file's first sample);
- ``source_path``: the file to edit, checked as a transform's source is (absolute, readable audio,
  under the allowed folders);
- optional: ``prompt``, ``negative``, ``bpm``, ``beats_per_bar``, ``seed``, ``steps``, ``cfg``,
  ``variations``, ``sampler``, ``name``, ``format``, ``lora`` (Stable Audio 3).

Unset, the prompt, tempo and metre come from the source's recipe when it is a Longplay render
(the JSON sidecar beside it), else the prompt is ``music`` and the tempo is heard in the source by
the engine. The result is a new file (never the source; names never overwrite); its recipe names
its parent (``parent``: path and SHA-256).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine import LIMITS, RenderRequest, file_sha256

from .errors import UsageError
from .naming import sidecar_path, slug
from .requests import (
    JobSpec,
    Limits,
    as_text,
    bounded,
    check_name,
    check_source,
    parse_format,
    parse_sampler,
    random_seed,
    show,
)

EDIT_KEYS = frozenset(
    {
        "edit",
        "source_path",
        "bars",
        "from_bar",
        "to_bar",
        "bpm",
        "beats_per_bar",
        "prompt",
        "negative",
        "seed",
        "steps",
        "cfg",
        "variations",
        "sampler",
        "name",
        "format",
        "lora",
    }
)
DEFAULT_PROMPT = "music"
MAX_RECIPE_BYTES = 1 << 20  # a parent's sidecar read for its prompt and tempo; larger ones are ignored


def parse_edit(values: Mapping[str, Any], limits: Limits, out_dir: str | os.PathLike[str]) -> JobSpec:
    """Check an extend/replace request and build its ``JobSpec``; ``UsageError`` names the key."""
    for key in values:
        if not isinstance(key, str) or key not in EDIT_KEYS:
            raise UsageError(
                f"unknown argument {show(key)} for an edit; expected some of {', '.join(sorted(EDIT_KEYS))}"
            )
    edit = values["edit"]
    if edit not in ("extend", "replace"):
        raise UsageError(f"edit must be extend or replace (got {show(edit)})")
    if "source_path" not in values:
        raise UsageError(f"source_path is required: the file to {edit}")
    source, _ = check_source(values["source_path"], limits)
    parent = parent_recipe(source)
    kw: dict[str, Any] = {"edit": edit, "edit_source": str(source)}
    prompt = values.get("prompt", parent.get("prompt") if isinstance(parent.get("prompt"), str) else None)
    kw["prompt"] = as_text("prompt", prompt or DEFAULT_PROMPT, limits.max_prompt)
    if "negative" in values:
        kw["negative"] = as_text("negative", values["negative"], limits.max_prompt)
    bpm = values.get("bpm", parent.get("bpm"))
    if bpm is not None:
        kw["bpm"] = bounded("bpm", bpm)
    beats_per_bar = values.get("beats_per_bar", parent.get("beats_per_bar"))
    if beats_per_bar is not None:
        kw["beats_per_bar"] = bounded("beats_per_bar", beats_per_bar)
    if edit == "extend":
        if "bars" not in values:
            raise UsageError("bars is required: how many bars to add")
        kw["bars"] = bounded("bars", values["bars"])
        for key in ("from_bar", "to_bar"):
            if key in values:
                raise UsageError(f"{key} belongs to replace, not extend")
    else:
        for key in ("from_bar", "to_bar"):
            if key not in values:
                raise UsageError(f"{key} is required: replace regenerates bars from_bar to to_bar")
            kw[key] = bounded("bars", values[key], LIMITS["bars"])
        if kw["to_bar"] < kw["from_bar"]:
            raise UsageError(f"to_bar must be at least from_bar (got {kw['from_bar']}-{kw['to_bar']})")
        if "bars" in values:
            raise UsageError("bars belongs to extend; replace takes from_bar and to_bar")
    seed = bounded("seed", values["seed"]) if "seed" in values and values["seed"] != -1 else -1
    kw["seed"] = seed if seed >= 0 else random_seed()
    for key in ("steps", "cfg"):
        if key in values:
            kw[key] = bounded(key, values[key])
    kw["variations"] = bounded("variations", values.get("variations", 1))
    if "lora" in values:  # Stable Audio 3 models: the edit samples with the LoRA too
        from .lora_arg import parse_lora

        kw["lora"] = parse_lora(values["lora"], limits)
    if "sampler" in values:
        kw["sampler"] = parse_sampler(values["sampler"])
    fmt = parse_format(values.get("format", "wav"))
    what = f"extended_{kw['bars']}bars" if edit == "extend" else f"bars{kw['from_bar']}-{kw['to_bar']}"
    name = check_name(values["name"], limits) if "name" in values else f"{source.stem}_{what}"
    extra = {"parent": {"file": str(source), "sha256": file_sha256(source)}}
    return JobSpec(
        RenderRequest(**kw), slug(name), fmt, str(Path(out_dir).resolve()), random_seed=seed < 0, extra=extra
    )


def parent_recipe(source: Path) -> dict[str, Any]:
    """The recipe beside a Longplay render (its JSON sidecar), or {} for any other file."""
    side = sidecar_path(source)
    try:
        if side.is_file() and side.stat().st_size <= MAX_RECIPE_BYTES:
            data = json.loads(side.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
    except (OSError, ValueError):  # unreadable or not JSON: the file is edited without it
        pass
    return {}
