"""A whole Stable Audio 3 render on this CPU: sm-music (DiT 1024 x 20 + SAME-S, real sizes, random
weights), 120 s, the model's defaults (8 ping-pong steps, CFG off), through `Generator.render` —
and, in the same run, the reference's cost of the same work: diffusers' StableAudio3DiTModel
forward over the same 120 s times the steps, plus diffusers' AutoencoderSAME decode of 30 s scaled
to 120 s linearly (its real cost grows faster: it attends over all ~22,000 tokens; measured
166 s / 9.2 GB at 120 s in `bench_sa3.py --reference-120`, so the ratio below is a floor).

    .venv/bin/python benchmarks/bench_sa3_render.py [--seconds 120]

The text encoder is left out (random prompt embeddings of T5Gemma's shape): one forward over
<= 128 tokens, well under a second.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from engine import Generator, RenderRequest  # noqa: E402
from engine.sa3.layouts import parse_original  # noqa: E402
from engine.sa3.model import PromptEmbedding, SA3Model  # noqa: E402
from tests.engine.sa3_helpers import randomize  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "stable-audio-3-small-music.model_config.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = parse_original(json.loads(FIXTURE.read_text()))
    torch.manual_seed(0)
    model = SA3Model(cfg).eval()
    randomize(model, 1)
    width = cfg.dit.cond_token_dim if hasattr(cfg.dit, "cond_token_dim") else 768

    def encode_prompt(prompts: list[str]) -> PromptEmbedding:
        g = torch.Generator().manual_seed(2)
        return PromptEmbedding(torch.randn(len(prompts), 16, width, generator=g), torch.ones(len(prompts), 16))

    model.encode_prompt = encode_prompt  # type: ignore[method-assign]
    gen = Generator(model, device="cpu")
    steps = int(gen.defaults["steps"])
    req = RenderRequest("warm analog house", seconds=args.seconds, seed=0)
    gen.render(RenderRequest("warm", seconds=2.0, seed=0))  # warm-up
    t0 = time.perf_counter()
    out = gen.render(req)[0]
    ours = time.perf_counter() - t0

    dit = model.dit
    n = out.audio.shape[1] // 4096 + 2
    x = torch.randn(1, 256, n - n % 2)
    g = torch.Generator().manual_seed(3)
    cross, glob = torch.randn(1, 17, 768, generator=g), torch.randn(1, 768, generator=g)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        dit(x[..., :64], torch.tensor([0.5]), encoder_hidden_states=cross, global_hidden_states=glob)
        t = time.perf_counter()
        dit(x, torch.tensor([0.5]), encoder_hidden_states=cross, global_hidden_states=glob)
        ref_dit = time.perf_counter() - t
    from diffusers import AutoencoderSAME

    vae = AutoencoderSAME().eval()
    randomize(vae, 4)
    z = torch.randn(1, 256, 2 * round(30 * 44100 / 4096 / 2))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        t = time.perf_counter()
        vae.decode(z)
        ref_decode = (time.perf_counter() - t) * args.seconds / 30
    reference = steps * ref_dit + ref_decode
    print(f"Stable Audio 3 sm-music, {args.seconds:g} s, {steps} steps, {args.threads} threads (bf16 where fast)")
    print("| case | seconds | reference / this |")
    print("|---|---|---|")
    print(f"| ours: Generator.render, whole | {ours:.1f} | {reference / ours:.2f} |")
    print(
        f"| diffusers: {steps} x DiT forward ({ref_dit:.2f} s) + SAME decode (30 s x {args.seconds / 30:g}) | {reference:.1f} | 1.00 |"
    )
    print("| goal | 60.0 | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
