"""Measure audio-to-audio's groove on the held-out beatbox set (issue 20): onset F1, tempo, kits.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/measure_groove.py --variants legacy:0.7 grid:0.8 held:0.7 --kits 6

Each variant is NAME:STRENGTH, NAME one of `VARIANTS` (how `engine.groove` is set for it), with
`GrooveSettings` fields changed after commas (`grid,gate_db=30,grid_lead_s=0.05:0.7`). Every take
of `lab.evaluation.beatbox_set.make_set()` is restyled with the prompt "drums" (no BPM) at the
given strength, seed = `--seed` + take index; the output's onsets (librosa, `music.detect_onsets`) are scored
against the take's known onsets (mir_eval, +-50 ms) and its tempo (`engine.beats.hear`, hinted at
the take's BPM as the tempo check is) against the take's. `--kits K` also restyles the first K
takes with KIT_PROMPTS and reports their spectra's distances. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine  # noqa: E402
from engine import groove  # noqa: E402
from engine.beats import hear  # noqa: E402
from lab.evaluation import beatbox_set, music  # noqa: E402
from lab.evaluation.groove_eval import kit_distances, score_take  # noqa: E402

VARIANTS = {
    "legacy": dict(listen=False, hold=0.0),  # no hearing, no holding: the behaviour before issue 20
    "grid": dict(listen=True, hold=0.0),  # the source's tempo and phase on the grid
    "held": dict(listen=True, hold=0.5),  # grid + onset frames held longer (differential diffusion)
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="+", default=["legacy:0.7", "grid:0.7", "held:0.7"])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--every", type=int, default=1, help="score every k-th take only (quick sweeps)")
    ap.add_argument("--start", type=int, default=0, help="the first take scored")
    ap.add_argument("--seed", type=int, default=0, help="take i renders with seed SEED + i")
    ap.add_argument("--kits", type=int, default=0)
    ap.add_argument("--prompt", default="drums")
    ap.add_argument("--out", default="outputs/groove_measure.json")
    args = ap.parse_args()
    model = engine.load_model("longplay-mini")
    gen = engine.Generator(model)
    sr = model.config.sample_rate
    takes = beatbox_set.make_set(args.clips, sample_rate=sr)[args.start :: args.every]
    tmp = Path(tempfile.mkdtemp(prefix="groove-"))
    paths = []
    for t in takes:
        paths.append(engine.write_audio_atomic(tmp / f"{t.name}.wav", t.clip.audio, sr, "pcm16"))
    results = []
    base = groove.DEFAULT
    seeds = [args.seed + i for i in range(args.clips)][args.start :: args.every]  # a take keeps its seed in any subset
    for spec in args.variants:
        name, strength_s = spec.rsplit(":", 1)  # "grid,gate_db=24,hold=0.3:0.7"
        strength = float(strength_s)
        base_name, *changes = name.split(",")
        extra: dict[str, object] = dict(VARIANTS[base_name])
        for change in changes:
            key, value = change.split("=")
            kind = type(getattr(base, key))
            extra[key] = value == "true" if kind is bool else (None if value == "none" else float(value))
        groove.DEFAULT = replace(base, **extra)
        rows = []
        t0 = time.perf_counter()
        for i, t, p in zip(seeds, takes, paths, strict=True):
            req = engine.RenderRequest(
                args.prompt, seconds=t.clip.seconds, seed=i, init_audio=str(p), init_strength=strength
            )
            [res] = gen.render(req)
            rows.append(
                {"take": t.name, **score_take(t.clip, res.audio, sr), "recipe_tempo": res.recipe.get("source_tempo")}
            )
        wall = time.perf_counter() - t0
        f1 = [r["f1"] for r in rows]
        err = [r["tempo_error"] for r in rows]
        row = {
            "variant": name,
            "strength": strength,
            "mean_f1": float(np.mean(f1)),
            "mean_f1_superflux": float(np.mean([r["f1_superflux"] for r in rows])),
            "min_f1": float(np.min(f1)),
            "median_tempo_error": float(np.nanmedian(err)),
            "within_1pct": int(np.sum(np.asarray(err) <= 0.01)),
            "mean_mel_from_input": float(np.mean([r["mel_from_input"] for r in rows])),
            "median_lag_s": float(np.nanmedian([r["lag_s"] for r in rows])),
            "seconds_per_take": wall / len(takes),
            "takes": rows,
        }
        if args.kits:
            row["kits"] = kit_distances(gen, takes[: args.kits], paths[: args.kits], strength, sr)
        results.append(row)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))  # after each variant: a long run can be read early
        print(
            f"{name:>28} s={strength:.2f}  F1 {row['mean_f1']:.3f} (min {row['min_f1']:.2f}; "
            f"SuperFlux {row['mean_f1_superflux']:.3f})  "
            f"tempo err median {row['median_tempo_error']:.4f}, {row['within_1pct']}/{len(takes)} within 1 %  "
            f"mel from input {row['mean_mel_from_input']:.3f}  lag {1000 * row['median_lag_s']:+.0f} ms  {row['seconds_per_take']:.1f} s/take"
            + (f"  kits {json.dumps(row['kits']['summary'])}" if args.kits else ""),
            flush=True,
        )
    groove.DEFAULT = base
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    _ = hear, music


if __name__ == "__main__":
    main()
