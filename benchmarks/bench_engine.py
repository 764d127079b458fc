"""Engine speed on this CPU: the DiT forward and the Oobleck VAE, ours vs diffusers, same run.

    .venv/bin/python benchmarks/bench_engine.py --quick     # < 2 minutes: DiT depth 2, VAE 16 frames
    .venv/bin/python benchmarks/bench_engine.py             # SAO 1.0 sizes + a 285 s chunked decode
    .venv/bin/python benchmarks/bench_engine.py --long      # only the 285 s decode (memory + time)

Models are SAO 1.0-sized and built in memory on random, well-scaled weights (no downloads);
diffusers' modules get *our* weights through the test-only converter, so their outputs are
comparable. Timings are interleaved (ours, reference, ours, ...) and reported as medians, since
other processes may share the machine; compare the ratios, not the seconds. Each model runs in
its best mode on this CPU: bf16 autocast is used only if a bf16 matmul probe beats fp32 here.
Exits non-zero only when an accuracy check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from benchmarks._memory import reset_peak, rss_mb  # noqa: E402
from engine import fastconv  # noqa: E402
from engine.autoencoder import AudioAutoencoder, AutoencoderPretransform  # noqa: E402
from engine.config import AutoencoderConfig, DiTConfig, OobleckConfig  # noqa: E402
from engine.dit import DiffusionTransformer  # noqa: E402
from tests.engine.diffusers_convert import randomize_  # noqa: E402  (the parity tests' weights)

try:
    import warnings

    warnings.filterwarnings("ignore", message=".*weight_norm.*deprecated")
    from diffusers import AutoencoderOobleck, StableAudioDiTModel
    from diffusers.models.embeddings import get_1d_rotary_pos_embed
except Exception:  # noqa: BLE001 - benchmark ours alone
    AutoencoderOobleck = StableAudioDiTModel = None  # type: ignore[assignment,misc]
try:
    from tests.engine import diffusers_convert as convert
except Exception:  # noqa: BLE001 - no converter: diffusers keeps its own random weights
    convert = None  # type: ignore[assignment]

SAO_DIT = DiTConfig(
    io_channels=64,
    embed_dim=1536,
    depth=24,
    num_heads=24,
    cond_token_dim=768,
    global_cond_dim=1536,
    project_cond_tokens=False,
)
_OOB = dict(
    audio_channels=2, channels=128, c_mults=(1, 2, 4, 8, 16), strides=(2, 4, 4, 8, 8), use_snake=True, final_tanh=False
)
SAO_VAE = AutoencoderConfig(
    encoder=OobleckConfig(latent_dim=128, **_OOB),
    decoder=OobleckConfig(latent_dim=64, **_OOB),
    bottleneck="vae",
    latent_dim=64,
    downsampling_ratio=2048,
    io_channels=2,
)
FAILED: list[str] = []


def timed(fns: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Interleaved runs after one warm-up each -> (median seconds, last output) per name."""
    outs = {k: f() for k, f in fns.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            outs[k] = f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}, outs


def rel_err(x: Tensor, ref: Tensor) -> float:
    return ((x.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-30)).item()


def snr_db(x: Tensor, ref: Tensor) -> float:
    noise = (x.double() - ref.double()).pow(2).sum().item()
    return float("inf") if noise == 0 else 10 * math.log10(ref.double().pow(2).sum().item() / noise)


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


def check(ok: bool, what: str) -> str:
    if not ok:
        FAILED.append(what)
    return "ok" if ok else "FAIL"


def bf16_probe() -> tuple[float, float]:
    """Seconds of a [512 x 1536] @ [1536 x 1536] linear in fp32 and under bf16 autocast."""
    lin, x = nn.Linear(1536, 1536), torch.randn(512, 1536)

    def bf16() -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return lin(x)

    with torch.no_grad():
        t, _ = timed({"fp32": lambda: lin(x), "bf16": bf16}, 3)
    return t["fp32"], t["bf16"]


# -------------------------------------------------------------------------------------------- DiT


