"""Validate engine.beats against the corpus's ground truth (bar 1 at 0 s, a steady tempo): usage
`python scripts/validate_beats.py [N_MIXES]` after `longplay corpus data/corpus ...`."""

import json
import sys
import time

import numpy as np
import soundfile as sf

from engine.beats import hear

rows = [json.loads(line) for line in open("data/corpus/metadata.jsonl")]
mixes = [r for r in rows if r["kind"] == "mix"][: int(sys.argv[1])]
res = []
for r in mixes:
    a, sr = sf.read("data/corpus/" + r["path"], frames=44100 * 30, dtype="float32")
    bpm = r["metadata"]["bpm"]
    ts = r["metadata"].get("time_signature", "4/4")
    bpb = int(ts.split("/")[0])
    t = time.time()
    for hint in (None, bpm):
        b = hear(a.T, sr, hint, bpb)
        if b is None:
            print(r["id"], "none")
            continue
        per = 60 / bpm
        ph = min(b.first_downbeat % (per * bpb), per * bpb - b.first_downbeat % (per * bpb))
        res.append((hint is None, abs(b.bpm - bpm) / bpm, ph, b.confidence))
        print(
            r["id"],
            r["metadata"]["genre"],
            bpm,
            "hint" if hint else "blind",
            round(b.bpm, 2),
            round(b.first_beat, 3),
            round(b.first_downbeat, 3),
            round(b.confidence, 2),
            f"{time.time() - t:.1f}s",
        )
for blind in (True, False):
    x = [r for r in res if r[0] == blind]
    e = np.array([r[1] for r in x])
    p = np.array([r[2] for r in x])
    print(
        "blind" if blind else "hint",
        "median err",
        np.median(e),
        "within1%",
        np.mean(e < 0.01),
        "downbeat<50ms",
        np.mean(p < 0.05),
    )
