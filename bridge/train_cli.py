"""`longplay train ae|encode|dit`: thin CLI over the engine's training API.

Ctrl-C (or SIGTERM) stops a run at the next step and writes a checkpoint; running the same
command again resumes from it.
"""

from __future__ import annotations

import argparse
import signal
import threading
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
    ae.add_argument(
        "--lr-final",
        type=float,
        default=1.0,
        help="learning rate at --steps as a fraction of --lr, reached linearly (1: constant)",
    )
    ae.add_argument("--seed", type=int, default=0)
    ae.add_argument("--channels", type=int, default=32)
    ae.add_argument(
        "--latent-dim",
        type=int,
        help="latent channels (default 32); with --init-from, more than its own grows its latents "
        "(the old channels kept, new ones starting small) and trains encoder and decoder on",
    )
    ae.add_argument(
        "--patch-size", type=int, default=4, help="samples folded into channels before the encoder (1: none, as SAO)"
    )
    ae.add_argument(
        "--mel-weight",
        type=float,
        default=0.0,
        help="weight of a multi-resolution mel-spectrogram term beside the STFT loss (0: off)",
    )
    ae.add_argument(
        "--frame-span-weight",
        type=float,
        default=0.0,
        help="weight of an STFT term with windows of 2-8 latent hops, which hears a decoder "
        "that repeats itself every hop (a buzz at the latent rate) (0: off)",
    )
    ae.add_argument(
        "--wave-weight",
        type=float,
        default=0.0,
        help="weight of an L1 waveform term, which asks the latents to carry phase (0: off)",
    )
    ae.add_argument("--kl-weight", type=float, default=1e-4, help="weight of the VAE's KL term")
    ae.add_argument(
        "--adv-weight",
        type=float,
        default=0.0,
        help="weight of the adversarial (hinge) term from a multi-resolution STFT discriminator (0: off)",
    )
    ae.add_argument(
        "--fm-weight", type=float, default=0.0, help="weight of the discriminator's feature-matching term (0: off)"
    )
    ae.add_argument(
        "--adv-start",
        type=int,
        default=0,
        help="step from which the decoder hears the discriminator (it trains from step 0)",
    )
    ae.add_argument("--disc-channels", type=int, default=16, help="width of each discriminator resolution")
    ae.add_argument(
        "--pitch-weight",
        type=float,
        default=0.0,
        help="weight of the pitch readout term: a small network must read the input's pitches from the latents (0: off)",
    )
    ae.add_argument(
        "--decoder-only",
        action="store_true",
        help="train only the decoder (encoder frozen, latents unchanged), from --init-from or OUT's checkpoint",
    )
    ae.add_argument(
        "--decoder-latents",
        choices=("sample", "mean"),
        help="train the decoder on VAE posterior samples or on its mean (with the encoder "
        "training too: a deterministic autoencoder, the KL term keeping the mean's scale); "
        "default: what the --init-from model was trained on (longplay-mini: mean), else sample",
    )
    ae.add_argument(
        "--decoder-channels",
        type=int,
        help="with --init-from and --decoder-only: widen its decoder to this many channels first "
        "(a multiple of its width; it starts as nearly the same function, channels copied)",
    )
    ae.add_argument("--minutes", type=float, default=0.0, help="stop with a checkpoint after this long (0: no limit)")
    ae.add_argument(
        "--init-from",
        help="autoencoder folder, or model folder or name (e.g. longplay-mini), to start "
        "from; its architecture replaces --channels/--patch-size (and --latent-dim unless larger)",
    )

    AE_HELP = "trained autoencoder folder, or a model folder or name (e.g. longplay-mini) whose autoencoder is used"
    enc = tsub.add_parser("encode", help="encode the corpus to latents with a trained autoencoder")
    enc.add_argument("--corpus", required=True)
    enc.add_argument("--ae", required=True, help=AE_HELP)
    enc.add_argument("--out", required=True, help="latents folder")
    enc.add_argument(
        "--kinds", default="", help="comma-separated item kinds to encode, e.g. mix,stem:drums (default: all)"
    )
    enc.add_argument("--shard", default="0/1", help="I/N: encode every N-th item from the I-th (parallel processes)")

    pkg = tsub.add_parser("package", help="make a trained model folder shippable (fine-tuned decoder, float16)")
    pkg.add_argument("--model", required=True, help="trained model folder (train dit's OUT/model)")
    pkg.add_argument("--out", required=True, help="folder to write")
    pkg.add_argument("--ae", help="autoencoder folder whose decoder replaces the model's (same encoder)")
    pkg.add_argument("--float32", action="store_true", help="keep float32 weights (default: float16)")
    pkg.add_argument("--description", help="replace the model's description")
    pkg.add_argument("--default-steps", type=int, help="sampler steps renders use unless asked otherwise")
    pkg.add_argument("--default-cfg", type=float, help="guidance scale renders use unless asked otherwise")
    pkg.add_argument(
        "--default-key-cfg",
        type=float,
        help="guidance scale of the key a prompt names (models with an added key token; default: --default-cfg)",
    )
    pkg.add_argument("--default-sampler", help="sampler renders use unless asked otherwise")

    dit = tsub.add_parser("dit", help="train the DiT and text encoder on encoded latents")
    dit.add_argument("--corpus", required=True)
    dit.add_argument("--latents", required=True)
    dit.add_argument("--ae", required=True, help=AE_HELP + " (the DiT's frozen pretransform)")
    dit.add_argument("--out", required=True)
    dit.add_argument("--steps", type=int, default=4000)
    dit.add_argument("--batch", type=int, default=4)
    dit.add_argument("--lr", type=float, default=3e-4)
    dit.add_argument(
        "--lr-final",
        type=float,
        default=1.0,
        help="learning rate at --steps as a fraction of --lr, reached linearly (1: constant)",
    )
    dit.add_argument("--ema", type=float, default=0.999, help="EMA decay of the saved weights")
    dit.add_argument("--seed", type=int, default=0)
    # Architecture flags default to None: with --init-from they come from that model, else ARCH_DEFAULTS.
    dit.add_argument("--window", type=float, help="training window in seconds (default 190)")
    dit.add_argument("--width", type=int, help="DiT width (default 256)")
    dit.add_argument("--depth", type=int, help="DiT layers (default 8)")
    dit.add_argument("--heads", type=int, help="attention heads (default 4)")
    dit.add_argument(
        "--attn-window", type=int, help="local attention block in DiT tokens (latent frames / --patch; default 0: full)"
    )
    dit.add_argument("--global-layers", help="comma-separated layers keeping full attention")
    dit.add_argument("--patch", type=int, help="latent frames per DiT token (default 1)")
    dit.add_argument("--crop", type=float, default=0.0, help="training crop in seconds (0: the whole window)")
    dit.add_argument(
        "--long", type=float, default=0.0, help="every 4th step trains on one crop this long, in seconds (0: never)"
    )
    dit.add_argument("--minutes", type=float, default=0.0, help="stop with a checkpoint after this long (0: no limit)")
    dit.add_argument(
        "--max-gap",
        type=float,
        default=0.0,
        help="never train on a crop holding a silent stretch longer than this many seconds before its item's end "
        "(0: any crop; e.g. 2 keeps a drum stem's long silent intro from teaching that a prompt may be silence)",
    )
    dit.add_argument(
        "--trim-lead",
        action="store_true",
        help="start every training item at its first sound: a stem's silent lead-in is cut, so the start of "
        "a render (seconds_start 0) is never learned as the seconds before the drums enter",
    )
    dit.add_argument(
        "--mask-padding",
        action="store_true",
        help="the silence padded after an item shorter than its crop adds nothing to the loss (the "
        "engine never keeps a frame past the end a render is told)",
    )
    dit.add_argument(
        "--train-latents",
        choices=("sample", "mean"),
        help="learn VAE posterior samples (as the paper) or the posterior mean (for a decoder "
        "trained with --decoder-latents mean); default: what the --init-from model, else the "
        "--ae one, was trained on (longplay-mini: mean), else sample",
    )
    dit.add_argument("--description", default="")
    dit.add_argument(
        "--beat-phase",
        action="store_true",
        help="give the DiT a tempo grid from each item's bpm (renders then lock to a requested BPM)",
    )
    dit.add_argument(
        "--key",
        action="store_true",
        help="give the DiT a token for the key a prompt names, as pitch classes (learned from the corpus prompts' keys)",
    )
    dit.add_argument(
        "--init-from",
        help="model folder or name to warm-start from, e.g. longplay-mini to fine-tune it; "
        "the architecture flags default to that model's (new modules, like --beat-phase's grid, start at zero)",
    )


