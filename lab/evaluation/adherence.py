"""The prompt-adherence section of `longplay eval`: tempo of renders asked for held-out songs' BPMs
and a sweep across genres, and drums vs "no drums" (percussive ratio), beside what the held-out
audio itself scores through the same measures and the autoencoder."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from engine.audio_io import load_audio

from ..data.corpus import drumless_id
from ..training.data import CorpusItem, read_index
from . import metrics, music
from .held_out import held_out_mixes, mean_of, middle_crops

SWEEP_GENRES = ("house", "techno", "hip hop", "lo-fi", "rock", "jazz", "funk", "reggae")
TEMPO_SWEEP = (70, 85, 100, 115, 128, 140, 160, 175)


def prompt_adherence(ctx: Any) -> dict[str, Any]:
    songs = [it for it in held_out_mixes(ctx.corpus) if it.metadata.get("bpm")]
    cfg, seconds = ctx.cfg, ctx.seconds(ctx.cfg.tempo_seconds)
    tempo_rows, reference_rows = [], []
    for i, it in enumerate(songs[: cfg.tempo_prompts]):
        bpm = float(it.metadata["bpm"])
        prompt = f"{it.metadata.get('genre', 'music')}, {bpm:g} BPM"
        audio, _ = ctx.render(prompt, seconds, cfg.seed + i, f"tempo_{i:02d}")
        tempo_rows.append({"prompt": prompt, **asdict(music.tempo_error(music.estimate_tempo(audio, ctx.rate), bpm))})
        # The same estimator on the song whose BPM was asked: how far the measure itself gets.
        song, sr = load_audio(it.path)
        ref = music.estimate_tempo(metrics.middle_crop(song, int(seconds * sr)), sr)
        reference_rows.append({"id": it.id, **asdict(music.tempo_error(ref, bpm))})
    sweep_rows = []
    for i in range(cfg.tempo_sweep):
        bpm = float(TEMPO_SWEEP[(3 * i) % len(TEMPO_SWEEP)])
        prompt = f"{SWEEP_GENRES[i % len(SWEEP_GENRES)]}, {bpm:g} BPM"
        audio, _ = ctx.render(prompt, seconds, cfg.seed + 300 + i, f"sweep_{i:02d}")
        sweep_rows.append({"prompt": prompt, **asdict(music.tempo_error(music.estimate_tempo(audio, ctx.rate), bpm))})
    # Three asks per drummed held-out song, same seed: its genre and BPM with "drums", the same
    # with "no drums" (a drum genre without its kit), and "ambient, no drums".
    groups: dict[str, list[dict[str, Any]]] = {"drums": [], "no_drums": [], "drums_removed": []}
    drummed = [it for it in songs if it.metadata.get("has_drums", True)] or songs
    for i in range(cfg.drum_prompts):
        meta: dict[str, Any] = drummed[i % len(drummed)].metadata if drummed else {"genre": "house", "bpm": 120}
        song = f"{meta.get('genre', 'house')}, {float(meta.get('bpm', 120)):g} BPM"
        asks = {"drums": f"{song}, drums", "no_drums": "ambient, no drums", "drums_removed": f"{song}, no drums"}
        for group, prompt in asks.items():
            audio, _ = ctx.render(prompt, seconds, cfg.seed + 100 + i, f"{group}_{i:02d}")
            ratio = music.percussive_ratio(audio, ctx.rate)
            groups[group].append(
                {"prompt": prompt, "percussive_ratio": ratio, "drums_present": music.drums_present(ratio)}
            )
    drums = {
        group: {
            "items": rows,
            "mean_percussive_ratio": mean_of([r["percussive_ratio"] for r in rows]),
            "share_with_drums": mean_of([float(r["drums_present"]) for r in rows]),
        }
        for group, rows in groups.items()
    }
    # Paired: the same genre, BPM and seed, "no drums" vs "drums" -- free of any threshold.
    drums["drums_removed"]["share_below_drums"] = mean_of(
        [float(a["percussive_ratio"] < b["percussive_ratio"]) for a, b in zip(groups["drums_removed"], groups["drums"])]
    )
    return {
        "render_seconds": seconds,
        "drum_free_reference": drum_free_reference(ctx, seconds),
        "tempo": tempo_summary(tempo_rows),
        "tempo_of_held_out_songs": tempo_summary(reference_rows),
        "tempo_sweep": tempo_summary(sweep_rows),
        "drums": drums,
        "drums_threshold": music.DRUMS_THRESHOLD,
    }


def drum_free_reference(ctx: Any, seconds: float) -> dict[str, Any] | None:
    """The percussive ratio of held-out audio without drums (drum-free mixes: drummed songs
    without their kit and drum-free genres; else non-drum stems), as it is and after the
    autoencoder's round trip: what a "no drums" render could score at best through this
    decoder, whose noise HPSS partly counts as percussive. A drummed song's drumless twin is
    scored beside its mix (``with_drums_*``): how far apart the two stay through the decoder."""
    items = read_index(ctx.corpus, "test")
    quiet = [it for it in items if it.kind in ("mix", "mix:nodrums") and not it.metadata.get("has_drums", True)] or [
        it for it in items if it.kind.startswith("stem:") and it.kind != "stem:drums"
    ]
    if not quiet:
        return None
    pre = ctx.model.pretransform
    drummed_twin = {drumless_id(it.id): it for it in items if it.kind == "mix"}

    def scores(item: CorpusItem) -> tuple[float, float]:  # (as is, through the autoencoder)
        [(_, clip)] = middle_crops([item], 1, seconds, ctx.rate, pre.io_channels, pre.downsampling_ratio)
        with torch.inference_mode():
            x = torch.from_numpy(clip)[None].float().to(ctx.gen.device)
            y = pre.decode(pre.encode(x, sample=False))[0].float().cpu().numpy()
        return music.percussive_ratio(clip, ctx.rate), music.percussive_ratio(y, ctx.rate)

    rows = []
    for item in quiet[: ctx.cfg.drum_prompts]:
        original, autoencoded = scores(item)
        row: dict[str, Any] = {"id": item.id, "original": original, "autoencoded": autoencoded}
        twin = drummed_twin.get(item.id) if item.kind == "mix:nodrums" else None
        if twin is not None:
            row["with_drums_original"], row["with_drums_autoencoded"] = scores(twin)
        rows.append(row)
    twins = [r for r in rows if "with_drums_autoencoded" in r]
    return {
        "items": rows,
        "mean_original": mean_of([r["original"] for r in rows]),
        "mean_autoencoded": mean_of([r["autoencoded"] for r in rows]),
        **(
            {}
            if not twins
            else {
                "mean_with_drums_autoencoded": mean_of([r["with_drums_autoencoded"] for r in twins]),
                "share_below_with_drums_autoencoded": mean_of(
                    [float(r["autoencoded"] < r["with_drums_autoencoded"]) for r in twins]
                ),
            }
        ),
    }


def tempo_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median errors and how many estimates sit at the asked tempo, half or double it, or elsewhere."""
    octaves = [r["octave"] for r in rows]
    return {
        "items": rows,
        "n": len(rows),
        "median_relative_error": float(np.median([r["relative_error"] for r in rows])) if rows else None,
        "median_octave_error": float(np.median([r["octave_error"] for r in rows])) if rows else None,
        **{f"{k}_matches": octaves.count(k) for k in ("exact", "half", "double", "none")},
    }
