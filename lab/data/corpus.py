"""Build a training corpus folder: composed, rendered, mixed songs and stems with prompts.

Layout::

    OUT/corpus.json       the settings the folder was built with (a resume must match them)
    OUT/metadata.jsonl    one line per audio file: id, path, seconds, split, kind, metadata, prompts
    OUT/audio/<id>.flac   24-bit stereo 44.1 kHz FLAC (full mixes and stems)

Item kinds: ``mix`` (the song), ``stem:<name>`` (one stem, as it sits in the mix) and, with
``drumless``, ``mix:nodrums`` (``<song>-nodrums``: every stem but the drums, mixed and mastered
the same way; metadata ``has_drums: false, drums_removed: true``), so the model hears every
genre with and without a kit and learns what "no drums" asks for. With ``transpose`` N, every
training song also comes as ``mix:transposed`` (``<song>-t+3``, ``<song>-t-5``): the same song
moved N ways by -5..+6 semitones (drums unmoved), its prompts naming the new key, so the key a
prompt names is the one thing that differs between two items (issue 19: a DiT trained on the
songs alone did not learn to place pitch). Held-out songs are not transposed.

Everything is a function of ``seed``: song i's genre, length, split and music. A run can be
stopped at any point and started again: finished songs are skipped, every file is written under
a temporary name and renamed, and a song's metadata lines are appended in one write with the
mix line last, so a mix line on disk means the whole song is on disk.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.audio_io import write_audio_atomic, write_json_atomic

from .composer import STEMS, Song, compose, rng_for, transposed
from .errors import CorpusBuildError
from .genres import GENRES
from .prompts import sample_prompts
from .render import SAMPLE_RATE, Rendered, Synth, find_synth, render_song

FORMAT = 1
MAX_SECONDS = 285.0  # the model's context (Stable Audio 2's 4 m 45 s)
PROMPTS_PER_ITEM = 3


@dataclass(frozen=True)
class SongPlan:
    """What song ``index`` of a corpus is, decided from the corpus seed alone."""

    index: int
    song_id: str
    seed: int
    genre: str
    target_s: float
    split: str


@dataclass(frozen=True)
class CorpusProgress:
    done: int
    total: int
    song_id: str
    genre: str
    seconds: float  # length of this song (0 when it was already there)
    skipped: bool
    audio_s: float  # audio seconds written so far in this run, mixes and stems
    elapsed_s: float
    realtime: float  # this song's render speed, x real time (0 when skipped)


@dataclass(frozen=True)
class CorpusSummary:
    out_dir: Path
    songs: int
    songs_built: int
    files_written: int
    audio_s: float
    elapsed_s: float


def plan_songs(
    n_songs: int, seed: int, *, min_seconds: float, max_seconds: float, held_out_fraction: float, genres: Sequence[str]
) -> list[SongPlan]:
    """The corpus's songs. Genres cycle through shuffled rounds so every genre is equally
    represented; a song's split is drawn per song, so its stems always share it."""
    plans = []
    for i in range(n_songs):
        order = rng_for(seed, "genres", i // len(genres)).sample(list(genres), len(genres))
        plans.append(
            SongPlan(
                index=i,
                song_id=f"{seed}-{i:05d}",
                seed=rng_for(seed, "song", i).getrandbits(31),
                genre=order[i % len(genres)],
                target_s=rng_for(seed, "length", i).uniform(min_seconds, max_seconds),
                split="test" if rng_for(seed, "split", i).random() < held_out_fraction else "train",
            )
        )
    return plans


def chosen_stems(song: Song, k: int, seed: int) -> list[str]:
    """The stems a song contributes: drums first whenever it has them (audio-to-audio from a
    beatbox needs drum stems most), the rest drawn at random."""
    present = [s for s in STEMS if s in song.tracks]
    first = ["drums"] if "drums" in present and k > 0 else []
    rest = [s for s in present if s not in first]
    picked = first + rng_for(seed, "stems").sample(rest, max(0, min(k - len(first), len(rest))))
    return [s for s in STEMS if s in picked]


def _read_lines(path: Path) -> dict[str, dict[str, Any]]:
    """Existing metadata lines by id; a torn last line (a crash mid-append) is cut off."""
    if not path.exists():
        return {}
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        with open(path, "r+b") as fh:
            fh.truncate(len(raw))
    lines = {}
    for n, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if line.strip():
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise CorpusBuildError(f"{path}:{n} is not JSON ({err}); fix or remove that line") from err
            lines[item["id"]] = item
    return lines


# Settings added after format 1 shipped: a header without them was built with these values.
SETTING_DEFAULTS = {"drumless": False, "transpose": 0}
MAX_TRANSPOSE = 11


def _additive(key: str, old: Any, new: Any) -> bool:
    """Setting changes a resume may make because they only add files."""
    return (key, old, new) == ("drumless", False, True) or (key == "transpose" and 0 <= old < new)


def shifts(plan: SongPlan, n: int) -> list[int]:
    """The ``n`` transpositions (semitones, -5..+6, never 0) of a training song: the first ``n`` of
    one shuffled order per song, so raising ``n`` on a finished corpus only adds items."""
    if plan.split != "train" or n <= 0:
        return []
    order = rng_for(plan.seed, "transpose").sample(range(1, 12), 11)
    return [k - 12 if k > 6 else k for k in order[:n]]


def transposed_id(song_id: str, semitones: int) -> str:
    return f"{song_id}-t{semitones:+d}"


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    header = out / "corpus.json"
    if header.exists():
        old = {**SETTING_DEFAULTS, **json.loads(header.read_text(encoding="utf-8"))}
        diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v and not _additive(k, old.get(k), v)}
        if diff:
            changes = ", ".join(f"{k} {a!r} → {b!r}" for k, (a, b) in diff.items())
            raise CorpusBuildError(
                f"{out} was built with other settings ({changes}); use the same settings to resume, or a new folder"
            )
    write_json_atomic(header, settings)