ARCH_DEFAULTS = {
    "window": 190.0,
    "width": 256,
    "depth": 8,
    "heads": 4,
    "attn_window": 0,
    "global_layers": "",
    "patch": 1,
}


def latents_default(flag: str | None, *sources: str | None) -> str:
    """`--train-latents` / `--decoder-latents` when not given: what the first of `sources` (model or
    autoencoder folders or names) that records it was trained on (`engine.trained_latents`), else
    "sample" (the paper's). A DiT that learned posterior
    means (longplay-mini) renders latents its decoder knows as means, so fine-tuning either half
    keeps to them unless told otherwise."""
    if flag:
        return flag
    import engine

    for source in sources:
        if not source:
            continue
        try:
            learned = engine.trained_latents(engine.read_config(engine.resolve_model(source)))
        except (engine.EngineError, OSError, ValueError):
            continue  # the stage itself reports a source it cannot read
        if learned:
            return learned
    return "sample"


def dit_architecture(args: argparse.Namespace, init: Any | None) -> dict[str, Any]:
    """The DiT's architecture arguments: each flag given, else the --init-from model's value
    (`init`: its parsed `engine.ModelConfig`), else ARCH_DEFAULTS (so fine-tuning a model needs
    no flags that repeat its shape)."""
    arch = dict(ARCH_DEFAULTS)
    text: dict[str, Any] = {}
    beat, key = bool(args.beat_phase), bool(args.key)
    if init is not None:
        d = init.dit
        arch.update(
            window=init.window_seconds,
            width=d.embed_dim,
            depth=d.depth,
            heads=d.num_heads,
            attn_window=d.attn_window,
            global_layers=",".join(str(n) for n in d.global_layers),
            patch=d.patch_size,
        )
        prompt = init.conditioner("prompt")
        text = {
            f"text_{k}": prompt.config[k]
            for k in ("width", "depth", "max_length")
            if prompt is not None and k in prompt.config
        }
        beat = beat or d.beat_phase  # a grid, once trained, stays
        key = key or init.conditioner("key") is not None  # so does a key token
    arch.update({k: getattr(args, k) for k in ARCH_DEFAULTS if getattr(args, k) is not None})
    return {
        "window_seconds": arch["window"],
        "embed_dim": arch["width"],
        "depth": arch["depth"],
        "num_heads": arch["heads"],
        "attn_window": arch["attn_window"],
        "global_layers": tuple(int(x) for x in str(arch["global_layers"]).split(",") if x.strip()),
        "patch_size": arch["patch"],
        "beat_phase": beat,
        "key": key,
        **text,
    }


