"""Decoder speed: phase-vocoder decoders against the Oobleck decoder, same latents, same run.

    .venv/bin/python benchmarks/bench_decoders.py [--oobleck longplay-mini] [--vocoder <AE or model folder>]

The reference is the Oobleck decoder of --oobleck (default: the embedded model's autoencoder).
Beside it: a phase-vocoder decoder made from it (`train ae --decoder phase_vocoder`: latents ->
spectrum) and a re-phasing one (`--decoder rephase`: the Oobleck decoder as its source), both with
fresh weights, as speed does not depend on them; or, with --vocoder, that trained folder's
decoder. Each decodes the same latents of --seconds (default 285 s, the DiT's window) through
`AutoencoderPretransform.decode` (chunked as in a render); the table gives wall time, the ratio
to the Oobleck decoder, and the decode's peak memory over the process before it (one subprocess
per row, so each peak is its own).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._memory import reset_peak, rss_mb  # noqa: E402


def child(spec: str, seconds: float, threads: int, repeats: int) -> None:
    import torch

    from engine.autoencoder import AutoencoderPretransform
    from engine.training.autoencoder import load_autoencoder, with_phase_vocoder

    torch.set_num_threads(threads)
    kind, folder = spec.split(":", 1)
    ae, raw = load_autoencoder(folder)
    if kind != "trained":  # a fresh vocoder on this autoencoder's latents
        torch.manual_seed(0)
        ae = with_phase_vocoder(ae, raw["model"], rephase=kind == "rephase")[0].eval()
    pre = AutoencoderPretransform(ae.cfg)
    pre.model = ae
    frames = int(seconds * raw["sample_rate"]) // ae.cfg.downsampling_ratio
    z = torch.randn(1, ae.cfg.latent_dim, frames, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        pre.decode(z[..., :32])  # warm-up (folds weight norm)
        before = rss_mb("VmRSS")
        reset_peak()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            audio = pre.decode(z)
            times.append(time.perf_counter() - t)
    print(json.dumps({"secs": min(times), "peak_mb": rss_mb("VmHWM") - before,
                      "params_m": sum(p.numel() for p in ae.decoder.parameters()) / 1e6,
                      "finite": bool(torch.isfinite(audio).all()), "samples": audio.shape[-1]}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oobleck", default="longplay-mini", help="autoencoder or model folder with an Oobleck decoder")
    ap.add_argument("--vocoder", help="autoencoder or model folder with a trained phase-vocoder decoder "
                    "(default: fresh ones made from --oobleck)")
    ap.add_argument("--seconds", type=float, default=285.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--_child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        child(args._child, args.seconds, args.threads, args.repeats)
        return 0
    rows = {}
    cases = [("oobleck", f"trained:{args.oobleck}")]
    cases += ([("phase vocoder (trained)", f"trained:{args.vocoder}")] if args.vocoder else
              [("phase vocoder", f"phase_vocoder:{args.oobleck}"), ("rephase (oobleck + vocoder)", f"rephase:{args.oobleck}")])
    for name, folder in cases:
        res = subprocess.run([sys.executable, __file__, "--_child", folder,
                              "--seconds", str(args.seconds), "--threads", str(args.threads),
                              "--repeats", str(args.repeats)], capture_output=True, text=True, check=False)
        if res.returncode:
            print(f"{name}: failed\n{res.stderr[-800:]}")
            return 1
        rows[name] = json.loads(res.stdout.strip().splitlines()[-1])
    ref = rows["oobleck"]["secs"]
    print(f"\nDecode {args.seconds:.0f} s of latents, {args.threads} threads, best of {args.repeats}\n")
    print(f"| decoder | params M | time s | x oobleck | peak MB over RSS before | output ok |")
    print(f"|---|---|---|---|---|---|")
    for name, r in rows.items():
        ok = r["finite"] and r["samples"] == rows["oobleck"]["samples"]
        print(f"| {name} | {r['params_m']:.2f} | {r['secs']:.2f} | {r['secs'] / ref:.2f} | {r['peak_mb']:.0f} | {ok} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
