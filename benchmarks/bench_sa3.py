"""Stable Audio 3 on this CPU: the sm-music DiT forward and SAME-S decodes, ours vs diffusers, same run.

    .venv/bin/python benchmarks/bench_sa3.py --quick          # ~2 minutes: DiT depth 2, 5 s decodes
    .venv/bin/python benchmarks/bench_sa3.py                  # 120 s DiT forward, SAME-S decode 30 s + 120 s
    .venv/bin/python benchmarks/bench_sa3.py --cases decode120 --reference-120   # + diffusers at 120 s (~9 GB)
    .venv/bin/python benchmarks/bench_sa3.py --cases decode380                   # SAME-S decode of 380 s, ours only

Real sizes, random weights (no downloads): the sm-music DiT (1024 wide x 20 deep, 16 heads, 64
memory tokens, 433 M parameters without its inpainting projections) and SAME-S (768 wide, 6
layers a half, 17 tokens a latent). Every row runs in its own process, so its peak RSS is its own.

- DiT: one forward over 120 s (1,292 latent frames), batch 1, as `SA3Model.generate` calls it (the
  release's all-zero inpainting input included) and as diffusers' pipeline calls the same class.
- SAME-S decode: ours as released (two-latent chunks with a midpoint shift, kernel-3 mapping,
  256-latent windows) in fp32 and bf16 (a bf16 copy of the decoder); diffusers' AutoencoderSAME (a band mask over all
  tokens, kernel 1), and ours with diffusers' math (band attention in linear time, kernel 1). The
  accuracy rows decode and encode with the last two on the same weights (fp32).
- SAME-S decode of 380 s (`decode380`, SAME-L's longest render): ours only, fp32 and bf16, to show the
  windowed decode's memory stays bounded; diffusers' full mask would need ~90 GB there.
Exits non-zero only when an accuracy check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from benchmarks._memory import reset_peak, rss_mb  # noqa: E402
from engine.devices import cpu_has_fast_bf16  # noqa: E402
from engine.sa3 import SA3DiTConfig, SAMEConfig, SAMESide  # noqa: E402

SR, RATIO = 44100, 4096
SM_MUSIC = SA3DiTConfig()  # the defaults are sm-music
SAME_S = SAMEConfig()  # chunked + midpoint shift, kernel-3 decoder mapping
FAILED: list[str] = []


def frames_for(seconds: float) -> int:
    return 2 * math.ceil(seconds * SR / RATIO / 2)


def _autocast(bf16: bool) -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)


def _measure(fn: Any, warm: Any, repeats: int) -> tuple[float, Any]:
    """Median seconds of `repeats` runs of `fn`, after one run of `warm` (the same work, short)."""
    warm()
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], out


# ------------------------------------------------------------------------------------ child rows


def child_dit(who: str, seconds: float, depth: int, bf16: bool, repeats: int) -> dict[str, Any]:
    from engine.sa3.model import build_dit
    from engine.sa3.sampling import SA3Conditioning, SA3Denoiser

    torch.manual_seed(0)
    dit = build_dit(replace(SM_MUSIC, depth=depth)).eval()
    n = frames_for(seconds)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 256, n, generator=g)
    cross, glob = torch.randn(1, 257, 768, generator=g), torch.randn(1, 768, generator=g)
    local = torch.zeros(1, 257, n)
    t = torch.tensor([0.7])

    def call(n_frames: int) -> torch.Tensor:
        xs = x[..., :n_frames]
        if who == "ours":
            return SA3Denoiser(dit, SA3Conditioning(cross, glob, None, local[..., :n_frames]))(xs, t)
        return dit(xs, t, encoder_hidden_states=cross, global_hidden_states=glob, return_dict=False)[0]

    before = rss_mb("VmRSS")
    reset_peak()
    with torch.inference_mode(), _autocast(bf16):
        secs, out = _measure(lambda: call(n), lambda: call(64), repeats)
    return {
        "secs": secs,
        "peak_mb": rss_mb("VmHWM"),
        "extra_mb": rss_mb("VmHWM") - before,
        "finite": bool(torch.isfinite(out).all()),
    }


def _same_model(who: str, seed: int = 0) -> Any:
    """One SAME-S-sized autoencoder with random, well-scaled weights: ours as released ("ours"),
    ours with band attention and a kernel-1 mapping ("band", diffusers' math) or diffusers'."""
    from diffusers import AutoencoderSAME

    from engine.sa3.same import SAMEAutoencoder
    from tests.engine.sa3_helpers import randomize

    torch.manual_seed(seed)
    if who == "diffusers":
        model = AutoencoderSAME().eval()
    elif who == "band":
        side = replace(SAMESide(), sliding_window=(1, 1), chunk_midpoint_shift=False)
        model = SAMEAutoencoder(replace(SAME_S, encoder=side, decoder=side)).eval()
    else:
        model = SAMEAutoencoder(SAME_S).eval()
    randomize(model, seed + 1)  # same names and shapes in "band" and "diffusers": the same weights
    return model.requires_grad_(False)


def child_decode(who: str, seconds: float, bf16: bool, repeats: int) -> dict[str, Any]:
    model = _same_model(who)
    z = torch.randn(1, 256, frames_for(seconds), generator=torch.Generator().manual_seed(2))

    def run(frames: int) -> torch.Tensor:
        zs = z[..., :frames]
        if who == "diffusers":
            with _autocast(bf16):
                return model.decode(zs).sample
        return model.decode(zs, window=256, dtype=torch.bfloat16 if bf16 else None)  # bf16: the decoder's bf16 copy

    before = rss_mb("VmRSS")
    reset_peak()
    with torch.inference_mode():
        secs, out = _measure(lambda: run(z.shape[-1]), lambda: run(16), repeats)
    return {
        "secs": secs,
        "peak_mb": rss_mb("VmHWM"),
        "extra_mb": rss_mb("VmHWM") - before,
        "finite": bool(torch.isfinite(out).all()),
    }


def child_accuracy(seconds: float) -> dict[str, Any]:
    band, ref = _same_model("band"), _same_model("diffusers")
    z = torch.randn(1, 256, frames_for(seconds), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        a, b = band.decode(z, window=256), ref.decode(z).sample
        lat = torch.randn(1, 2, frames_for(seconds) * RATIO, generator=torch.Generator().manual_seed(3)) * 0.3
        e, f = band.encode(lat), ref.encode(lat).latents
    err = lambda x, y: ((x - y).abs().max() / y.abs().max()).item()  # noqa: E731
    return {"decode_err": err(a, b), "encode_err": err(e, f)}


# ------------------------------------------------------------------------------------- the table


def run_child(args: argparse.Namespace, spec: list[str]) -> dict[str, Any] | None:
    cmd = [sys.executable, __file__, "--_child", json.dumps(spec), "--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        FAILED.append(f"{spec}: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(title: str, head: list[str], rows: list[list[Any]], note: str = "") -> None:
    cells = [head] + [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(head))]
    print(f"\n{title}")
    for i, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w[j]) if j else c.ljust(w[j]) for j, c in enumerate(r)))
        if i == 0:
            print("  " + "  ".join("-" * x for x in w))
    if note:
        print("  " + note.replace("\n", "\n  "))
    sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: DiT depth 2, 5 s decodes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--cases", default="dit,decode30,decode120", help="comma list of dit, decode30, decode120, decode380"
    )
    ap.add_argument("--reference-120", action="store_true", help="also diffusers' 120 s decode (~9 GB, minutes)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--_child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args._child:
        kind, *rest = json.loads(args._child)
        out = child_dit(*rest) if kind == "dit" else child_decode(*rest) if kind == "decode" else child_accuracy(*rest)
        print(json.dumps(out))
        return 0
    bf16 = cpu_has_fast_bf16()
    print(
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, fast bf16 {bf16}, "
        f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}"
    )
    cases = args.cases.split(",") if not args.quick else ["dit", "decode30"]
    precisions = [False, True] if bf16 else [False]
    name = {False: "fp32", True: "bf16"}
    if "dit" in cases:
        depth, seconds = (2, 120.0) if args.quick else (20, 120.0)
        rows = []
        for p in precisions:
            res = {w: run_child(args, ["dit", w, seconds, depth, p, args.repeats]) for w in ("diffusers", "ours")}
            for w, r in res.items():
                if r:
                    base = res["diffusers"]["secs"] if res["diffusers"] else float("nan")
                    rows.append([f"{w} ({name[p]})", r["secs"], base / r["secs"], r["extra_mb"], r["peak_mb"]])
        table(
            f"DiT forward, sm-music (1024 x {depth}, 16 heads, 64 memory tokens): {frames_for(seconds)} latent "
            f"frames = {seconds:g} s, batch 1",
            ["case", "time s", "diffusers/this", "peak - before MB", "peak RSS MB"],
            rows,
            "ours = SA3Denoiser around diffusers' StableAudio3DiTModel, with the release's zero inpainting "
            "input (to_local_embed on every block); diffusers = the class as its pipeline calls it",
        )
    for case, seconds in (("decode30", 30.0), ("decode120", 120.0), ("decode380", 380.0)):
        if case not in cases:
            continue
        seconds = 5.0 if args.quick else seconds
        rows = []
        ref_ok = seconds <= 30 or (args.reference_120 and seconds <= 120)
        res = {}
        for p in precisions:
            res[("ours", p)] = run_child(args, ["decode", "ours", seconds, p, args.repeats])
        if seconds <= 30:
            res[("band", False)] = run_child(args, ["decode", "band", seconds, False, args.repeats])
        if ref_ok:
            res[("diffusers", False)] = run_child(args, ["decode", "diffusers", seconds, False, args.repeats])
        base = res.get(("diffusers", False))
        for (w, p), r in res.items():
            if r:
                label = {
                    "ours": "ours, as released",
                    "band": "ours, band (diffusers' math)",
                    "diffusers": "diffusers AutoencoderSAME",
                }[w]
                rows.append(
                    [
                        f"{label} ({name[p]})",
                        r["secs"],
                        base["secs"] / r["secs"] if base else "-",
                        r["extra_mb"],
                        r["peak_mb"],
                    ]
                )
        note = (
            ""
            if ref_ok
            else "diffusers at 120 s not run (166 s and 9.2 GB measured in issue 21; --reference-120)"
            if seconds <= 120
            else f"diffusers not run: its band mask over all {frames_for(seconds) * 17:,} tokens needs ~90 GB"
        )
        table(
            f"SAME-S decode, {seconds:g} s ({frames_for(seconds)} latents, {frames_for(seconds) * 17:,} tokens)",
            ["case", "time s", "diffusers/this", "peak - before MB", "peak RSS MB"],
            rows,
            note,
        )
    acc_seconds = 5.0 if args.quick else 30.0
    acc = run_child(args, ["accuracy", acc_seconds]) if "decode30" in cases else None
    if acc:
        ok = acc["decode_err"] <= 1e-4 and acc["encode_err"] <= 1e-4
        if not ok:
            FAILED.append(f"band SAME vs diffusers: {acc}")
        table(
            f"Accuracy, SAME-S dims, {acc_seconds:g} s, fp32: our band attention vs diffusers' full mask",
            ["case", "max rel err", "check"],
            [
                ["decode", f"{acc['decode_err']:.1e}", "ok" if ok else "FAIL"],
                ["encode", f"{acc['encode_err']:.1e}", "ok" if ok else "FAIL"],
            ],
        )
    if FAILED:
        print("\nFAILED: " + "; ".join(FAILED))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
