"""`longplay corpus OUT_DIR …`: compose and render a training corpus (the lab's `build_corpus`,
imported only when the command runs)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import BridgeError, EngineUnavailable, UsageError


def add_corpus_parser(sub: Any, integer: Callable[[str], int], finite: Callable[[str], float]) -> None:
    c = sub.add_parser("corpus", help="compose and render a training corpus (needs FluidSynth)")
    c.add_argument("out_dir", metavar="OUT_DIR", help="corpus folder; an interrupted build resumes")
    c.add_argument("--songs", type=integer, default=100, help="how many songs (default 100)")
    c.add_argument("--seed", type=integer, default=0, help="corpus seed; same seed, same corpus (default 0)")
    c.add_argument("--min-seconds", type=finite, help="shortest song (default 10, or --max-seconds if lower)")
    c.add_argument("--max-seconds", type=finite, default=285.0, help="longest song, up to 285 (default 285)")
    c.add_argument("--stems", type=integer, default=2, help="stems written per song, 0-5 (default 2)")
    c.add_argument(
        "--drumless",
        action="store_true",
        help="also write each drummed song's mix without its drums (kind mix:nodrums, prompted "
        "'no drums'); on a finished corpus this renders just those",
    )
    c.add_argument(
        "--transpose",
        type=integer,
        default=0,
        help="also write each training song N more times, moved by -5..+6 semitones (kind "
        "mix:transposed, prompts naming the new key), 0-11 (default 0); raising it on a finished "
        "corpus renders just those",
    )
    c.add_argument("--held-out", type=finite, default=0.1, help="fraction of songs in the test split (default 0.1)")
    c.add_argument("--jobs", type=integer, default=1, help="songs rendered in parallel, 1-16 (default 1)")


def check_range(name: str, value: float | None, lo: float, hi: float) -> None:
    if value is not None and not lo <= value <= hi:
        raise UsageError(f"{name} must be between {lo:g} and {hi:g} (got {value:g})")


def validate_corpus(args: argparse.Namespace) -> None:
    """Check ``corpus`` arguments at the door; fills in the default --min-seconds."""
    check_range("--songs", args.songs, 1, 100_000)
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0 (got {args.seed})")
    check_range("--max-seconds", args.max_seconds, 1, 285)
    if args.min_seconds is None:
        args.min_seconds = min(10.0, args.max_seconds)
    check_range("--min-seconds", args.min_seconds, 1, args.max_seconds)
    check_range("--stems", args.stems, 0, 5)
    check_range("--transpose", args.transpose, 0, 11)
    check_range("--held-out", args.held_out, 0, 1)
    check_range("--jobs", args.jobs, 1, 16)
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"OUT_DIR: {out} exists and is not a folder")


def _corpus_progress(p: Any) -> None:  # p: lab.data.CorpusProgress
    """One line per song: where the build is, and how fast audio is being made."""
    rate = p.audio_s / p.elapsed_s if p.elapsed_s > 0 else 0.0
    how = "already there" if p.skipped else f"{p.realtime:.1f}x real time"
    print(
        f"[{p.done}/{p.total}] {p.song_id} {p.genre} {p.seconds:.0f} s ({how}) | "
        f"{p.audio_s / 3600:.2f} h written, {rate:.1f} s of audio per s",
        file=sys.stderr,
        flush=True,
    )


def run_corpus(args: argparse.Namespace) -> int:
    try:
        from engine import EngineError
        from lab import build_corpus
    except ImportError as err:
        raise EngineUnavailable(err) from err

    try:
        summary = build_corpus(
            args.out_dir,
            args.songs,
            args.seed,
            stems_per_song=args.stems,
            drumless=args.drumless,
            transpose=args.transpose,
            min_seconds=args.min_seconds,
            max_seconds=args.max_seconds,
            held_out_fraction=args.held_out,
            jobs=args.jobs,
            progress=_corpus_progress,
        )
    except EngineError as err:
        raise BridgeError(str(err)) from err
    except OSError as err:
        raise BridgeError(f"could not write the corpus in {args.out_dir}: {err}") from err
    print(Path(summary.out_dir) / "metadata.jsonl")
    return 0  # EXIT_OK
