"""DiT training on pre-encoded latents (Stable Audio 2, sections 2.2-3): v-objective, AdamW, EMA,
CFG dropout, timing conditioning, and silence after the end so variable length works.

The text encoder (our byte-level one) and the timing conditioners train jointly with the DiT; the
autoencoder is frozen. Latents are encoded once (`encode_corpus`) and cropped per step.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.checkpoint import save_model
from engine.model import ConditionedDiffusionModel, build_model

from .autoencoder import load_autoencoder
from .bank import LatentBank
from .data import read_index
from .errors import TrainingError
from .loop import (
    Deadline,
    Logger,
    check_finite,
    linear_decay,
    load_state,
    make_ema,
    rng_state,
    save_state,
    seed_everything,
    set_rng_state,
)
from .widen import grow_dit_io


@dataclass(frozen=True)
class DiTTrainConfig:
    steps: int = 4000
    batch_size: int = 4
    lr: float = 3e-4
    lr_final: float = 1.0  # linear decay to lr * lr_final at `steps` after a 100-step warmup (1: constant)
    weight_decay: float = 1e-3
    ema_decay: float = 0.999
    cfg_dropout: float = 0.1
    # Share of items trained without their tempo grid (beat_phase models), so prompts without a
    # tempo still render.
    tempo_dropout: float = 0.2
    # Share of items whose prompt is drawn afresh from their metadata each step (corpora with
    # Longplay metadata) instead of one of the few stored with the item: more phrasings per item.
    fresh_prompts: float = 0.5
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 250
    # Training crops: `batch_size` x `crop_frames` latent frames per step (0: the model's whole
    # window), and every `long_every`-th step one crop of `long_frames` (0: never), so the global
    # layers see minutes of context at the same cost per step.
    crop_frames: int = 0
    long_frames: int = 0
    long_every: int = 4
    # Stop (with a checkpoint) after this many seconds of training in this run; 0 = no limit.
    time_limit_s: float = 0.0
    # The latents the DiT learns: "sample" draws from the stored VAE posterior each step (as the
    # reference's pre-encoded training); "mean" takes its mean, the latents a decoder trained with
    # `AETrainConfig(decoder_latents="mean")` expects.
    train_latents: str = "sample"
    # Crops never hold a silent stretch longer than this many latent frames before their item's end
    # (0: any crop), so the DiT does not learn silence as a way to play a prompt (`gaps.py`).
    max_gap_frames: int = 0
    # Items begin at their first sound: a stem's silent lead-in is cut (`gaps.lead_in`).
    trim_lead: bool = False
    # The silence padded after an item's end adds nothing to the loss (renders never keep a frame
    # past the end they are told, so nothing needs to learn it).
    mask_padding: bool = False


@torch.no_grad()
def encode_corpus(
    corpus_dir: str | Path,
    ae_dir: str | Path,
    out_dir: str | Path,
    quiet: bool = False,
    shard: tuple[int, int] = (0, 1),
    kinds: Sequence[str] | None = None,
) -> Path:
    """Encode every corpus item (both splits) to `<id>.npy` float16 `[2D, L]` (VAE mean and scale).

    The VAE is sampled per training step from the stored mean/scale, as the reference's
    pre-encoded training does; resumable (existing files are kept). `shard=(i, n)` encodes every
    n-th item from the i-th, so n processes can share the work (one CPU thread each); `kinds`
    (e.g. `("mix", "stem:drums")`) encodes only those kinds of items.
    """
    from engine.audio_io import conform, load_audio
    from engine.autoencoder import run_chunked

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ae, raw = load_autoencoder(ae_dir)
    cfg = ae.cfg
    hop = cfg.downsampling_ratio
    chunk = ae.chunk_frames
    index, count = shard
    if not 0 <= index < count:
        raise TrainingError(f"shard {index} of {count} does not exist")
    items = read_index(corpus_dir, None)
    for n, item in enumerate(items, 1):
        target = out / f"{item.id}.npy"
        if (n - 1) % count != index or target.is_file() or (kinds is not None and item.kind not in kinds):
            continue
        audio, sr = load_audio(item.path)
        audio = conform(audio, sr, raw["sample_rate"], cfg.io_channels)
        pad = (-audio.shape[1]) % hop
        x = torch.from_numpy(np.pad(audio, ((0, 0), (0, pad))))[None]  # [1, C, N]
        h = run_chunked(ae.encode_pre, x, chunk, 32, hop, 1, ae.pre_channels)[0]  # [2D, L]
        tmp = target.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, h.numpy().astype(np.float16))
        tmp.replace(target)
        if not quiet and (n % 20 == 0 or n == len(items)):
            print(f"[encode] {n}/{len(items)}", flush=True)
    silence = run_chunked(ae.encode_pre, torch.zeros(1, cfg.io_channels, hop * 64), 128, 32, hop, 1, ae.pre_channels)[
        0, :, 32
    ]  # [2D]: a frame from the middle
    np.save(out / "_silence.npy", silence.numpy().astype(np.float32))
    return out


def v_loss(
    model: ConditionedDiffusionModel,
    x0: Tensor,
    metas: list[dict[str, Any]],
    rng: random.Random,
    cfg_dropout: float,
    tempo_dropout: float = 0.0,
    mask_padding: bool = False,
) -> Tensor:
    """v-objective (Salimans & Ho 2022): x_t = x0 cos + n sin, target v = n cos - x0 sin, t ~ U(0,1).
    With `mask_padding` the frames after an item's end (`frames_before_end` in its metadata) add
    nothing to the loss: the network still sees them, and learns nothing about the padding."""
    b = x0.shape[0]
    g = torch.Generator().manual_seed(rng.randrange(2**31))
    t = torch.rand(b, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    alpha, sigma = torch.cos(t * math.pi / 2)[:, None, None], torch.sin(t * math.pi / 2)[:, None, None]
    x_t = x0 * alpha + noise * sigma
    target = noise * alpha - x0 * sigma
    cond = model.conditioner(metas, x0.device)
    xattn, _, glob = model.conditioning_inputs(cond)
    if xattn is not None and cfg_dropout > 0:
        # CFG dropout as the reference: all cross-attention tokens of a dropped item become zero.
        keep = torch.tensor([rng.random() >= cfg_dropout for _ in range(b)], dtype=xattn.dtype)
        xattn = xattn * keep[:, None, None]
    tempo = None
    if model.config.dit.beat_phase:
        tempo = model.tempo_inputs([{**m, "bpm": None} if rng.random() < tempo_dropout else m for m in metas])
    out = model.model(x_t, t, xattn, glob, tempo)
    if not mask_padding:
        return torch.nn.functional.mse_loss(out, target)
    frames = torch.arange(x0.shape[-1])
    ends = torch.tensor([m.get("frames_before_end", x0.shape[-1]) for m in metas])
    mask = (frames[None, :] < ends[:, None]).to(out.dtype)[:, None, :]  # [B, 1, L]
    return ((out - target) ** 2 * mask).sum() / (mask.sum() * out.shape[1]).clamp(min=1)


def train_dit(
    config: Mapping[str, Any],
    corpus_dir: str | Path,
    latent_dir: str | Path,
    ae_dir: str | Path,
    out_dir: str | Path,
    cfg: DiTTrainConfig = DiTTrainConfig(),
    quiet: bool = False,
    should_stop: Callable[[], bool] | None = None,
    description: str = "",
    init_from: str | Path | None = None,
) -> Path:
    """Train (or resume) the DiT + text encoder of `config` (a diffusion_cond model_config dict) on
    the encoded corpus, with the autoencoder of `ae_dir` frozen as its pretransform. Writes the
    EMA weights as a complete model folder to `out_dir/model/`.

    `init_from` (a model folder) warm-starts a new run from trained weights of the same
    architecture; modules the new config adds (`GROWN_MODULES`, zero-initialised so the start
    is the old model) begin from scratch, latent channels an autoencoder grew start at zero
    (`grow_dit_io`), and the old latent scale is kept. A run that has a
    checkpoint of its own resumes from that instead."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    config = copy.deepcopy(dict(config))
    ae_block = config["model"]["pretransform"]["config"]
    rate = config["sample_rate"] / ae_block["downsampling_ratio"]
    if cfg.max_gap_frames < 0:
        raise TrainingError(f"max_gap_frames must be 0 (any crop) or more, not {cfg.max_gap_frames}")
    bank = LatentBank(corpus_dir, latent_dir, rate, max_gap=cfg.max_gap_frames, trim_lead=cfg.trim_lead)
    if cfg.train_latents not in ("sample", "mean"):
        raise TrainingError(f"train_latents must be 'sample' or 'mean', not {cfg.train_latents!r}")
    sample = cfg.train_latents == "sample"
    state_path = out / "train_state.pt"
    init = None
    if init_from is not None and not state_path.is_file():
        from engine.checkpoint import load_model

        init = load_model(init_from)
        init_pre = init.config.raw["model"]["pretransform"]
        # The DiT learned latents divided by this scale: keep it, whatever the bank holds now --
        # unless the latents are another autoencoder's altogether (an Oobleck DiT moving to the codec).
        if init_pre.get("type") == config["model"]["pretransform"].get("type"):
            ae_block["scale"] = init_pre["config"].get("scale", 1.0)
    if "scale" not in ae_block:  # unit-variance latents for the DiT, recorded in the model config
        ae_block["scale"] = round(bank.latent_std(), 6)
    bank.scale = float(ae_block["scale"])
    model = build_model(config)
    if init is not None:
        _warm_start(model, init.state_dict(), str(init_from))
        del init
    ae, _ = load_autoencoder(ae_dir)
    model.pretransform.model.load_state_dict(ae.state_dict())
    model.pretransform.requires_grad_(False).eval()
    params = [p for n, p in model.named_parameters() if not n.startswith("pretransform.")]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)

    def lr_factor(s: int) -> float:  # short warmup, then linear decay
        return min(1.0, (s + 1) / 100) * linear_decay(s, cfg.steps, cfg.lr_final)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    ema = make_ema(model, cfg.ema_decay)
    rng = random.Random(cfg.seed)
    step = 0
    state = load_state(state_path)
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = state["step"]
        set_rng_state(rng, state["rng"])
    mc = model.config
    log = Logger(out, cfg.steps, "dit", quiet)
    frames = cfg.crop_frames or mc.window_frames
    unit = mc.dit.patch_size
    if frames % unit or cfg.long_frames % unit:
        raise TrainingError(
            f"crop_frames {frames} / long_frames {cfg.long_frames} must be multiples of the DiT's patch_size {unit}"
        )
    deadline = Deadline(cfg.time_limit_s)

    def checkpoint() -> None:
        save_state(
            state_path,
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "step": step,
                "rng": rng_state(rng),
            },
        )
        final = ema.module
        save_model(final, out / "model", {"description": description, "train": asdict(cfg), "step": step})

    model.model.train()
    model.conditioner.train()
    log.begin(step)
    while step < cfg.steps:
        if should_stop is not None and should_stop():
            break
        if deadline.passed():
            break
        if cfg.long_frames and step % cfg.long_every == cfg.long_every - 1:
            x0, metas = bank.batch(rng, 1, cfg.long_frames, cfg.fresh_prompts, sample)
        else:
            x0, metas = bank.batch(rng, cfg.batch_size, frames, cfg.fresh_prompts, sample)
        loss = v_loss(model, x0, metas, rng, cfg.cfg_dropout, cfg.tempo_dropout, cfg.mask_padding)
        check_finite(loss, step, out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema.update_parameters(model)
        step += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            log.log(step, loss=loss.item(), lr=sched.get_last_lr()[0])
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint()
    checkpoint()
    (out / "model" / "train_summary.json").write_text(json.dumps({**asdict(cfg), "steps_done": step}, indent=2))
    return out / "model"


# Modules a config option adds to a trained architecture, zero-initialised (a warm start may lack
# them): the tempo grid's projection, the key token's, and the key token's path into every DiT token.
GROWN_MODULES = ("model.model.to_beat_embed.", "conditioner.conditioners.key.", "model.model.to_last_token_add.")


def _warm_start(model: torch.nn.Module, weights: Mapping[str, Tensor], source: str) -> None:
    # The autoencoder comes from `ae_dir` after this (it may be another, e.g. grown), so only the
    # DiT and its conditioners start from `weights`.
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("pretransform.")}
    weights = {k: v for k, v in weights.items() if not k.startswith("pretransform.")}
    # A DiT for wider latents (an autoencoder grown by `train ae --latent-dim`) starts from a
    # narrower one: its channel-facing weights are embedded, new channels at zero.
    weights = grow_dit_io(weights, own, model.config.dit.patch_size)
    extra = sorted(set(weights) - set(own))
    missing = sorted(k for k in set(own) - set(weights) if not k.startswith(GROWN_MODULES))
    misfit = sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape)
    if extra or missing or misfit:
        what = (
            f"unexpected {extra[0]}"
            if extra
            else f"missing {missing[0]}"
            if missing
            else f"{misfit[0]} is {tuple(weights[misfit[0]].shape)}, the new model has {tuple(own[misfit[0]].shape)}"
        )
        raise TrainingError(f"{source} does not fit the model being trained ({what}): give the same architecture")
    model.load_state_dict(weights, strict=False)
