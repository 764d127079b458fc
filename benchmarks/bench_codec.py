"""Decoding speed and memory of the STFT codec pretransform (issue 19's longplay-mini v2) against
the Oobleck autoencoder of the shipped longplay-mini, the same lengths in the same run.

    .venv/bin/python benchmarks/bench_codec.py                  # 30 s and 285 s
    .venv/bin/python benchmarks/bench_codec.py --codec data/runs/codec-s1 --seconds 30

The codec has random weights of the shipped configuration unless `--codec` names a folder (its
speed does not depend on them). Each decode runs in a fresh subprocess so its peak RSS is its own.
Reported: wall time (best of `--repeat`), peak RSS growth, the ratio codec / Oobleck. The issue's
bar: a 285 s render no slower than v1's (26-27 s end to end, decode included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import torch
from benchmarks._memory import reset_peak, rss_mb
torch.set_num_threads({threads})
kind, seconds, codec_dir, repeat = {kind!r}, {seconds}, {codec!r}, {repeat}
if kind == "oobleck":
    from engine import load_model
    pre = load_model("longplay-mini").pretransform.eval()
else:
    from engine.stft_codec import STFTCodecPretransform
    from engine.stft_codec_config import STFTCodecConfig, parse_stft_codec
    if codec_dir:
        from lab.training.autoencoder import load_autoencoder
        codec, raw = load_autoencoder(codec_dir)
        pre = STFTCodecPretransform(parse_stft_codec(raw["model"], "model"))
        pre.model.load_state_dict(codec.state_dict())
    else:
        pre = STFTCodecPretransform(STFTCodecConfig(if_bins=1024, phase_lock=True, mag_gain=3.0))
    pre = pre.eval()
frames = int(seconds * 44100 / pre.downsampling_ratio)
z = torch.randn(1, pre.latent_dim, frames, generator=torch.Generator().manual_seed(0))
best = float("inf")
with torch.inference_mode():
    pre.decode(z[..., :64])  # warm-up
    reset_peak()
    base = rss_mb("VmRSS")
    for _ in range(repeat):
        t = time.perf_counter()
        out = pre.decode(z)
        best = min(best, time.perf_counter() - t)
    peak = rss_mb("VmHWM") - base
print(json.dumps({{"seconds": best, "peak_mb": peak, "samples": out.shape[-1], "finite": bool(torch.isfinite(out).all())}}))
"""


def run(kind: str, seconds: float, codec: str, threads: int, repeat: int) -> dict[str, float]:
    code = CHILD.format(root=str(ROOT), threads=threads, kind=kind, seconds=seconds, codec=codec, repeat=repeat)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} {seconds} s failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[30.0, 285.0])
    p.add_argument("--codec", default="", help="an stft_codec autoencoder folder (default: random weights)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    print(
        "| audio (s) | Oobleck decode (s) | codec decode (s) | codec / Oobleck | Oobleck peak (MB) | codec peak (MB) |"
    )
    print("|---|---|---|---|---|---|")
    failed = False
    for seconds in args.seconds:
        ref = run("oobleck", seconds, args.codec, args.threads, args.repeat)
        ours = run("codec", seconds, args.codec, args.threads, args.repeat)
        failed |= not (ref["finite"] and ours["finite"]) or abs(ours["samples"] - ref["samples"]) > 2048
        print(
            f"| {seconds:g} | {ref['seconds']:.2f} | {ours['seconds']:.2f} | {ours['seconds'] / ref['seconds']:.2f} "
            f"| {ref['peak_mb']:.0f} | {ours['peak_mb']:.0f} |"
        )
    if failed:
        raise SystemExit("a decode was not finite, or the lengths differ")


if __name__ == "__main__":
    main()
