"""Does a model render some prompts as digital silence (issue 19)? Renders the rows of
`lab/runs/dit-keyadd2/silence.txt` (a prompt and a length, seeds 0-9, the model's defaults) and a
2-bar loop, and prints each render's level; a render under -60 dBFS counts as silent.
longplay-mini v1, the shipped v2 and the corpus's music never go there; the earlier v2
candidates' silent renders sit at -96 to -121 dBFS, the encoded silence decoded.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/silence_check.py longplay-mini data/runs/dit-lead/model
"""

from __future__ import annotations

import argparse

from engine import Generator, RenderRequest, load_model
from lab.evaluation.music import level_dbfs

ROWS = [("drums", 4.0), ("drums", 8.0), ("drums", 30.0), ("techno, 130 BPM, drums only", 16.0), ("house, 124 BPM", 8.0)]
# And "drums" as a 2-bar loop at 120 BPM (4 s): a bar-exact loop is sampled circularly, shown to
# the network as copies of itself as long as the training crop (engine/loops.py).
REQUESTS = [(f"{p} {s}", dict(prompt=p, seconds=s)) for p, s in ROWS]
REQUESTS.append(("drums 2-bar loop", dict(prompt="drums", bpm=120.0, bars=2, loop=True)))
SILENT_DBFS = -60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    for name in args.models:
        gen = Generator(load_model(name), device="cpu")
        for label, fields in REQUESTS:
            levels = []
            for seed in range(args.seeds):
                audio = gen.render(RenderRequest(seed=seed, **fields))[0].audio
                levels.append(round(level_dbfs(audio)))
            silent = sum(level < SILENT_DBFS for level in levels)
            print(f"{name} {label} silent (< {SILENT_DBFS:.0f} dBFS): {silent} of {len(levels)}; levels {levels}")


if __name__ == "__main__":
    main()