def bench_dit(args: argparse.Namespace, use_bf16: bool) -> None:
    depth, frames = (2, 1024) if args.quick else (SAO_DIT.depth, 1024)
    cfg = DiTConfig(**{**SAO_DIT.__dict__, "depth": depth})
    torch.manual_seed(0)
    ours = DiffusionTransformer(cfg).eval()
    randomize_(ours, 1)
    g = torch.Generator().manual_seed(2)
    b = 2  # the CFG batch: conditional + unconditional
    x, t = torch.randn(b, 64, frames, generator=g), torch.full((b,), 0.4)
    ctx, glob = torch.randn(b, 130, 768, generator=g), torch.randn(b, 1536, generator=g)
    ctx[1] = 0  # the unconditional half: zeroed tokens
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if use_bf16 else nullcontext
    mode = "bf16 autocast" if use_bf16 else "fp32"
    fns: dict[str, Callable[[], Tensor]] = {}

    def run_ours() -> Tensor:
        with autocast():
            return ours(x, t, ctx, glob)

    fns["ours"] = run_ours
    fp32_ref: Callable[[], Tensor] = lambda: ours(x, t, ctx, glob)  # noqa: E731
    if StableAudioDiTModel is not None and convert is not None:
        ref = StableAudioDiTModel(**convert.dit_config(cfg)).eval()
        ref.load_state_dict(convert.convert_dit(ours.state_dict(), cfg, prefix=""))
        rot = get_1d_rotary_pos_embed(convert.rotary_dim(cfg), frames + 1, use_real=True, repeat_interleave_real=False)

        def run_ref() -> Tensor:
            with autocast():
                return ref(
                    x,
                    timestep=t,
                    encoder_hidden_states=ctx,
                    global_hidden_states=glob[:, None],
                    rotary_embedding=rot,
                    return_dict=False,
                )[0]

        fns["diffusers"] = run_ref

        def fp32_ref() -> Tensor:
            return ref(
                x,
                timestep=t,
                encoder_hidden_states=ctx,
                global_hidden_states=glob[:, None],
                rotary_embedding=rot,
                return_dict=False,
            )[0]

    with torch.inference_mode():
        secs, outs = timed(fns, args.repeats)
        # The accuracy reference: diffusers in fp32 (ours in fp32 when diffusers is missing).
        want = fp32_ref() if use_bf16 or "diffusers" not in outs else outs["diffusers"]
        # What a per-render cross-attention K/V cache would save: the context projections of a step.
        layers = ours.transformer.layers

        def kv_only() -> None:
            c = ours.to_cond_embed(ctx)
            for layer in layers:
                layer.cross_attn.to_kv(c)

        kv, _ = timed({"kv": kv_only}, args.repeats)
    rows = []
    base = secs.get("diffusers")
    # bf16's error grows with depth (2.4e-2 for both at depth 24 on random weights, AVX512-BF16
    # EPYC): ours may not be worse than 2e-2 or 1.5x the reference's own bf16 error.
    ref_err = rel_err(outs["diffusers"], want) if use_bf16 and "diffusers" in outs else 0.0
    for k in ("diffusers", "ours"):
        if k in secs:
            err = rel_err(outs[k], want)
            tol = max(2e-2, 1.5 * ref_err) if use_bf16 else 1e-4
            rows.append(
                [
                    f"{k} ({mode})",
                    secs[k],
                    (base / secs[k]) if base else "-",
                    f"{err:.1e}",
                    check(err <= tol, f"DiT {k} error {err:.2e}"),
                ]
            )
    note = (
        f"{'quick: depth 2 of 24 (per-layer cost is what matters); ' if args.quick else ''}"
        f"batch {b} (CFG), {frames} latent frames + 1 prepended token, 130 context tokens, "
        f"{torch.get_num_threads()} threads\n"
        f"cross-attention K/V projections of one forward (what a per-render K/V cache saves): "
        f"{kv['kv'] * 1e3:.0f} ms = {100 * kv['kv'] / secs['ours']:.1f}% of ours"
    )
    table(
        f"DiT forward, SAO 1.0 dims (embed 1536, heads 24, depth {depth})",
        ["case", "time s", "diffusers/this", "max rel err vs fp32 ref", "check"],
        rows,
        note,
    )


# -------------------------------------------------------------------------------------------- VAE


def build_vae() -> tuple[AudioAutoencoder, nn.Module | None]:
    torch.manual_seed(0)
    ours = AudioAutoencoder(SAO_VAE).eval()
    randomize_(ours, 3)
    ref = None
    if AutoencoderOobleck is not None and convert is not None:
        ref = AutoencoderOobleck(**convert.vae_config(SAO_VAE)).eval()
        ref.load_state_dict(convert.convert_vae(ours.state_dict(), SAO_VAE, prefix=""))
    return ours, ref