def run_train(args: argparse.Namespace) -> int:
    try:
        import engine
        import lab
    except ImportError as err:
        raise EngineUnavailable(err) from err
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.train_command == "ae":
            raw = engine.mini_autoencoder_config(
                channels=args.channels, latent_dim=args.latent_dim or 32, patch_size=args.patch_size
            )
            ae_cfg = lab.AETrainConfig(
                steps=args.steps,
                batch_size=args.batch,
                crop_samples=args.crop,
                lr=args.lr,
                lr_final=args.lr_final,
                seed=args.seed,
                decoder_only=args.decoder_only,
                mel_weight=args.mel_weight,
                kl_weight=args.kl_weight,
                frame_span_weight=args.frame_span_weight,
                wave_weight=args.wave_weight,
                decoder_latents=latents_default(args.decoder_latents, args.init_from),
                decoder_channels=args.decoder_channels,
                time_limit_s=args.minutes * 60,
                adv_weight=args.adv_weight,
                fm_weight=args.fm_weight,
                adv_start=args.adv_start,
                disc_channels=args.disc_channels,
                pitch_weight=args.pitch_weight,
                latent_dim=args.latent_dim if args.init_from else None,
            )
            out = lab.train_autoencoder(
                args.corpus,
                args.out,
                None if args.init_from else raw,
                ae_cfg,
                should_stop=stop.is_set,
                init_from=args.init_from,
            )
        elif args.train_command == "package":
            defaults = {
                k: v
                for k, v in (
                    ("steps", args.default_steps),
                    ("cfg", args.default_cfg),
                    ("key_cfg", args.default_key_cfg),
                    ("sampler", args.default_sampler),
                )
                if v is not None
            }
            out = lab.package_model(
                args.model, args.out, args.ae, half=not args.float32, description=args.description, defaults=defaults
            )
        elif args.train_command == "encode":
            index, _, count = args.shard.partition("/")
            if not (index.isdigit() and count.isdigit()):
                raise BridgeError(f"--shard must look like 0/2, got {args.shard!r}")
            kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] or None
            out = lab.encode_corpus(args.corpus, args.ae, args.out, shard=(int(index), int(count)), kinds=kinds)
        else:
            ae_folder = lab.autoencoder_config(args.ae)[1]  # a folder or a model name
            ae_raw = ae_folder["model"]
            init = None
            if args.init_from:
                raw = engine.read_config(engine.resolve_model(args.init_from))
                try:
                    init = engine.parse_model_config(raw)
                except engine.ConfigError as err:
                    raise BridgeError(f"--init-from {args.init_from}: not a diffusion model folder ({err})") from err
            arch = dit_architecture(args, init)
            config = engine.diffusion_config(ae_raw, **arch, pretransform_type=ae_folder["model_type"])
            rate: float = config["sample_rate"] / ae_raw["downsampling_ratio"]  # latent frames per second
            patch: int = arch["patch_size"]

            def frames(seconds: float) -> int:
                return -(-round(seconds * rate) // patch) * patch

            dit_cfg = lab.DiTTrainConfig(
                steps=args.steps,
                batch_size=args.batch,
                lr=args.lr,
                seed=args.seed,
                ema_decay=args.ema,
                lr_final=args.lr_final,
                crop_frames=frames(args.crop),
                long_frames=frames(args.long),
                max_gap_frames=round(args.max_gap * rate),
                trim_lead=args.trim_lead,
                mask_padding=args.mask_padding,
                time_limit_s=args.minutes * 60,
                train_latents=latents_default(args.train_latents, args.init_from, args.ae),
            )
            out = lab.train_dit(
                config,
                args.corpus,
                args.latents,
                args.ae,
                args.out,
                dit_cfg,
                should_stop=stop.is_set,
                description=args.description,
                init_from=args.init_from,
            )
    except (engine.EngineError, OSError, ValueError, ArithmeticError) as err:
        raise BridgeError(str(err)) from err
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    print(out)
    return 0
