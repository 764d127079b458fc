"""Renders longer than the model's window (engine/longform.py) with longplay-mini: cost and seams.

    .venv/bin/python benchmarks/bench_longform.py                  # 600 s against one 285 s window
    .venv/bin/python benchmarks/bench_longform.py --seconds 900 --steps 8

Reference in the same run: one render of the window's length (the longest a single window
samples), same prompt and seed. Reported per render: wall time, seconds of wall per minute of
audio and its ratio to the reference (windows overlap by ~30 s, so a long render costs a little
more per minute than one window), the level of every 10 s (min / max, dBFS) and, for the long
render, how much the sound changes across each seam: spectral novelty (1 - cosine of mean-removed
log-mel frames 2 s before and after) at the first new frame of each continued window, as a
percentile of the same measure everywhere in that render (50: an ordinary moment; 100: the biggest
change in the piece), and the tempo (librosa) in the 40 s around it against the asked-for 124 BPM.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine import Generator, RenderRequest, load_model  # noqa: E402
from lab.evaluation.music import window_levels  # noqa: E402

PROMPT = "warm analog house bed, 124 BPM, Rhodes, sub bass"
BPM = 124.0


def novelty(audio: np.ndarray, rate: int, lag_s: float = 2.0) -> tuple[np.ndarray, float]:
    """(novelty per frame, frames per second): how different the sound is lag_s after from lag_s before."""
    import librosa

    hop = 1024
    mel = librosa.power_to_db(
        librosa.feature.melspectrogram(y=audio.mean(0), sr=rate, n_fft=2048, hop_length=hop, n_mels=64)
    )
    x = mel - mel.mean(0, keepdims=True)
    x /= np.linalg.norm(x, axis=0, keepdims=True) + 1e-9
    k = int(lag_s * rate / hop)
    nov = np.zeros(x.shape[1])
    nov[k:-k] = 1 - np.sum(x[:, : -2 * k] * x[:, 2 * k :], axis=0)
    return nov, rate / hop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="longplay-mini")
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import librosa

    gen = Generator(load_model(args.model), device="cpu")
    cfg = gen.model.config
    if not gen.can_continue():
        print(f"{args.model} cannot continue its window ({cfg.window_seconds:.1f} s): nothing to measure")
        return 0
    rate, hop = cfg.sample_rate, cfg.autoencoder.downsampling_ratio
    segments = gen.segments(args.seconds)
    plan = ", ".join(f"{s.start * hop / rate:.0f}-{(s.start + s.frames) * hop / rate:.0f} s" for s in segments)
    print(
        f"model {args.model}: window {cfg.window_seconds:.1f} s; {args.seconds:g} s as {len(segments)} windows ({plan})"
    )

    rows = []
    for name, seconds in (("one window (reference)", min(cfg.window_seconds, args.seconds)), ("long", args.seconds)):
        t0 = time.perf_counter()
        [res] = gen.render(RenderRequest(PROMPT, seconds=seconds, steps=args.steps, seed=7, bpm=BPM))
        wall = time.perf_counter() - t0
        lv = window_levels(res.audio, rate, 10.0)
        rows.append((name, seconds, wall, wall / seconds * 60, lv.min(), lv.max(), res.audio))

    ref_rate = rows[0][3]
    print("| render | audio s | wall s | wall s per audio min | vs reference | 10 s levels min / max (dBFS) |")
    print("|---|---|---|---|---|---|")
    for name, seconds, wall, per_min, lo, hi, _ in rows:
        print(
            f"| {name} | {seconds:.0f} | {wall:.1f} | {per_min:.1f} | {per_min / ref_rate:.2f} | {lo:.1f} / {hi:.1f} |"
        )

    audio = rows[1][6]
    nov, fps = novelty(audio, rate)
    valid = nov[nov > 0]
    print("\n| seam (s) | novelty | percentile in the render | tempo in the 40 s around (BPM) |")
    print("|---|---|---|---|")
    for seg in segments[1:]:
        t = (seg.start + seg.known) * hop / rate
        v = float(nov[int(t * fps)])
        clip = audio.mean(0)[int(max(t - 20, 0) * rate) : int((t + 20) * rate)]
        tempo = float(librosa.feature.tempo(y=clip, sr=rate)[0])
        print(f"| {t:.1f} | {v:.3f} | {(valid < v).mean() * 100:.0f} | {tempo:.1f} (asked {BPM:g}) |")
    print(
        f"\nnovelty over the whole render: median {np.median(valid):.3f}, 90th percentile {np.percentile(valid, 90):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
