"""DiT forward and VAE decode: ours vs diffusers on the same weights, in one run (ratios).

Prints a table: time per call (median of repeats, interleaved so load hits both alike), the ratio
diffusers/ours (> 1: ours is faster), and the max relative error of ours against diffusers.
`--quick` uses 4 DiT layers (SAO width) and a 16-frame decode; the default uses the full SAO 1.0
DiT (24 layers, batch 2 for CFG, 1024 frames) and a 64-frame decode. `--long` adds a 285 s
(6144-frame) chunked decode with its peak RSS, measured in a subprocess.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "engine")]

from engine.autoencoder import AutoencoderPretransform  # noqa: E402
from engine.config import parse_model_config  # noqa: E402
from engine.devices import half_dtype  # noqa: E402
from engine.dit import DiffusionTransformer  # noqa: E402

SAO = json.loads((ROOT.parent / "shared" / "reference" / "stable-audio-open-1.0.model_config.json").read_text()) \
    if (ROOT.parent / "shared" / "reference").is_dir() else None


def _sao_config() -> dict:
    if SAO is None:
        from engine.presets import tiny_config  # fallback outside the workspace

        return tiny_config()
    return SAO


def _randomize(module: torch.nn.Module, std: float = 0.02) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in module.named_parameters():
            base = 1.0 if name.endswith(("weight_g", "gamma")) else 0.0
            p.copy_(torch.randn(p.shape, generator=g) * std + base)


def _time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def bench_dit(depth: int, frames: int, repeats: int) -> list[tuple[str, float, float, float]]:
    from diffusers import StableAudioDiTModel
    from diffusers.models.embeddings import get_1d_rotary_pos_embed
    from diffusers_convert import convert_dit, dit_config, rotary_dim

    cfg = parse_model_config(_sao_config())
    dcfg = cfg.dit.__class__(**{**cfg.dit.__dict__, "depth": depth})
    ours = DiffusionTransformer(dcfg).eval()
    _randomize(ours)
    theirs = StableAudioDiTModel(**dit_config(dcfg)).eval()
    theirs.load_state_dict(convert_dit({"model.model." + k: v for k, v in ours.state_dict().items()}, dcfg))
    g = torch.Generator().manual_seed(1)
    b = 2
    x = torch.randn(b, dcfg.io_channels, frames, generator=g)
    t = torch.rand(b, generator=g)
    ctx = torch.randn(b, 130, dcfg.cond_token_dim, generator=g)
    glob = torch.randn(b, dcfg.global_cond_dim, generator=g)
    rot = get_1d_rotary_pos_embed(rotary_dim(dcfg), frames + 1, use_real=True, repeat_interleave_real=False)
    with torch.no_grad():
        ref = theirs(x, t, encoder_hidden_states=ctx, global_hidden_states=glob[:, None], rotary_embedding=rot,
                     return_dict=False)[0]
        mine = ours(x, t, ctx, glob)
        err = float((mine - ref).abs().max() / ref.abs().max())
        rows = []
        ours_fn = lambda: ours(x, t, ctx, glob)  # noqa: E731
        theirs_fn = lambda: theirs(x, t, encoder_hidden_states=ctx, global_hidden_states=glob[:, None],  # noqa: E731
                                   rotary_embedding=rot, return_dict=False)
        t_theirs = _time(theirs_fn, repeats)
        t_ours = _time(ours_fn, repeats)
        rows.append((f"DiT fp32, depth {depth}, B={b}, T={frames}", t_ours, t_theirs, err))
        dt = half_dtype(torch.device("cpu"))
        if dt is not None:  # only where this CPU has fast bf16 (AMX / AVX512-BF16)
            with torch.autocast("cpu", dtype=dt):
                mine_bf = ours(x, t, ctx, glob)
                t_ours_bf = _time(ours_fn, repeats)
            rows.append((f"DiT bf16 autocast (ours) vs fp32 (diffusers)", t_ours_bf, t_theirs,
                         float((mine_bf.float() - ref).abs().max() / ref.abs().max())))
    return rows


def bench_vae(frames: int, repeats: int) -> list[tuple[str, float, float, float]]:
    from diffusers import AutoencoderOobleck
    from diffusers_convert import convert_vae, vae_config

    cfg = parse_model_config(_sao_config()).autoencoder
    ours = AutoencoderPretransform(cfg).eval()
    _randomize(ours, 0.01)
    theirs = AutoencoderOobleck(**vae_config(cfg)).eval()
    theirs.load_state_dict(convert_vae({"pretransform.model." + k: v for k, v in ours.model.state_dict().items()}, cfg))
    z = torch.randn(1, cfg.latent_dim, frames, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = theirs.decode(z).sample
        mine = ours.decode(z)
        err = float((mine - ref).abs().max() / ref.abs().max())
        t_theirs = _time(lambda: theirs.decode(z), repeats)
        t_ours = _time(lambda: ours.decode(z), repeats)
    return [(f"VAE decode fp32, {frames} frames ({frames * 2048 / 44100:.1f} s audio)", t_ours, t_theirs, err)]


def long_decode() -> str:
    code = (
        "import json,resource,time,torch,sys;sys.path.insert(0,%r);"
        "from engine.autoencoder import AutoencoderPretransform;from engine.config import parse_model_config;"
        "cfg=parse_model_config(json.load(open(%r))).autoencoder;ae=AutoencoderPretransform(cfg).eval();"
        "z=torch.randn(1,cfg.latent_dim,6144);base=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        "t=time.time();torch.no_grad().__enter__();y=ae.decode(z);"
        "print(json.dumps({'s':time.time()-t,'peak_mb':resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024,"
        "'base_mb':base/1024,'samples':y.shape[-1]}))"
    ) % (str(ROOT), str(ROOT.parent / "shared" / "reference" / "stable-audio-open-1.0.model_config.json"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    d = json.loads(out)
    return (f"285 s decode (6144 frames, chunked): {d['s']:.0f} s, peak RSS {d['peak_mb']:.0f} MB "
            f"(model + runtime {d['base_mb']:.0f} MB), {d['samples']} samples")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"threads {a.threads}, fast bf16: {half_dtype(torch.device('cpu')) is not None}")
    rows = bench_dit(4 if a.quick else 24, 256 if a.quick else 1024, a.repeats)
    rows += bench_vae(16 if a.quick else 64, a.repeats)
    print(f"\n| case | ours (s) | diffusers (s) | diffusers/ours | max rel err |")
    print("|---|---|---|---|---|")
    for name, t_ours, t_theirs, err in rows:
        print(f"| {name} | {t_ours:.3f} | {t_theirs:.3f} | {t_theirs / t_ours:.2f}x | {err:.1e} |")
    if a.long:
        print("\n" + long_decode())


if __name__ == "__main__":
    main()
