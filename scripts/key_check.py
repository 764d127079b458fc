"""Does a model play the key it is asked for (issue 19)? Renders the eval's eight key prompts
(`judges_eval.KEY_SWEEP`: genre, BPM, key) for each model, and scores them beside held-out mixes:

- in-scale share: the share of tonal peaks' energy on the seven pitch classes of the asked key's
  scale (`music.tonal_in_scale_share`, as `longplay eval` reports it; chance 7/12 = 0.58);
- madmom's key CNN and basic-pitch's notes (Krumhansl–Kessler): right, or its relative, or
  another key of the same scale (`judges.key_agreement`), when the judges env is built (`make judges`);
- madmom's tempo against the asked BPM.

`--matrix`: does the asked key steer at all? Renders "house, 120 BPM, in X major" for all twelve X
(one seed, 10 s) and scores each against all twelve major scales: a model that follows keys has
its largest share on the diagonal. The whole matrix goes to `OUT/<model>/key_matrix.csv`.

`--mean-shift LATENTS`: seconds, no rendering. At pure noise a DiT's x0 is its conditional mean, so a
model that has learned the key moves that mean with the asked key as the corpus's latents move
with their scale. Prints, per model, the size of the move (rms over the twelve major keys) against
the corpus's, and the cosine of each key's move with the corpus's (0: unrelated, 1: the same).

    OMP_NUM_THREADS=2 .venv/bin/python scripts/key_check.py longplay-mini data/runs/dit-codec/model \
        --corpus data/corpus --out /tmp/keycheck
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import Generator, RenderRequest, load_model  # noqa: E402
from engine.audio_io import conform, load_audio, write_audio_atomic  # noqa: E402
from engine.keys import PITCH_NAMES, parse_key, scale_of  # noqa: E402
from engine.sampling import VDenoiser  # noqa: E402
from lab.evaluation import judges  # noqa: E402
from lab.evaluation.adherence import SWEEP_GENRES, TEMPO_SWEEP  # noqa: E402
from lab.evaluation.judges_eval import KEY_SWEEP  # noqa: E402
from lab.evaluation.metrics import middle_crop  # noqa: E402
from lab.evaluation.music import tonal_in_scale_share  # noqa: E402

SR = 44100


def in_scale_share(audio: np.ndarray, key: str) -> float | None:
    scale = judges.scale_pitch_classes(key)
    return None if scale is None else tonal_in_scale_share(audio, SR, scale)


def prompts(n: int) -> list[tuple[str, str, float]]:
    """(prompt, key, bpm) as the eval's judges section asks them."""
    out = []
    for i in range(n):
        bpm, key = TEMPO_SWEEP[(5 * i) % len(TEMPO_SWEEP)], KEY_SWEEP[i % len(KEY_SWEEP)]
        out.append((f"{SWEEP_GENRES[i % len(SWEEP_GENRES)]}, {bpm} BPM, in {key}", key, float(bpm)))
    return out


def key_matrix(model: str, out: Path, seconds: float = 10.0, seed: int = 11, key_cfg: float | None = None) -> None:
    """Prints the matrix's diagonal and best fits, and writes it whole to `out/key_matrix.csv`."""
    gen = Generator(load_model(model), device="cpu")
    scales = [scale_of((t, "major")) for t in range(12)]
    m = np.zeros((12, 12))
    for t, name in enumerate(PITCH_NAMES):
        prompt = f"house, 120 BPM, in {name} major"
        req = RenderRequest(prompt=prompt, seconds=seconds, seed=seed, bpm=120.0, key_cfg=key_cfg)
        audio = gen.render(req)[0].audio
        m[t] = [tonal_in_scale_share(audio, SR, s) or 0.0 for s in scales]
        print(f"asked {name} major: {m[t, t]:.3f}; best {PITCH_NAMES[int(m[t].argmax())]} major {m[t].max():.3f}")
    off = (m.sum() - np.trace(m)) / 132
    right = sum(int(m[t].argmax() == t) for t in range(12))
    print(f"{model}: asked scale {np.trace(m) / 12:.3f}, the others {off:.3f}; best fit is the asked key {right} of 12")
    out.mkdir(parents=True, exist_ok=True)
    head = f"rows: asked key (C..B major, house 120 BPM, {seconds:g} s, seed {seed}); columns: in-scale share against each major scale C..B"
    np.savetxt(out / "key_matrix.csv", m, fmt="%.3f", delimiter=",", header=head)