def bench_vae(args: argparse.Namespace, use_bf16: bool) -> None:
    frames = args.frames or (16 if args.quick else 64)
    ours, ref = build_vae()
    g = torch.Generator().manual_seed(4)
    z = torch.randn(1, 64, frames, generator=g)
    audio = torch.randn(1, 2, frames * 2048, generator=g) * 0.3

    def plain(f: Callable[[], Tensor]) -> Callable[[], Tensor]:
        def run() -> Tensor:
            with fastconv.plain():
                return f()

        return run

    def bf16_convs(f: Callable[[], Tensor]) -> Callable[[], Tensor]:
        """The plain path with every conv in bf16 (fp32 in and out, Snake and sums in fp32): what
        bf16 can buy the VAE where bf16 GEMMs are fast. Measured, not used: see the SNR column."""

        def run() -> Tensor:
            conv, convt = torch.nn.functional.conv1d, torch.nn.functional.conv_transpose1d

            def wrap(op: Callable[..., Tensor]) -> Callable[..., Tensor]:
                def bf16_op(x: Tensor, w: Tensor, b: Tensor | None = None, *a: Any, **k: Any) -> Tensor:
                    y = op(x.bfloat16(), w.bfloat16(), None, *a, **k).float()
                    return y if b is None else y + b[:, None]

                return bf16_op

            torch.nn.functional.conv1d, torch.nn.functional.conv_transpose1d = wrap(conv), wrap(convt)
            try:
                with fastconv.plain():
                    return f()
            finally:
                torch.nn.functional.conv1d, torch.nn.functional.conv_transpose1d = conv, convt

        return run

    rows = []
    for what, f_ours, f_ref in (
        ("decode", lambda: ours.decode(z), (lambda: ref.decode(z).sample) if ref is not None else None),
        (
            "encode",
            lambda: ours.encode(audio, sample=False)[0],
            (lambda: ref.encode(audio).latent_dist.mean) if ref is not None else None,
        ),
    ):
        fns = {"ours fast": f_ours, "ours plain": plain(f_ours)}
        if what == "decode" and use_bf16:
            fns["bf16 convs (not used)"] = bf16_convs(f_ours)
        if f_ref is not None:
            fns["diffusers"] = f_ref
        with torch.inference_mode():
            secs, outs = timed(fns, args.repeats)
        base = secs.get("diffusers")
        ref_out = outs["ours plain"]
        for k in ("diffusers", "ours plain", "ours fast", "bf16 convs (not used)"):
            if k not in secs:
                continue
            err, snr = rel_err(outs[k], ref_out), snr_db(outs[k], ref_out)
            unused = k.endswith("(not used)")
            ok = snr >= 40 and (err <= 1e-5 or k == "diffusers")
            rows.append(
                [
                    f"{what}: {k}" + ("" if unused else " (fp32)"),
                    secs[k],
                    (base / secs[k]) if base else "-",
                    f"{snr:.0f}" if snr != float("inf") else "exact",
                    f"{err:.1e}",
                    ("info" if unused else check(ok, f"VAE {what} {k}: SNR {snr:.1f} dB, err {err:.2e}")),
                ]
            )
    # bf16 here: one decoder conv (1024 ch, k=7, 512 samples) in bf16 vs fp32.
    conv = ours.decoder.layers[2].layers[2].layers[1]
    x = torch.randn(1, conv.weight_v.shape[1], 512)
    w = conv.weight().detach()
    with torch.no_grad():
        p, _ = timed(
            {
                "fp32": lambda: torch.nn.functional.conv1d(x, w, None, 1, 3),
                "bf16": lambda: torch.nn.functional.conv1d(x.bfloat16(), w.bfloat16(), None, 1, 3),
            },
            2,
        )
    table(
        f"VAE, SAO 1.0 Oobleck (channels 128, c_mults 1,2,4,8,16, strides 2,4,4,8,8, latent 64): "
        f"{frames} latent frames = {frames * 2048 / 44100:.1f} s of audio",
        ["case", "time s", "diffusers/this", "SNR dB vs ours plain", "max rel err", "check"],
        rows,
        f"fast = engine.fastconv paths (GEMM k=1 + fused residual, GEMM+overlap-add transposed conv,\n"
        f"folded SnakeBeta, parallel time tiles); plain = the same module on plain torch ops.\n"
        f"{torch.get_num_threads()} threads; a k=7 1024-channel conv takes {p['bf16'] / p['fp32']:.1f}x the fp32 "
        f"time in bf16 here. Ours decodes in fp32: bf16 convs (row shown where bf16 matmuls are\n"
        f"faster) fall below the 40 dB SNR bar (39.5 dB measured on an AVX512-BF16 EPYC).",
    )


