"""Calibrate the evaluation's "drums present" measure on a generated corpus.

The corpus built with ``--drumless`` holds every drummed song twice: the mix and the same mix
without its kit (``mix:nodrums``). That pair is the cleanest test a drum detector can get: same
notes, same mix, only the drums differ. For each HPSS margin this prints the percussive ratio
(`lab.evaluation.music.percussive_ratio`) of both, as rendered and after a model's
autoencoder round trip (what every render goes through), how often the drummed one scores
higher (pairwise), and the threshold that best tells them apart (balanced accuracy) -- the
numbers behind `DRUMS_THRESHOLD` and `HPSS_MARGIN`.

    python scripts/calibrate_drums.py data/corpus --model longplay-mini --songs 40
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import load_audio, load_model  # noqa: E402
from lab.data.corpus import drumless_id  # noqa: E402
from lab.evaluation import metrics, music  # noqa: E402
from lab.training.data import read_index  # noqa: E402


def best_threshold(with_drums: np.ndarray, without: np.ndarray) -> tuple[float, float]:
    """(threshold, balanced accuracy) of the best cut between two score sets (drums score higher)."""
    cuts = np.unique(np.concatenate([with_drums, without]))
    best = (0.0, 0.0)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        t = (lo + hi) / 2
        acc = 0.5 * (np.mean(with_drums >= t) + np.mean(without < t))
        if acc > best[1]:
            best = (float(t), float(acc))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("--model", default="longplay-mini", help="model whose autoencoder the renders go through")
    ap.add_argument("--songs", type=int, default=40, help="drummed songs with a drumless twin to use")
    ap.add_argument("--seconds", type=float, default=20.0, help="middle crop per item (the eval renders 20 s)")
    ap.add_argument("--margins", default="1,2,3")
    args = ap.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    items = {it.id: it for it in read_index(args.corpus, None)}
    pairs = [
        (it, items[drumless_id(it.id)]) for it in items.values() if it.kind == "mix" and drumless_id(it.id) in items
    ]
    if not pairs:
        sys.exit(f"{args.corpus} has no mix:nodrums items; build it with `longplay corpus --drumless`")
    by_genre: dict[str, list] = {}
    for pair in pairs:
        by_genre.setdefault(pair[0].metadata.get("genre", "?"), []).append(pair)
    picked = [
        p
        for k in range(max(map(len, by_genre.values())))
        for g in sorted(by_genre)
        if k < len(by_genre[g])
        for p in [by_genre[g][k]]
    ][: args.songs]  # round-robin over genres
    pre = load_model(args.model).pretransform
    scores = {(side, stage, m): [] for side in ("drums", "none") for stage in ("as is", "autoencoded") for m in margins}
    for n, (mix, dry) in enumerate(picked, 1):
        row = [f"{n:3d} {mix.metadata.get('genre', '?'):14s}"]
        for side, item in (("drums", mix), ("none", dry)):
            audio, sr = load_audio(item.path)
            clip = metrics.middle_crop(audio, int(args.seconds * sr) // pre.downsampling_ratio * pre.downsampling_ratio)
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(clip))[None].float()
                decoded = pre.decode(pre.encode(x, sample=False))[0].numpy()
            for stage, a in (("as is", clip), ("autoencoded", decoded)):
                for m in margins:
                    scores[(side, stage, m)].append(music.percussive_ratio(a, sr, margin=m))
            row.append(
                f"{side}: "
                + " ".join(
                    f"m{m:g} {scores[(side, 'as is', m)][-1]:.3f}→{scores[(side, 'autoencoded', m)][-1]:.3f}"
                    for m in margins
                )
            )
        print("  ".join(row), flush=True)
    print(f"\n{len(picked)} pairs, {args.seconds:g} s middle crops; model {args.model}")
    print(
        "| HPSS margin | stage | with drums: min / median | without: median / max | pairwise | best threshold "
        "| balanced accuracy |"
    )
    print("|---|---|---|---|---|---|---|")
    for m in margins:
        for stage in ("as is", "autoencoded"):
            d, q = np.array(scores[("drums", stage, m)]), np.array(scores[("none", stage, m)])
            t, acc = best_threshold(d, q)
            print(
                f"| {m:g} | {stage} | {d.min():.3f} / {np.median(d):.3f} | {np.median(q):.3f} / {q.max():.3f} "
                f"| {np.mean(d > q):.2f} | {t:.3f} | {acc:.2f} |"
            )


if __name__ == "__main__":
    main()