def corpus_key_means(corpus: str, latents: str, dim: int) -> np.ndarray:
    """The training mixes' (and their transpositions') latent mean per major scale, less the mean
    over scales: `[12, dim]`, row r for the scale of r major (a key's relative modes share it)."""
    from lab.training.data import read_index

    scales = [scale_of((t, "major")) for t in range(12)]
    sums, count = np.zeros((12, dim)), np.zeros(12)
    for it in read_index(corpus, "train"):
        key = parse_key(str(it.metadata.get("key", "")))
        path = Path(latents) / f"{it.id}.npy"
        if it.kind not in ("mix", "mix:transposed") or key is None or not path.is_file():
            continue
        z = np.load(path)[:dim].astype(np.float64)  # the posterior mean's channels
        r = scales.index(scale_of(key))
        sums[r] += z.sum(1)
        count[r] += z.shape[1]
    means = sums / np.maximum(count, 1)[:, None]
    return means - means.mean(0)


def mean_shift(model: str, corpus: str, latents: str, frames: int = 216, seed: int = 0) -> None:
    """The model's conditional x0 (no CFG) for "house, 120 BPM, in X major", X = C..B, averaged over
    frames and four noise draws, against `corpus_key_means` (see the module's doc)."""
    m = load_model(model).eval()
    dim = m.config.autoencoder.latent_dim
    want = corpus_key_means(corpus, latents, dim) / float(m.pretransform.scale)  # in the DiT's units
    den, sigma = VDenoiser(m.network), 80.0  # sigma 80: all but pure noise
    x = torch.randn(4, dim, frames, generator=torch.Generator().manual_seed(seed)) * sigma
    got = np.zeros((12, dim))
    for t, name in enumerate(PITCH_NAMES):
        meta = {"prompt": f"house, 120 BPM, in {name} major", "seconds_start": 0.0, "seconds_total": 10.0, "bpm": 120.0}
        with torch.no_grad():
            x0 = den(x, torch.full((4,), sigma), **m.encode_conditioning([meta] * 4))
        got[t] = x0.double().mean((0, 2)).numpy()
    got -= got.mean(0)
    cos = [float(got[t] @ want[t] / (np.linalg.norm(got[t]) * np.linalg.norm(want[t]) + 1e-12)) for t in range(12)]
    size = float(np.sqrt((got**2).sum(1).mean()) / np.sqrt((want**2).sum(1).mean()))
    print(
        f"{model}: its key move is {size:.3f} of the corpus's; cosine with it {np.mean(cos):.3f} (per key {np.round(cos, 2).tolist()})"
    )