def drumless_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """A song's metadata for its ``mix:nodrums`` version: the kit gone from instruments and stems."""
    stems = {k: v for k, v in meta["stems"].items() if k != "drums"}
    return {
        **meta,
        "instruments": list(dict.fromkeys(stems.values())),
        "stems": stems,
        "has_drums": False,
        "drums_removed": True,
    }


def drumless_id(song_id: str) -> str:
    """The id of a song's ``mix:nodrums`` item (its mix's id is the song id)."""
    return f"{song_id}-nodrums"


def _has_drumless(song_meta: dict[str, Any]) -> bool:
    """Whether a song gets a ``mix:nodrums`` item: it has drums and something besides them."""
    return bool(song_meta.get("has_drums")) and len(song_meta.get("stems", {})) > 1


def _parts(
    song_id: str, stems: list[str], song_meta: dict[str, Any], drumless: bool, moves: Sequence[int] = ()
) -> list[tuple[str, str | None, str]]:
    """(kind, stem, id) of a song's items in file order: stems, the drumless mix, the transposed
    mixes, the mix last."""
    parts: list[tuple[str, str | None, str]] = [(f"stem:{s}", s, f"{song_id}-{s}") for s in stems]
    if drumless and _has_drumless(song_meta):
        parts.append(("mix:nodrums", None, drumless_id(song_id)))
    parts += [("mix:transposed", None, transposed_id(song_id, k)) for k in moves]
    return parts + [("mix", None, song_id)]