# ------------------------------------------------------------------------------------- long decode


def long_child(frames: int, chunk: int, overlap: int, threads: int) -> None:
    """Runs in a fresh process (so ru_maxrss is this decode's peak): prints one JSON line."""
    torch.set_num_threads(threads)
    pre = AutoencoderPretransform(SAO_VAE).eval()
    randomize_(pre, 3)
    z = torch.randn(1, 64, frames, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        pre.decode(z[..., :16])  # folds the weights (a lasting +1 copy of the decoder's convs)
    before = rss_mb("VmRSS")
    reset_peak()
    with torch.inference_mode():
        t = time.perf_counter()
        audio = pre.decode(z, chunk_frames=chunk, overlap_frames=overlap)
        secs = time.perf_counter() - t
    print(
        json.dumps(
            {
                "secs": secs,
                "rss_before_mb": before,
                "peak_mb": rss_mb("VmHWM"),
                "samples": audio.shape[-1],
                "finite": bool(torch.isfinite(audio).all()),
            }
        )
    )


def bench_long(args: argparse.Namespace) -> None:
    frames, rows = 6144, []
    for chunk, overlap in args.long_chunks:
        cmd = [sys.executable, __file__, "--_long-child", f"{frames},{chunk},{overlap}", "--threads", str(args.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode:
            rows.append([f"chunk {chunk} / overlap {overlap}", "-", "-", "-", check(False, res.stderr[-300:])])
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        waste = overlap / (chunk - overlap)
        rows.append(
            [
                f"chunk {chunk} / overlap {overlap} (+{100 * waste:.0f}% recompute)",
                r["secs"],
                r["peak_mb"] - r["rss_before_mb"],
                r["peak_mb"],
                check(r["finite"] and r["samples"] == frames * 2048, "long decode output"),
            ]
        )
    table(
        f"Chunked decode of {frames} latent frames ({frames * 2048 / 44100:.0f} s of audio), ours fast, "
        f"{args.threads} threads, one subprocess per row",
        ["case", "time s", "decode peak - RSS before MB", "peak RSS MB", "check"],
        rows,
        "RSS before = model + its folded conv weights (made by a warm-up decode)",
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small run (< 2 min): DiT depth 2, VAE 16 frames")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long", action="store_true", help="only the 285 s chunked decode")
    ap.add_argument("--frames", type=int, default=0, help="VAE latent frames (default 64, quick 16)")
    ap.add_argument("--repeats", type=int, default=0, help="timed runs per case (default 3, quick 2)")
    ap.add_argument("--_long-child", dest="long_child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.long_chunks = [(128, 32)]
    torch.set_num_threads(args.threads)
    if args.long_child:
        long_child(*map(int, args.long_child.split(",")), args.threads)
        return 0
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    t32, t16 = bf16_probe()
    use_bf16 = t16 < t32
    print(
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, AMX {amx}, "
        f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}\n"
        f"bf16 probe (1536x1536 linear, 512 tokens): fp32 {t32 * 1e3:.1f} ms, bf16 autocast {t16 * 1e3:.1f} ms "
        f"-> DiT runs in {'bf16 autocast' if use_bf16 else 'fp32'}"
        + ("" if StableAudioDiTModel is not None else "\ndiffusers not installed: ours only")
        + ("" if convert is not None else "\nno tests/engine/diffusers_convert.py: no cross-model errors")
    )
    if not args.long:
        bench_vae(args, use_bf16)
        bench_dit(args, use_bf16)
    if args.long or not args.quick:
        bench_long(args)
    if FAILED:
        print("\nFAILED: " + "; ".join(FAILED))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
