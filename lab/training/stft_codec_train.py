"""Train the STFT codec (issue 19): `python -m lab.training.stft_codec_train OUT --corpus data/corpus`.

Resumes from OUT/checkpoint.pt when it exists. Checkpoints hold float16 weights, a bfloat16 Adam
state, the config, step and RNG states, so a fresh machine continues the same schedule."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.stft_codec_config import PRETRANSFORM_TYPE as STFT_CODEC
from lab.training.discriminator import DISC_FFT_SIZES, AdversarialLosses, MultiResolutionDiscriminator
from lab.training.loop import (
    Deadline,
    Logger,
    check_finite,
    linear_decay,
    load_state,
    rng_state,
    save_state,
    set_rng_state,
)
from lab.training.stft_codec import STFTCodec, STFTCodecConfig, analysis_loss, grow_codec

SR = 44100
FORMAT_VERSION = 1


def synthetic_sines(rng: random.Random, channels: int, length: int) -> np.ndarray:
    """1-4 steady or slowly gliding sines, 40-4,000 Hz (log-uniform), random amplitude, phase,
    and short fades. Continuous frequencies never coincide with the evaluation's exact tones."""
    t = np.arange(length) / SR
    out = np.zeros(length)
    for _ in range(rng.randint(1, 4)):
        f0 = math.exp(rng.uniform(math.log(40), math.log(4000)))
        glide = rng.choice([0.0, 0.0, rng.uniform(-0.3, 0.3)])  # octaves per second
        freq = f0 * 2.0 ** (glide * t)
        phase = 2 * np.pi * np.cumsum(freq) / SR + rng.uniform(0, 2 * np.pi)
        out += rng.uniform(0.03, 0.3) * np.sin(phase)
    fade = int(rng.uniform(0.005, 0.05) * SR)
    env = np.ones(length)
    env[:fade] = np.linspace(0, 1, fade)
    env[-fade:] = np.linspace(1, 0, fade)
    x = (out * env).astype(np.float32)
    pan = rng.uniform(0.7, 1.0)
    return np.stack([x * pan, x * (2 - pan)][:channels])


def synthetic_notes(rng: random.Random, channels: int, length: int) -> np.ndarray:
    """1-3 harmonic notes, fundamentals 40-1,800 Hz (log-uniform), partials up to 10 kHz with a
    random spectral slope (odd partials only a quarter of the time, a square/clarinet colour),
    each note held or decaying, entering anywhere in the first half of the crop: what a held
    instrument note asks of the codec (every partial within a hertz or two) that lone sines do not.
    Float64 time, as in `synthetic_sines`."""
    t = np.arange(length) / SR
    out = np.zeros(length)
    for _ in range(rng.randint(1, 3)):
        f0 = math.exp(rng.uniform(math.log(40), math.log(1800)))
        slope = rng.uniform(0.5, 2.0)
        odd = rng.random() < 0.25
        phase0 = 2 * np.pi * f0 * t
        note = np.zeros(length)
        for k in range(1, min(40, int(10000 / f0)) + 1):
            if odd and k % 2 == 0:
                continue
            note += rng.uniform(0.3, 1.0) * k**-slope * np.sin(k * phase0 + rng.uniform(0, 2 * np.pi))
        onset = int(rng.uniform(0.0, 0.5) * length) if rng.random() < 0.5 else 0
        attack = max(1, int(rng.uniform(0.002, 0.03) * SR))
        env = np.clip((np.arange(length) - onset) / attack, 0.0, 1.0)
        if rng.random() < 0.5:  # a struck note: exponential decay from its onset
            env *= np.exp(-np.maximum(np.arange(length) - onset, 0) / (rng.uniform(0.2, 3.0) * SR))
        note *= env
        out += rng.uniform(0.05, 0.3) * note / max(float(np.max(np.abs(note))), 1e-9)
    fade = int(rng.uniform(0.005, 0.05) * SR)
    out[-fade:] *= np.linspace(1, 0, fade)
    x = out.astype(np.float32)
    pan = rng.uniform(0.7, 1.0)
    return np.stack([x * pan, x * (2 - pan)][:channels])


