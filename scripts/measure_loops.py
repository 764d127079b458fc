"""Seams of loops against the same renders made without --loop (issue 22): for each prompt and seed,
the seam's flux and level-step z-scores (`engine.loops.seam_z`) of the loop and of the plain render
played end-to-start. Usage: `python scripts/measure_loops.py [SEEDS]` (longplay-mini, 20 steps)."""

from __future__ import annotations

import sys

import numpy as np

from engine import Generator, RenderRequest, load_model
from engine.loops import seam_z

PROMPTS = [
    ("house, 124 BPM, drums, bass", 124.0, 4),
    ("ambient pad, 80 BPM", 80.0, 2),
    ("techno, 135 BPM", 135.0, 8),
    ("hip hop, 92 BPM, drums", 92.0, 2),
    ("drum and bass, 172 BPM", 172.0, 8),
    ("lo-fi piano, 78 BPM", 78.0, 4),
]


def main(seeds: int) -> None:
    gen = Generator(load_model("longplay-mini"))
    rows: dict[bool, list[float]] = {True: [], False: []}
    for prompt, bpm, bars in PROMPTS:
        for seed in range(seeds):
            for loop in (True, False):
                audio = gen.render(RenderRequest(prompt, bpm=bpm, bars=bars, seed=seed, steps=20, loop=loop))[0].audio
                rows[loop].append(max(abs(z) for z in seam_z(audio, bars * 4)))
    print("| render | seams | within abs(z) <= 3 | within 6 | median abs(z) | worst |")
    print("|---|---|---|---|---|---|")
    for loop in (True, False):
        z = np.array(rows[loop])
        name = "loop (--loop)" if loop else "the same request without --loop, played end-to-start"
        print(
            f"| {name} | {len(z)} | {np.mean(z <= 3):.0%} | {np.mean(z <= 6):.0%} | {np.median(z):.2f} | {z.max():.1f} |"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
