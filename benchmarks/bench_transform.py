"""What audio-to-audio costs: a 10 s transform of a beatbox take with longplay-mini (issue 20).

    .venv/bin/python benchmarks/bench_transform.py [--threads 2] [--repeats 3]

Rows, same model, seed and steps, interleaved after one untimed pass of each: a 10 s text render (the reference), the transform
as shipped (the source heard first: `engine.groove`), and the plain transform without hearing
(`groove.DEFAULT.listen = False`). Reported: wall time (best of the repeats), the ratio to the
text render, and the transform's onset F1 against the take (must stay above 0.5: a check that
the hearing did run, not a quality target). The take is `beatbox_set.make_set()[12]` (115.5 BPM).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import engine  # noqa: E402
from engine import groove  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from lab.evaluation import beatbox_set
    from lab.evaluation.groove_eval import score_take

    model = engine.load_model("longplay-mini")
    gen = engine.Generator(model, device="cpu")
    sr = model.config.sample_rate
    take = beatbox_set.make_set(sample_rate=sr)[12]
    src = engine.write_audio_atomic(Path(tempfile.mkdtemp()) / "take.wav", take.clip.audio, sr, "pcm16")
    shipped = groove.DEFAULT
    cases = {
        "text render, 10 s": (engine.RenderRequest("drums, 115 BPM", seconds=10.0, seed=1), shipped),
        "transform, source heard (shipped)": (
            engine.RenderRequest("drums", seconds=10.0, seed=1, init_audio=str(src)),
            shipped,
        ),
        "transform, not heard (before issue 20)": (
            engine.RenderRequest("drums", seconds=10.0, seed=1, init_audio=str(src)),
            replace(shipped, listen=False),
        ),
    }
    walls: dict[str, list[float]] = {k: [] for k in cases}
    f1: dict[str, float] = {}
    for req, settings in cases.values():  # warm up: first renders and librosa's first call are slow
        groove.DEFAULT = settings
        gen.render(req)
    for _ in range(args.repeats):
        for name, (req, settings) in cases.items():
            groove.DEFAULT = settings
            t0 = time.perf_counter()
            [res] = gen.render(req)
            walls[name].append(time.perf_counter() - t0)
            if req.init_audio:
                f1[name] = score_take(take.clip, res.audio, sr)["f1"]
    groove.DEFAULT = shipped
    ref = min(walls["text render, 10 s"])
    print(f"longplay-mini, {gen.defaults['steps']} steps, {args.threads} threads, best of {args.repeats}")
    print("| case | wall s | vs text render | onset F1 |\n|---|---|---|---|")
    for name in cases:
        best = min(walls[name])
        print(f"| {name} | {best:.2f} | {best / ref:.2f}x | {f1.get(name, float('nan')):.2f} |")
    ok = f1["transform, source heard (shipped)"] > 0.5
    if not ok:
        print("FAIL: the shipped transform lost the take's hits", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