def folder_name(model: str, key_cfg: float | None) -> str:
    """The output subfolder of `model`'s renders (a folder's name, else the model's name) at `key_cfg`."""
    name = Path(model).name if Path(model).exists() else model
    return name if key_cfg is None else f"{name}-key{key_cfg:g}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--out", default="/tmp/keycheck")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--cfg", type=float, default=None, help="CFG scale (default: each model's own)")
    p.add_argument(
        "--key-cfg",
        default="",
        help="comma-separated key guidance scales to compare, each a row (default: the model's own)",
    )
    p.add_argument("--matrix", action="store_true", help="the twelve-key steering matrix instead (see above)")
    p.add_argument("--mean-shift", metavar="LATENTS", help="the conditional-mean check instead, on these latents")
    args = p.parse_args()
    key_cfgs: list[float | None] = [float(g) for g in args.key_cfg.split(",")] if args.key_cfg else [None]
    if args.matrix or args.mean_shift:
        for m in args.models:
            if args.matrix:
                for g in key_cfgs:
                    key_matrix(m, Path(args.out) / folder_name(m, g), key_cfg=g)
            else:
                mean_shift(m, args.corpus, args.mean_shift)
        return
    out = Path(args.out)
    rows: dict[str, list[dict[str, Any]]] = {}
    for m in args.models:
        gen = Generator(load_model(m), device="cpu")
        for g in key_cfgs:
            name = folder_name(m, g)
            row = rows[m if g is None else f"{m}, key_cfg {g:g}"] = []
            for i, (prompt, key, bpm) in enumerate(prompts(args.n)):
                req = RenderRequest(
                    prompt=prompt,
                    seconds=args.seconds,
                    seed=500 + i,
                    steps=args.steps,
                    cfg=args.cfg,
                    bpm=bpm,
                    key_cfg=g,
                )
                audio = gen.render(req)[0].audio
                path = write_audio_atomic(out / name / f"key_{i:02d}.wav", audio, SR, "pcm16")
                row.append({"file": str(path), "key": key, "bpm": bpm, "in_scale": in_scale_share(audio, key)})
            print(f"rendered {name}", flush=True)
    from lab.training.data import read_index

    held = []
    for it in [it for it in read_index(args.corpus, "test") if it.kind == "mix"][: args.n]:
        audio, sr = load_audio(it.path)
        clip = middle_crop(conform(audio, sr, SR, 2), int(args.seconds * SR))
        path = write_audio_atomic(out / "held_out" / f"{it.id}.wav", clip, SR, "pcm16")
        key = str(it.metadata.get("key"))
        held.append(
            {"file": str(path), "key": key, "bpm": it.metadata.get("bpm"), "in_scale": in_scale_share(clip, key)}
        )
    rows["held-out mixes"] = held
    every = [r for rs in rows.values() for r in rs]
    try:
        res = judges.run_judges([(r["file"], ("key", "notes", "tempo")) for r in every])["results"]
    except judges.JudgesUnavailable as err:
        print(f"judges skipped: {err}")
        res = {}

    def got(r: dict[str, Any], judge: str) -> dict[str, Any] | None:
        v = res.get(r["file"], {}).get(judge)
        return v if isinstance(v, dict) and "error" not in v else None

    print("\n| model | in-scale share (median) | madmom key: right+relative / same scale | "
          "basic-pitch key: right+relative / same scale | tempo median error |")  # fmt: skip
    print("|---|---|---|---|---|")
    for m, rs in rows.items():
        share = np.median([r["in_scale"] for r in rs if r["in_scale"] is not None])
        cells = []
        for judge in ("key", "notes"):
            agree = [judges.key_agreement(r["key"], g["key"]) for r in rs if (g := got(r, judge)) and g.get("key")]
            good = sum(a in ("right", "relative") for a in agree)
            cells.append(f"{good} / {agree.count('same_scale')} of {len(agree)}")
        timed = [judges.tempo_row(float(r["bpm"]), (got(r, "tempo") or {}).get("bpm")) for r in rs if r.get("bpm")]
        summary = judges.tempo_summary(timed)
        tempo = (
            f"{summary['median_relative_error']:.3f} ({sum(t['within'] for t in timed)} within 4 %, "
            f"{sum(t['octave_within'] for t in timed)} at half/double too)"
            if summary["median_relative_error"] is not None
            else "-"
        )
        print(f"| {m} | {share:.3f} | {cells[0]} | {cells[1]} | {tempo} |")
    for m, rs in rows.items():
        heard = [(r["key"], (got(r, "key") or {}).get("key"), (got(r, "notes") or {}).get("key")) for r in rs]
        print(f"{m}: " + "; ".join(f"{a} -> {b} / {c}" for a, b, c in heard))


if __name__ == "__main__":
    main()
