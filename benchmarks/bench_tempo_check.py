"""What the tempo check (engine/tempo_check.py) adds to a render, on this machine.

    .venv/bin/python benchmarks/bench_tempo_check.py                # 30 s and 285 s renders
    .venv/bin/python benchmarks/bench_tempo_check.py --seconds 30 --steps 8

Each length is rendered once with longplay-mini at 124 BPM through `Generator.render`, whose
progress marks where the render ends and the check ("checking") begins. Ours: the check as
shipped, hearing the first `ANALYSE_SECONDS`. Reference, in the same run on the same audio: the
whole render heard. Reported: render time, check time, check / render (the target: a few %), the
BPM each heard (they must agree within 0.2 %), and what a `snap` stretch of the whole render by
2 % would cost (pedalboard's Rubber Band, only run when a render is snapped).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import Generator, Progress, RenderRequest, load_model  # noqa: E402
from engine.beats import hear  # noqa: E402
from engine.tempo_check import ANALYSE_SECONDS, stretch_to_grid  # noqa: E402

BPM = 124.0


def mark(marks: dict[str, float], p: Progress) -> None:
    """When each progress stage first came."""
    marks.setdefault(p.stage, time.perf_counter())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="longplay-mini")
    p.add_argument("--seconds", type=float, nargs="*", default=[30.0, 285.0])
    p.add_argument("--steps", type=int, default=None)
    args = p.parse_args()
    gen = Generator(load_model(args.model), device="cpu")
    gen.render(RenderRequest("warm up", seconds=2.0, steps=1, bpm=BPM))  # loads librosa, warms the kernels
    print(
        f"| render | render s | check s (first {ANALYSE_SECONDS:g} s) | check / render | whole heard s | "
        "BPM heard (ours / whole) | snap 2 % s |"
    )
    print("|---|---|---|---|---|---|---|")
    ok = True
    for seconds in args.seconds:
        marks: dict[str, float] = {}
        req = RenderRequest("house, drums", seconds=seconds, bpm=BPM, steps=args.steps, seed=7)
        t0 = time.perf_counter()
        [res] = gen.render(req, functools.partial(mark, marks))
        end = time.perf_counter()
        render_s, check_s = marks["checking"] - t0, end - marks["checking"]
        t1 = time.perf_counter()
        whole = hear(res.audio, res.sample_rate, BPM)
        whole_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        stretched = stretch_to_grid(res.audio, res.sample_rate, 1.02, 4 * 60 / BPM)
        snap_s = time.perf_counter() - t2
        ours = res.recipe["tempo_check"]["bpm"]
        agree = whole is not None and ours is not None and abs(ours / whole.bpm - 1) <= 0.002
        ok &= agree and stretched.shape == res.audio.shape
        heard = f"{ours} / {whole.bpm:.3f}" if whole is not None else f"{ours} / none"
        print(
            f"| {seconds:g} s | {render_s:.1f} | {check_s:.2f} | {check_s / render_s:.1%} | {whole_s:.2f} | "
            f"{heard}{'' if agree else ' DISAGREE'} | {snap_s:.1f} |"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