def _items(
    plan: SongPlan, song: Song, stems: list[str], seconds: float, drumless: bool, moves: Sequence[int] = ()
) -> Iterator[dict[str, Any]]:
    """Metadata lines of a song, in `_parts` order (see the module docstring)."""
    moved = {transposed_id(plan.song_id, k): k for k in moves}
    for kind, stem, item_id in _parts(plan.song_id, stems, song.metadata, drumless, moves):
        if kind == "mix:nodrums":
            meta = drumless_metadata(song.metadata)
        elif kind == "mix:transposed":
            meta = transposed(song, moved[item_id]).metadata
        else:
            meta = dict(song.metadata)
        if stem is not None:
            meta["stem"] = stem
            meta["instruments"] = [song.tracks[stem].instrument]
        prompts = sample_prompts(
            song.metadata if stem else meta, rng_for(plan.seed, "prompts", item_id), PROMPTS_PER_ITEM, stem=stem
        )
        yield {
            "id": item_id,
            "path": f"audio/{item_id}.flac",
            "seconds": round(seconds, 6),
            "split": plan.split,
            "kind": kind,
            "song_id": plan.song_id,
            "metadata": meta,
            "prompts": prompts,
        }


def build_corpus(
    out_dir: str | os.PathLike[str],
    n_songs: int,
    seed: int,
    *,
    stems_per_song: int = 2,
    drumless: bool = False,
    transpose: int = 0,
    min_seconds: float = 10.0,
    max_seconds: float = MAX_SECONDS,
    held_out_fraction: float = 0.1,
    genres: Sequence[str] | None = None,
    soundfont: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    progress: Callable[[CorpusProgress], None] | None = None,
) -> CorpusSummary:
    """Compose, render and write ``n_songs`` songs (plus ``stems_per_song`` stems each) into
    ``out_dir``; resumable, deterministic in ``seed``. ``jobs`` > 1 renders songs in parallel
    (FluidSynth and pedalboard both run outside the GIL). ``drumless`` adds a ``mix:nodrums``
    item per song with drums; turning it on for a finished corpus renders just those (the songs
    are the same, only missing files are written). ``transpose`` N adds N transposed mixes per
    training song (see the module docstring); raising it on a finished corpus renders just those."""
    genres = list(genres) if genres is not None else sorted(GENRES)
    if n_songs < 0 or stems_per_song < 0 or jobs < 1:
        raise CorpusBuildError("n_songs and stems_per_song must be >= 0 and jobs >= 1")
    if not 0 <= transpose <= MAX_TRANSPOSE:
        raise CorpusBuildError(f"transpose must be between 0 and {MAX_TRANSPOSE} (got {transpose})")
    if not 0 < min_seconds <= max_seconds:
        raise CorpusBuildError(f"need 0 < min_seconds <= max_seconds (got {min_seconds:g}, {max_seconds:g})")
    if not 0.0 <= held_out_fraction <= 1.0:
        raise CorpusBuildError(f"held_out_fraction must be between 0 and 1 (got {held_out_fraction:g})")
    unknown = sorted(set(genres) - set(GENRES))
    if unknown or not genres:
        raise CorpusBuildError(f"unknown genres {unknown}; choose from {sorted(GENRES)}")
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    _check_settings(
        out,
        {
            "format": FORMAT,
            "seed": seed,
            "stems_per_song": stems_per_song,
            "drumless": drumless,
            "transpose": transpose,
            "min_seconds": min_seconds,
            "max_seconds": max_seconds,
            "held_out_fraction": held_out_fraction,
            "genres": genres,
            "sample_rate": SAMPLE_RATE,
        },
    )
    for stale in (out / "audio").glob(".*.part"):  # temp files of an interrupted run
        stale.unlink()
    jsonl = out / "metadata.jsonl"
    lines = _read_lines(jsonl)
    plans = plan_songs(
        n_songs,
        seed,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        held_out_fraction=held_out_fraction,
        genres=genres,
    )

    def finished(p: SongPlan) -> bool:
        mix = lines.get(p.song_id)
        if mix is None or not (out / mix["path"]).exists():
            return False
        # Items a corpus gains when it is given --drumless or a larger --transpose later.
        extra = [transposed_id(p.song_id, k) for k in shifts(p, transpose)]
        if drumless and _has_drumless(mix.get("metadata", {})):
            extra.append(drumless_id(p.song_id))
        return all(i in lines and (out / lines[i]["path"]).exists() for i in extra)

    todo = [p for p in plans if not finished(p)]
    synth: list[Synth] = []
    start = time.perf_counter()

    def work(plan: SongPlan) -> tuple[SongPlan, Song, list[str], Rendered | None, dict[int, Rendered]]:
        song = compose(plan.seed, plan.genre, plan.target_s)
        stems = chosen_stems(song, stems_per_song, plan.seed)
        ids = [item_id for _, _, item_id in _parts(plan.song_id, stems, song.metadata, drumless)]
        have = all((out / "audio" / f"{i}.flac").exists() for i in ids)  # files that survived a crash
        moved = {
            k: render_song(transposed(song, k), synth=synth[0], stems=[])
            for k in shifts(plan, transpose)
            if not (out / "audio" / f"{transposed_id(plan.song_id, k)}.flac").exists()
        }
        rendered = None if have else render_song(song, synth=synth[0], stems=stems, drumless=drumless)
        return plan, song, stems, rendered, moved

    if todo:
        synth.append(find_synth(soundfont))  # fail before any work if FluidSynth is missing
    done, written, audio_s = len(plans) - len(todo), 0, 0.0
    # Batches of ``jobs`` songs: a finished 285 s render holds ~300 MB, so none may pile up.
    batches = [todo[i : i + jobs] for i in range(0, len(todo), jobs)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for plan, song, stems, rendered, moved in (r for batch in batches for r in pool.map(work, batch)):
            # The exact file length (whole samples), whether or not the audio was rendered now.
            seconds = int(round(song.length_s * SAMPLE_RATE)) / SAMPLE_RATE
            items = list(_items(plan, song, stems, seconds, drumless, shifts(plan, transpose)))
            for item in items:
                if (out / item["path"]).exists():  # written whole (write-then-rename) by an earlier run
                    continue
                source = (
                    moved.get(item["metadata"].get("transposed", 0)) if item["kind"] == "mix:transposed" else rendered
                )
                if source is None:
                    continue
                stem = item["metadata"].get("stem")
                audio = (
                    source.drumless
                    if item["kind"] == "mix:nodrums"
                    else source.mix
                    if stem is None
                    else source.stems[stem]
                )
                write_audio_atomic(out / item["path"], audio, source.sample_rate, subtype="pcm24")
                written += 1
                audio_s += source.seconds
            fresh = [item for item in items if item["id"] not in lines]  # a torn append left some
            with open(jsonl, "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in fresh))
                fh.flush()
                os.fsync(fh.fileno())
            done += 1
            if progress is not None:
                progress(
                    CorpusProgress(
                        done,
                        len(plans),
                        plan.song_id,
                        plan.genre,
                        song.length_s,
                        rendered is None and not moved,
                        audio_s,
                        time.perf_counter() - start,
                        rendered.realtime if rendered else next(iter(moved.values())).realtime if moved else 0.0,
                    )
                )
    return CorpusSummary(out, len(plans), len(todo), written, audio_s, time.perf_counter() - start)


def print_progress(p: CorpusProgress) -> None:
    """One progress line on stderr: rewritten in place on a terminal, one line per song otherwise."""
    rate = p.audio_s / p.elapsed_s if p.elapsed_s > 0 else 0.0
    line = (
        f"[{p.done}/{p.total}] {p.song_id} {p.genre} {p.seconds:.0f} s"
        f"{' (already there)' if p.skipped else f' at {p.realtime:.1f}x real time'}"
        f" | {p.audio_s / 3600:.2f} h written, {rate:.1f} s of audio per s"
    )
    tty = sys.stderr.isatty()
    print(
        ("\r" + line + "\033[K") if tty else line,
        end="" if tty and p.done < p.total else "\n",
        file=sys.stderr,
        flush=True,
    )
