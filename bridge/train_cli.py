"""`longplay train ae|encode|dit`: thin CLI over the engine's training API.

Ctrl-C (or SIGTERM) stops a run at the next step and writes a checkpoint; running the same
command again resumes from it.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from typing import Any

from .errors import BridgeError, EngineUnavailable


def add_train_parser(sub: Any) -> None:
    t = sub.add_parser("train", help="train the autoencoder or the DiT on a corpus (resumable)")
    tsub = t.add_subparsers(dest="train_command", metavar="STAGE", required=True)

    ae = tsub.add_parser("ae", help="train the autoencoder")
    ae.add_argument("--corpus", required=True, help="corpus folder (metadata.jsonl + audio/)")
    ae.add_argument("--out", required=True, help="output folder (checkpoints + model)")
    ae.add_argument("--steps", type=int, default=2000)
    ae.add_argument("--batch", type=int, default=4)
    ae.add_argument("--crop", type=int, default=65536, help="samples per training crop (multiple of the hop)")
    ae.add_argument("--lr", type=float, default=1.5e-4)
    ae.add_argument("--seed", type=int, default=0)
    ae.add_argument("--channels", type=int, default=32)
    ae.add_argument("--latent-dim", type=int, default=32)

    enc = tsub.add_parser("encode", help="encode the corpus to latents with a trained autoencoder")
    enc.add_argument("--corpus", required=True)
    enc.add_argument("--ae", required=True, help="trained autoencoder folder")
    enc.add_argument("--out", required=True, help="latents folder")

    dit = tsub.add_parser("dit", help="train the DiT and text encoder on encoded latents")
    dit.add_argument("--corpus", required=True)
    dit.add_argument("--latents", required=True)
    dit.add_argument("--ae", required=True)
    dit.add_argument("--out", required=True)
    dit.add_argument("--steps", type=int, default=4000)
    dit.add_argument("--batch", type=int, default=4)
    dit.add_argument("--lr", type=float, default=3e-4)
    dit.add_argument("--seed", type=int, default=0)
    dit.add_argument("--window", type=float, default=190.0, help="training window in seconds")
    dit.add_argument("--width", type=int, default=256)
    dit.add_argument("--depth", type=int, default=8)
    dit.add_argument("--heads", type=int, default=4)
    dit.add_argument("--attn-window", type=int, default=0, help="local attention block in latent frames (0: full)")
    dit.add_argument("--global-layers", default="", help="comma-separated layers keeping full attention")
    dit.add_argument("--description", default="")


def run_train(args: argparse.Namespace) -> int:
    try:
        import engine
    except ImportError as err:
        raise EngineUnavailable(err) from err
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.train_command == "ae":
            raw = engine.mini_autoencoder_config(channels=args.channels, latent_dim=args.latent_dim)
            cfg = engine.AETrainConfig(steps=args.steps, batch_size=args.batch, crop_samples=args.crop,
                                       lr=args.lr, seed=args.seed)
            out = engine.train_autoencoder(args.corpus, args.out, raw, cfg, should_stop=stop.is_set)
        elif args.train_command == "encode":
            out = engine.encode_corpus(args.corpus, args.ae, args.out)
        else:
            ae_raw = json.loads((Path(args.ae) / "model_config.json").read_text())["model"]
            layers = tuple(int(x) for x in args.global_layers.split(",") if x.strip())
            config = engine.diffusion_config(ae_raw, args.window, args.width, args.depth, args.heads,
                                             attn_window=args.attn_window, global_layers=layers)
            cfg = engine.DiTTrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, seed=args.seed)
            out = engine.train_dit(config, args.corpus, args.latents, args.ae, args.out, cfg,
                                   should_stop=stop.is_set, description=args.description)
    except (engine.EngineError, OSError, ValueError) as err:
        raise BridgeError(str(err)) from err
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    print(out)
    return 0
