"""`longplay extend FILE --bars N` and `longplay replace FILE --from-bar A --to-bar B`: the CLI door
onto extend and replace (bridge/edits.py's keys, the one request path of `bridge/generate.py`).
The result is a new file beside FILE unless `--out` says otherwise; FILE is never written."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UsageError


def add_parsers(sub: Any, integer: Callable[[str], int], finite: Callable[[str], float]) -> None:
    e = sub.add_parser("extend", help="continue an audio file by N bars (a new file; the source is kept)")
    e.add_argument("file", metavar="FILE", help="the audio to continue (a Longplay render or any file)")
    e.add_argument("--bars", type=integer, required=True, help="how many bars to add, 1-512")
    _common(e, integer, finite)
    r = sub.add_parser("replace", help="regenerate a range of bars of an audio file (a new file)")
    r.add_argument("file", metavar="FILE", help="the audio to edit; bar 1 starts at its first sample")
    r.add_argument("--from-bar", type=integer, required=True, help="first bar to regenerate (1-based)")
    r.add_argument("--to-bar", type=integer, required=True, help="last bar to regenerate (inclusive)")
    _common(r, integer, finite)


def _common(p: argparse.ArgumentParser, integer: Callable[[str], int], finite: Callable[[str], float]) -> None:
    p.add_argument("--prompt", help="what to play (default: the source's recipe prompt, else 'music')")
    p.add_argument("--negative", metavar="TEXT", help="negative prompt")
    p.add_argument("--bpm", type=finite, help="the source's tempo (default: its recipe's, else heard in it)")
    p.add_argument("--seed", type=integer, help="random seed; -1 or omitted picks one")
    p.add_argument("--steps", type=integer, help="sampler steps, 1-500")
    p.add_argument("--cfg", type=finite, help="classifier-free guidance scale, 0-25")
    p.add_argument("--variations", type=integer, default=1, help="how many versions, 1-16, each with its own seed")
    p.add_argument("--model", metavar="DIR|NAME", help="model folder or name (see `longplay models`)")
    p.add_argument("--out", metavar="PATH", help="output .wav/.flac file or folder (default: beside FILE)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: auto)")


def edit_values(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments as the door-neutral edit request (`bridge/edits.py`); unset ones left out."""
    source = Path(args.file)
    if not source.is_file():
        raise UsageError(f"FILE: no such file: {args.file}")
    values: dict[str, Any] = {"edit": args.command, "source_path": str(source.resolve())}
    keys = ("bars",) if args.command == "extend" else ("from_bar", "to_bar")
    for key in (*keys, "prompt", "negative", "bpm", "seed", "steps", "cfg", "variations"):
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() in (".wav", ".flac"):
        if out.resolve() == source.resolve():
            raise UsageError("--out must not be FILE itself: an edit writes a new file")
        values["format"] = out.suffix.lower().lstrip(".")
        values["name"] = out.stem
    if args.out is None:
        args.out = str(source.resolve().parent)
    return values
