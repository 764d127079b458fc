"""DiT training on pre-encoded latents (Stable Audio 2, sections 2.2-3): v-objective, AdamW, EMA,
CFG dropout, timing conditioning, and silence after the end so variable length works.

The text encoder (our byte-level one) and the timing conditioners train jointly with the DiT; the
autoencoder is frozen. Latents are encoded once (`encode_corpus`) and cropped per step.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from ..checkpoint import save_model
from ..model import ConditionedDiffusionModel, build_model
from .autoencoder import load_autoencoder
from .data import read_index
from .loop import Logger, load_state, make_ema, rng_state, save_state, seed_everything, set_rng_state


@dataclass(frozen=True)
class DiTTrainConfig:
    steps: int = 4000
    batch_size: int = 4
    lr: float = 3e-4
    weight_decay: float = 1e-3
    ema_decay: float = 0.999
    cfg_dropout: float = 0.1
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 250


@torch.no_grad()
def encode_corpus(corpus_dir: str | Path, ae_dir: str | Path, out_dir: str | Path,
                  quiet: bool = False) -> Path:
    """Encode every corpus item (both splits) to `<id>.npy` float16 `[2D, L]` (VAE mean and scale).

    The VAE is sampled per training step from the stored mean/scale, as the reference's
    pre-encoded training does; resumable (existing files are kept).
    """
    from ..audio_io import conform, load_audio
    from ..autoencoder import run_chunked

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ae, raw = load_autoencoder(ae_dir)
    cfg = ae.cfg
    hop = cfg.downsampling_ratio
    items = read_index(corpus_dir, None)
    for n, item in enumerate(items, 1):
        target = out / f"{item.id}.npy"
        if target.is_file():
            continue
        audio, sr = load_audio(item.path)
        audio = conform(audio, sr, raw["sample_rate"], cfg.io_channels)
        pad = (-audio.shape[1]) % hop
        x = torch.from_numpy(np.pad(audio, ((0, 0), (0, pad))))[None]  # [1, C, N]
        h = run_chunked(ae.encoder, x, 128, 32, hop, 1, cfg.encoder.latent_dim)[0]  # [2D, L]
        tmp = target.with_suffix(".tmp.npy")
        np.save(tmp, h.numpy().astype(np.float16))
        tmp.replace(target)
        if not quiet and (n % 20 == 0 or n == len(items)):
            print(f"[encode] {n}/{len(items)}", flush=True)
    silence = run_chunked(ae.encoder, torch.zeros(1, cfg.io_channels, hop * 64), 128, 32, hop, 1,
                          cfg.encoder.latent_dim)[0, :, 32]  # [2D]: a frame from the middle
    np.save(out / "_silence.npy", silence.numpy().astype(np.float32))
    return out


class LatentBank:
    """Per-item latents (mean, scale) in RAM, and training windows cropped from them."""

    def __init__(self, corpus_dir: str | Path, latent_dir: str | Path, latent_rate: float, split: str = "train"):
        self.items = read_index(corpus_dir, split)
        root = Path(latent_dir)
        self.latents = [np.load(root / f"{it.id}.npy") for it in self.items]
        self.silence = torch.from_numpy(np.load(root / "_silence.npy"))  # [2D]
        self.rate = latent_rate

    def batch(self, rng: random.Random, n: int, frames: int) -> tuple[Tensor, list[dict[str, Any]]]:
        """-> latents `[n, D, frames]` (sampled from the VAE posterior) and conditioning metadata."""
        xs, metas = [], []
        for _ in range(n):
            i = rng.randrange(len(self.items))
            lat = torch.from_numpy(self.latents[i].astype(np.float32))  # [2D, L]
            start = rng.randrange(lat.shape[1] - frames + 1) if lat.shape[1] > frames else 0
            crop = lat[:, start:start + frames]
            if crop.shape[1] < frames:  # silence after the end: the model learns to stop
                fill = self.silence[:, None].expand(-1, frames - crop.shape[1])
                crop = torch.cat((crop, fill), dim=1)
            mean, scale = crop.chunk(2, dim=0)
            std = torch.nn.functional.softplus(scale) + 1e-4
            g = torch.Generator().manual_seed(rng.randrange(2**31))
            xs.append(mean + std * torch.randn(mean.shape, generator=g))
            item = self.items[i]
            metas.append({"prompt": rng.choice(item.prompts) if item.prompts else "",
                          "seconds_start": start / self.rate, "seconds_total": item.seconds})
        return torch.stack(xs), metas


def v_loss(model: ConditionedDiffusionModel, x0: Tensor, metas: list[dict[str, Any]], rng: random.Random,
           cfg_dropout: float) -> Tensor:
    """v-objective (Salimans & Ho 2022): x_t = x0 cos + n sin, target v = n cos - x0 sin, t ~ U(0,1)."""
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
    out = model.model(x_t, t, xattn, glob)
    return torch.nn.functional.mse_loss(out, target)


def train_dit(config: Mapping[str, Any], corpus_dir: str | Path, latent_dir: str | Path, ae_dir: str | Path,
              out_dir: str | Path, cfg: DiTTrainConfig = DiTTrainConfig(), quiet: bool = False,
              should_stop: Callable[[], bool] | None = None, description: str = "") -> Path:
    """Train (or resume) the DiT + text encoder of `config` (a diffusion_cond model_config dict) on
    the encoded corpus, with the autoencoder of `ae_dir` frozen as its pretransform. Writes the
    EMA weights as a complete model folder to `out_dir/model/`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    model = build_model(config)
    ae, _ = load_autoencoder(ae_dir)
    model.pretransform.model.load_state_dict(ae.state_dict())
    model.pretransform.requires_grad_(False).eval()
    params = [p for n, p in model.named_parameters() if not n.startswith("pretransform.")]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))  # short warmup
    ema = make_ema(model, cfg.ema_decay)
    rng = random.Random(cfg.seed)
    state_path = out / "train_state.pt"
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
    bank = LatentBank(corpus_dir, latent_dir, mc.latent_rate)
    log = Logger(out, cfg.steps, "dit", quiet)
    frames = mc.window_frames

    def checkpoint() -> None:
        save_state(state_path, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                                "sched": sched.state_dict(), "step": step, "rng": rng_state(rng)})
        final = ema.module
        save_model(final, out / "model", {"description": description, "train": asdict(cfg), "step": step})

    model.model.train()
    model.conditioner.train()
    log.begin(step)
    while step < cfg.steps:
        if should_stop is not None and should_stop():
            break
        x0, metas = bank.batch(rng, cfg.batch_size, frames)
        loss = v_loss(model, x0, metas, rng, cfg.cfg_dropout)
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
    (out / "model" / "train_summary.json").write_text(json.dumps({"steps": step, **asdict(cfg)}, indent=2))
    return out / "model"
