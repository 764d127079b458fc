"""Does a model render some prompts as digital silence (issue 19)? Renders the rows of
`lab/runs/dit-keyadd2/silence.txt` (a prompt and a length, seeds 0-9, the model's defaults) and
prints each render's level; a render under -60 dBFS counts as silent. longplay-mini v1 and the
corpus's music never go there; the v2 candidates' silent renders sit at -105 to -120 dBFS, the
encoded silence decoded.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/silence_check.py longplay-mini lab/runs/dit-keyadd2
"""

from __future__ import annotations

import argparse

import numpy as np

from engine import Generator, RenderRequest, load_model

ROWS = [("drums", 4.0), ("drums", 8.0), ("drums", 30.0), ("techno, 130 BPM, drums only", 16.0), ("house, 124 BPM", 8.0)]
SILENT_DBFS = -60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    for name in args.models:
        gen = Generator(load_model(name), device="cpu")
        for prompt, seconds in ROWS:
            levels = []
            for seed in range(args.seeds):
                audio = gen.render(RenderRequest(prompt, seconds=seconds, seed=seed))[0].audio
                levels.append(round(20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-12)))
            silent = sum(level < SILENT_DBFS for level in levels)
            print(
                f"{name} {prompt} {seconds} silent (< {SILENT_DBFS:.0f} dBFS): {silent} of {len(levels)}; levels {levels}"
            )


if __name__ == "__main__":
    main()