def _small(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state with its moment tensors in bfloat16 (a quarter of the float32 size)."""
    opt_state = opt.state_dict()
    # state_dict() shares the live per-parameter dicts: build new ones, never write into them
    opt_state["state"] = {
        i: {
            k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() and v.numel() > 1 else v
            for k, v in s.items()
        }
        for i, s in opt_state["state"].items()
    }
    return opt_state


def _load_small(opt: torch.optim.Optimizer, opt_state: dict[str, Any]) -> None:
    opt.load_state_dict(opt_state)
    for s in opt.state.values():
        for k, v in s.items():
            if torch.is_tensor(v) and v.is_floating_point():
                s[k] = v.float()


def checkpoint(
    model: STFTCodec,
    opt: torch.optim.Optimizer,
    step: int,
    py_rng: random.Random,
    disc: tuple[torch.nn.Module, torch.optim.Optimizer] | None = None,
    frozen_encoder: bool = False,
) -> dict[str, Any]:
    state = {
        "format_version": FORMAT_VERSION,
        "frozen_encoder": frozen_encoder,
        "config": dataclasses.asdict(model.config),
        "model": {k: v.half() for k, v in model.state_dict().items()},
        "optimizer": _small(opt),
        "step": step,
        "rng": rng_state(py_rng),
    }
    if disc is not None:  # the adversary (~0.1 M parameters) resumes with its own optimizer
        state["disc"] = {k: v.half() for k, v in disc[0].state_dict().items()}
        state["disc_opt"] = _small(disc[1])
    return state


def read_codec(path: Path, **changes: Any) -> tuple[STFTCodec, dict[str, Any]]:
    """A checkpoint's codec (its config with `changes`, e.g. phase_lock=True) and the checkpoint."""
    state = load_state(path)
    if state is None or state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not an STFT-codec checkpoint of format {FORMAT_VERSION}")
    model = STFTCodec(dataclasses.replace(STFTCodecConfig(**state["config"]), **changes))
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    return model.eval(), state


def load_codec(path: Path) -> STFTCodec:
    return read_codec(path)[0]


def export(checkpoint_path: Path, out: Path) -> None:
    """The float16 weights, config, step and RNG state without the optimizer (~14 MB): what a
    fresh machine needs to resume (copied to OUT/checkpoint.pt) or to measure the codec."""
    state = load_state(checkpoint_path)
    if state is None:
        raise SystemExit(f"{checkpoint_path}: no checkpoint")
    for key in ("optimizer", "disc_opt"):
        state.pop(key, None)
    save_state(out, state)


def export_folder(checkpoint_path: Path, out: Path) -> Path:
    """The codec of a checkpoint as an autoencoder folder (`model_type` "stft_codec"), decoding
    phase-locked (session 14: tone fidelity 0.70 locked, 0.50 not), weights float16."""
    from lab.training.autoencoder import ae_folder_config, save_autoencoder

    try:
        model, state = read_codec(checkpoint_path, phase_lock=True)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    config = model.config
    meta = {"step": state["step"], "from_checkpoint": str(checkpoint_path)}
    block = {k: v for k, v in config.to_json().items() if k != "scale"}  # the DiT's, set when it trains
    raw = ae_folder_config(block, SR, 32 * config.hop, meta, model_type=STFT_CODEC)
    return save_autoencoder(model.half(), out, raw)


def train(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    py_rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    config = STFTCodecConfig(
        latent_dim=args.latent_dim,
        dim=args.dim,
        mag_gain=args.mag_gain,
        if_bins=args.if_bins,
        head_hidden=args.head_hidden,
    )
    model = STFTCodec(config)

    def trained() -> list[torch.nn.Parameter]:
        # Stage 2 trains the decoder alone: the latents (and a DiT trained on them) stay valid.
        return [p for n, p in model.named_parameters() if not (args.freeze_encoder and n.startswith("enc_"))]

    opt = torch.optim.AdamW(trained(), lr=args.lr, betas=(0.8, 0.99), weight_decay=0.0)
    step = 0
    ckpt = out / "checkpoint.pt"
    state = load_state(ckpt)
    if state is not None:
        config = STFTCodecConfig(**state["config"])
        # new frequency-feature inputs or a head's hidden layer, each starting as a no-op
        grow = args.if_bins > config.if_bins or args.head_hidden > config.head_hidden
        if grow:
            config = dataclasses.replace(
                config, if_bins=max(args.if_bins, config.if_bins), head_hidden=max(args.head_hidden, config.head_hidden)
            )
        model = STFTCodec(config)
        grow_codec(model, {k: v.float() for k, v in state["model"].items()})
        opt = torch.optim.AdamW(trained(), lr=args.lr, betas=(0.8, 0.99), weight_decay=0.0)
        # a weights-only export (`--export`), a grown model or one whose encoder was just frozen
        # resumes with a fresh optimizer
        if "optimizer" in state and not grow and state.get("frozen_encoder", False) == args.freeze_encoder:
            _load_small(opt, state["optimizer"])
        step = state["step"]
        set_rng_state(py_rng, state["rng"])
    config = model.config
    (out / "config.json").write_text(json.dumps({**dataclasses.asdict(model.config), **vars(args)}, indent=2))
    bank = None
    if args.corpus and args.synthetic < 1.0:
        from lab.training.data import AudioBank, read_index

        items = read_index(args.corpus, "train")
        random.Random(args.seed).shuffle(items)
        bank = AudioBank(items[: args.max_items], SR, config.channels)
    from lab.training.autoencoder import FrameSpanSTFTLoss, StereoSTFTLoss, same_crop

    # Left/right only: the analysis targets already fix each channel's spectrum, and mid/side's
    # spectral convergence on a near-mono crop (side ~0) grew to 100-250 and, through gradient
    # clipping, drowned every other term (smoke run, step 10-50).
    stft_loss = StereoSTFTLoss(SR, mid_side=args.mid_side)
    span_loss = FrameSpanSTFTLoss(config.hop) if args.frame_span else None
    length = args.crop_hops * config.hop
    disc = None
    if args.adv > 0 or args.fm > 0:  # stage 2: the adversary of the autoencoder's recipe
        if min(args.disc_crop or length, length) <= max(DISC_FFT_SIZES) // 2:
            raise SystemExit(f"the discriminator's longest window ({max(DISC_FFT_SIZES)}) needs longer crops")
        critic = MultiResolutionDiscriminator(channels=args.disc_channels, audio_channels=config.channels)
        critic_opt = torch.optim.AdamW(critic.parameters(), lr=args.disc_lr, betas=(0.8, 0.99), weight_decay=1e-3)
        if state is not None and "disc" in state:
            critic.load_state_dict({k: v.float() for k, v in state["disc"].items()})
            if "disc_opt" in state:
                _load_small(critic_opt, state["disc_opt"])
        disc = (critic, critic_opt)
    logger = Logger(out, args.steps, "stftcodec")
    logger.begin(step)
    deadline = Deadline(args.time_limit)
    model.train()
    if args.freeze_encoder:
        model.requires_grad_(False)
        for p in trained():
            p.requires_grad_(True)
    if_lags = tuple(int(m) for m in args.if_lags.split(","))
    stop = min(args.steps, args.stop_at or args.steps)
    while step < stop and not deadline.passed():
        batch = [
            (synthetic_notes if args.notes > 0 and py_rng.random() < args.notes else synthetic_sines)(
                py_rng, config.channels, length
            )
            if bank is None or py_rng.random() < args.synthetic
            else bank.crop(py_rng, length, min_rms_db=-45.0)
            for _ in range(args.batch)
        ]
        x = torch.from_numpy(np.stack(batch))  # [B, C, N]
        for g in opt.param_groups:
            g["lr"] = args.lr * linear_decay(step, args.steps, 0.1)
        mean, log_scale = model.encode_dist(x)
        log_mag, dev, residual = model.heads(mean)
        rec = l_mag = l_if = adv = fm = d_loss = torch.zeros(())
        if args.rec > 0 or disc is not None:  # neither: the heads' direct targets only (~10x the steps a second)
            y = model.render((log_mag, dev, residual))
            rec = args.rec * stft_loss(y, x) if args.rec > 0 else rec
            if span_loss is not None:
                rec = rec + span_loss(y, x)
            if disc is not None:
                dx, dy = same_crop(x, y, args.disc_crop, py_rng)  # its cost grows with the length it hears
                judge = AdversarialLosses(disc[0], dx)
                if step >= args.adv_start:  # the decoder hears the adversary once it has learnt something
                    adv, fm = judge.generator(dy)
                    rec = rec + args.adv * adv + args.fm * fm
                d_loss = judge.discriminator(dy)  # on the detached output
        if args.analysis > 0:
            l_mag, l_if = analysis_loss(
                log_mag,
                dev,
                x,
                config.frame_hop,
                config.dec_fft,
                compressed=args.compressed,
                convergence=args.sc,
                if_lags=if_lags,
            )
            rec = rec + args.analysis * (l_mag + l_if)
        kl = (mean.pow(2) + torch.exp(2 * log_scale) - 2 * log_scale - 1).mean() / 2
        loss = rec + args.kl * kl
        check_finite(loss, step, out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained(), 1.0)
        opt.step()
        if disc is not None:
            disc[1].zero_grad(set_to_none=True)  # drops what the generator's terms left on it
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(disc[0].parameters(), 1.0)
            disc[1].step()
        step += 1
        if step % args.log_every == 0:
            extra = {"adv": adv.item(), "fm": fm.item(), "disc": d_loss.item()} if disc is not None else {}
            logger.log(
                step,
                loss=loss.item(),
                mag=l_mag.item(),
                inst_freq=l_if.item(),
                kl=kl.item(),
                z_std=mean.std().item(),
                **extra,
            )
        if step % args.save_every == 0:
            save_state(ckpt, checkpoint(model, opt, step, py_rng, disc, args.freeze_encoder))
            if step % args.keep_every == 0:
                save_state(out / f"step{step}.pt", checkpoint(model, opt, step, py_rng, disc, args.freeze_encoder))
    save_state(ckpt, checkpoint(model, opt, step, py_rng, disc, args.freeze_encoder))
    return step


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out")
    p.add_argument("--corpus", default="")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop-hops", type=int, default=32, help="crop length in latent hops (32: 1.49 s)")
    p.add_argument("--synthetic", type=float, default=0.25, help="share of synthetic sine items")
    p.add_argument("--notes", type=float, default=0.0, help="share of the synthetic items that are harmonic notes")
    p.add_argument("--max-items", type=int, default=120, help="corpus items held in RAM")
    p.add_argument("--latent-dim", type=int, default=64)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--mag-gain", type=float, default=STFTCodecConfig.mag_gain, help="log-magnitude head gain")
    p.add_argument("--kl", type=float, default=1e-3)
    p.add_argument(
        "--if-bins",
        type=int,
        default=0,
        help="low encoder bins with a phase-derived frequency feature (grows a resumed model)",
    )
    p.add_argument("--frame-span", action="store_true")
    p.add_argument("--compressed", type=float, default=1.0, help="weight of |X|^0.3 beside log |X| in the targets")
    p.add_argument("--sc", type=float, default=0.0, help="weight of spectral convergence in the direct targets")
    p.add_argument(
        "--if-lags", default="1", help="hops the inst.-frequency target's phase advance spans, comma-separated"
    )
    p.add_argument("--rec", type=float, default=1.0, help="MR-STFT weight on the synthesised audio; 0: off")
    p.add_argument("--mid-side", action="store_true", help="MR-STFT on mid/side too (the autoencoder's loss)")
    p.add_argument("--analysis", type=float, default=1.0, help="weight of the heads' direct STFT targets; 0: off")
    p.add_argument(
        "--head-hidden", type=int, default=0, help="hidden width beside the linear head (grows a resumed model)"
    )
    p.add_argument("--adv", type=float, default=0.0, help="stage 2: the decoder's hinge adversarial weight")
    p.add_argument("--fm", type=float, default=0.0, help="stage 2: feature-matching weight (Oobleck: 5 with adv 0.1)")
    p.add_argument("--adv-start", type=int, default=0, help="step from which the decoder hears the adversary")
    p.add_argument(
        "--freeze-encoder", action="store_true", help="stage 2: train the decoder alone (the latents stay as they are)"
    )
    p.add_argument("--disc-channels", type=int, default=16)
    p.add_argument("--disc-lr", type=float, default=1e-4)
    p.add_argument("--disc-crop", type=int, default=0, help="samples of each crop the adversary hears (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--keep-every", type=int, default=1000)
    p.add_argument("--time-limit", type=float, default=0.0, help="seconds; 0: none")
    p.add_argument("--stop-at", type=int, default=0, help="stop at this step; the lr schedule still spans --steps")
    p.add_argument("--export", metavar="FILE", help="write OUT/checkpoint.pt's weights alone to FILE and stop")
    p.add_argument(
        "--export-folder",
        metavar="DIR",
        help="write OUT/checkpoint.pt as an autoencoder folder (float16, phase-locked decode) for "
        "`longplay train encode/dit/package --ae DIR`, and stop",
    )
    args = p.parse_args(argv)
    if args.export or args.export_folder:
        if args.export:
            export(Path(args.out) / "checkpoint.pt", Path(args.export))
        if args.export_folder:
            export_folder(Path(args.out) / "checkpoint.pt", Path(args.export_folder))
        return
    train(args)


if __name__ == "__main__":
    main()
