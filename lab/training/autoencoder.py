"""Autoencoder training (Stable Audio 2, section 2.1): multi-resolution STFT on mid/side plus L/R at
half weight, a KL term on the VAE bottleneck, and optionally (`adv_weight`, `fm_weight`) the
adversarial and feature-matching terms of a multi-resolution STFT discriminator
(`lab/training/discriminator.py`): +34 % per step on this CPU at batch 4 x 1.5 s, measured.

Output folder: `model_config.json` (`"model_type": "autoencoder"`, stable-audio-tools format) +
`model.safetensors` with keys `encoder.*` / `decoder.*`, loadable by `load_autoencoder`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from engine.autoencoder import AudioAutoencoder
from engine.checkpoint import load_state_dict_strict
from engine.config import parse_autoencoder
from engine.errors import ModelLoadError
from engine.stft_codec import STFTCodec
from engine.stft_codec_config import PRETRANSFORM_TYPE as STFT_CODEC, parse_stft_codec

from .data import AudioBank, read_index
from .discriminator import DISC_FFT_SIZES, AdversarialLosses, MultiResolutionDiscriminator
from .errors import TrainingError
from .loop import (
    Deadline,
    Logger,
    check_finite,
    linear_decay,
    load_state,
    rng_state,
    save_state,
    seed_everything,
    set_rng_state,
)
from .pitch import PitchReadout
from .widen import WIDEN_NOISE, widen_decoder, widen_latents

STFT_SIZES = [2048, 1024, 512, 256, 128, 64, 32]  # stable-audio-tools' Oobleck recipe
# Windows of the frame-span term, in latent hops (see `FrameSpanSTFTLoss`).
FRAME_SPAN_HOPS = (2, 4, 8)


@dataclass(frozen=True)
class AETrainConfig:
    steps: int = 2000
    batch_size: int = 4
    crop_samples: int = 65536
    lr: float = 1.5e-4
    # Linear decay of the learning rate to `lr * lr_final` at `steps` (1.0: constant). Set from the
    # step count, so a resumed run (even one resumed with another `lr`) follows the same schedule.
    lr_final: float = 1.0
    # Crops quieter than this (dBFS RMS) are redrawn; None keeps every crop.
    min_rms_db: float | None = -50.0
    kl_weight: float = 1e-4
    # Weight of a multi-resolution mel-spectrogram term (log-magnitude + spectral convergence on
    # 128 mel bands at FFT 2048/1024/512) added to the paper's STFT loss; 0 leaves it out. Linear-
    # frequency STFT bins above ~5 kHz outnumber everything a listener hears as pitch and timbre;
    # the mel term weighs the low bands the way the mel distance of the evaluation (and the ear) does,
    # as HiFi-GAN and DAC train their decoders.
    mel_weight: float = 0.0
    # Weight of the frame-span term (`FrameSpanSTFTLoss`: STFT windows of 2, 4 and 8 latent hops);
    # 0 leaves it out. The paper's windows stop at 2,048 samples, one latent hop, and are blind to
    # what repeats from hop to hop: a decoder trained on them alone rendered a steady 440 Hz tone as
    # a buzz of the latent rate's harmonics (21.5 Hz apart, no energy at 440 Hz).
    frame_span_weight: float = 0.0
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 200
    sample_rate: int = 44100
    # Train the decoder only (the encoder frozen), e.g. after the latents were encoded for the DiT:
    # the latent space stays fixed while the decoder keeps improving. Resumes a full run's state.
    decoder_only: bool = False
    # What the decoder is trained on: "sample" (the VAE posterior sampled, as the paper) or "mean"
    # (the posterior mean, what `encode(sample=False)` gives). With the encoder training too, "mean"
    # makes a deterministic autoencoder whose KL term only keeps the mean's scale in check: the
    # posterior noise (std ~0.5 against a spread of ~1.2 on longplay-mini) drowns what varies
    # little from frame to frame, such as the phase of a held note.
    decoder_latents: str = "sample"
    # Weight of an L1 distance between waveforms (Encodec's time-domain term); 0 leaves it out. The
    # spectral terms ignore phase; this one asks the latents to carry it.
    wave_weight: float = 0.0
    # Grow the decoder of `init_from` to this many channels before training (see `widen_decoder`);
    # None keeps its width. Needs decoder_only: a wider decoder on the same frozen latents.
    decoder_channels: int | None = None
    # Relative noise on the widened weights (see `widen_decoder`): copies of a channel that start
    # nearly equal get nearly equal gradients and stay a narrow decoder for long; 0.03 moves the
    # output ~4 % at the start (1e-3 left a widened decoder no better than the narrow one after
    # 400 steps).
    widen_noise: float = WIDEN_NOISE
    # Grow the latents of `init_from` to this many channels before training (see `widen_latents`);
    # None keeps them. The encoder trains too: the new channels are for what the old do not carry.
    latent_dim: int | None = None
    # Stop (with a checkpoint) after this many seconds of training in this run; 0 = no limit.
    time_limit_s: float = 0.0
    # Adversarial training (`lab.training.discriminator`): weight of the generator's hinge loss
    # and of feature matching (stable-audio-tools' Oobleck recipe: 0.1 and 5); 0 and 0 leave the
    # discriminator out. It trains from step 0; the decoder hears it from `adv_start` on, so a
    # decoder that starts trained is not pushed around by a discriminator that knows nothing yet.
    adv_weight: float = 0.0
    fm_weight: float = 0.0
    adv_start: int = 0
    disc_channels: int = 16
    disc_lr: float = 1e-4
    # Samples of each crop the discriminator hears (0: all); ~0.74 s at 32,768.
    disc_crop: int = 32768
    # Weight of the pitch readout term (`lab.training.pitch`): a linear readout must find the
    # input's pitches (quarter-semitone bins) in each latent frame; 0 leaves it out.
    pitch_weight: float = 0.0


class StereoSTFTLoss(nn.Module):
    """Perceptually weighted MR-STFT on mid/side plus 0.5 x the same on left/right (auraloss).

    auraloss applies its A-weighting FIR inside every resolution (7 x 2 convolutions per call,
    measured at ~70 % of the loss's time); the filter is linear, so we apply it once to L/R and
    derive M/S from the filtered signal, which gives the same numbers for a fraction of the cost.
    """

    def __init__(self, sample_rate: int, sizes: list[int] | None = None, mid_side: bool = True):
        super().__init__()
        import auraloss

        self.mid_side = mid_side  # off: left/right only (a near-mono target's side has no level to converge to)
        sizes = sizes or STFT_SIZES
        self.weighting = auraloss.perceptual.FIRFilter(filter_type="aw", fs=sample_rate)
        self.mrstft = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=sizes, hop_sizes=[s // 4 for s in sizes], win_lengths=sizes
        )

    def forward(self, y: Tensor, x: Tensor) -> Tensor:  # y: reconstruction, x: target, [B, 2, N]
        b, c, n = y.shape
        yw, xw = self.weighting(y.reshape(b * c, 1, n), x.reshape(b * c, 1, n))
        yw, xw = yw.reshape(b, c, -1), xw.reshape(b, c, -1)

        def ms(a: Tensor) -> Tensor:
            return torch.stack(((a[:, 0] + a[:, 1]) / 2, (a[:, 0] - a[:, 1]) / 2), dim=1)  # [B, 2, N]

        if not self.mid_side:
            return self.mrstft(yw, xw)
        return self.mrstft(ms(yw), ms(xw)) + 0.5 * self.mrstft(yw, xw)


class FrameSpanSTFTLoss(nn.Module):
    """MR-STFT (auraloss: spectral convergence + log magnitude) on left/right with windows of 2, 4
    and 8 latent hops (4,096 / 8,192 / 16,384 samples at hop 2,048), hop a quarter window.

    A decoder is a strided network: given latents that change little from frame to frame it can
    render every frame alike, and a signal that repeats every hop has all its energy on the
    harmonics of the latent rate (21.5 Hz apart at 44.1 kHz). Windows of one hop or less cannot
    tell such a comb from a tone; a window of several hops resolves it, and its log magnitude
    between the harmonics of a real note is where the comb shows. (A pitch-preserving term of our
    own; stable-audio-tools leaves this to its discriminators, which we cannot afford on CPU.)
    It can only pay when the latents carry each note's phase: on longplay-mini's, which do not,
    400 decoder-only steps left the buzz as it was (model card, "Known limits").
    """

    def __init__(self, hop: int, spans: tuple[int, ...] = FRAME_SPAN_HOPS):
        super().__init__()
        import auraloss

        sizes = [hop * k for k in spans]
        self.mrstft = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=sizes, hop_sizes=[s // 4 for s in sizes], win_lengths=sizes
        )

    def forward(self, y: Tensor, x: Tensor) -> Tensor:  # y: reconstruction, x: target, [B, 2, N]
        return self.mrstft(y, x)


class StereoMelLoss(nn.Module):
    """Multi-resolution mel-STFT distance on left/right: auraloss' `STFTLoss(scale="mel")` at FFT
    2048 / 1024 / 512 with 128 / 128 / 64 mel bands, averaged. (128 bands at FFT 512 leave some
    filters empty at 44.1 kHz, whose log is -inf: measured NaN from the first step.)"""

    def __init__(
        self, sample_rate: int, resolutions: tuple[tuple[int, int], ...] = ((2048, 128), (1024, 128), (512, 64))
    ):
        super().__init__()
        import auraloss

        self.losses = nn.ModuleList(
            auraloss.freq.STFTLoss(
                fft_size=n, hop_size=n // 4, win_length=n, sample_rate=sample_rate, scale="mel", n_bins=bins
            )
            for n, bins in resolutions
        )

    def forward(self, y: Tensor, x: Tensor) -> Tensor:
        return sum(loss(y, x) for loss in self.losses) / len(self.losses)


def ae_folder_config(
    ae_raw: Mapping[str, Any],
    sample_rate: int,
    sample_size: int,
    meta: Mapping[str, Any],
    model_type: str = "autoencoder",
) -> dict[str, Any]:
    """An autoencoder folder's config: `model_type` "autoencoder" (Oobleck) or "stft_codec"."""
    return {
        "model_type": model_type,
        "sample_rate": sample_rate,
        "sample_size": sample_size,
        "audio_channels": ae_raw["io_channels"],
        "model": dict(ae_raw),
        "longplay": {"format_version": 1, **meta},
    }


def save_autoencoder(model: AudioAutoencoder, folder: Path, raw: Mapping[str, Any]) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "model_config.json.tmp"  # write-then-rename: a stop mid-save keeps the last good folder
    tmp.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    tmp.replace(folder / "model_config.json")
    tmpw = folder / "model.safetensors.tmp"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmpw))
    tmpw.replace(folder / "model.safetensors")
    return folder


PRETRANSFORM_PREFIX = "pretransform.model."
# The discriminator's weights beside an adversarially trained autoencoder (float16): what a run
# resumed on another machine from the committed weights (`init_from` that folder) starts from.
DISC_FILE = "discriminator.safetensors"


def _save_float(module: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().half().contiguous() for k, v in module.state_dict().items()}, str(tmp))
    tmp.replace(path)


def same_crop(x: Tensor, y: Tensor, length: int, rng: random.Random) -> tuple[Tensor, Tensor]:
    """The same random `length` samples of target and reconstruction `[B, C, N]` (all if 0 or longer)."""
    n = x.shape[-1]
    if not length or length >= n:
        return x, y
    start = rng.randrange(n - length + 1)
    return x[..., start : start + length], y[..., start : start + length]


def _read_float(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(path)).items()}


def autoencoder_config(folder: str | Path) -> tuple[Path, dict[str, Any], str]:
    """(resolved folder, config in the autoencoder-folder shape, prefix of its weights' keys) of
    what `load_autoencoder` loads, without reading the weights: an `autoencoder` folder's own
    config, or the pretransform of a `diffusion_cond` model folder or name."""
    from engine.checkpoint import resolve_model

    folder = resolve_model(folder)
    try:
        raw = json.loads((folder / "model_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{folder}: no readable autoencoder model_config.json ({exc})") from exc
    if raw.get("model_type") == "diffusion_cond" and isinstance(raw.get("model", {}).get("pretransform"), Mapping):
        pre = raw["model"]["pretransform"]
        ae_raw = {k: v for k, v in pre.get("config", {}).items() if k != "scale"}
        meta = {"from_model": str(folder)}
        kind = STFT_CODEC if pre.get("type") == STFT_CODEC else "autoencoder"
        return (
            folder,
            ae_folder_config(ae_raw, raw.get("sample_rate", 44100), raw.get("sample_size", 0), meta, kind),
            PRETRANSFORM_PREFIX,
        )
    if raw.get("model_type") not in ("autoencoder", STFT_CODEC):
        raise ModelLoadError(
            f"{folder} holds a {raw.get('model_type')!r} model, not an autoencoder or a model with one"
        )
    return folder, raw, ""


def load_autoencoder(folder: str | Path) -> tuple[AudioAutoencoder | STFTCodec, dict[str, Any]]:
    """An autoencoder folder -> (model in eval mode, its config dict).

    `folder` is an `autoencoder` model folder (what `train ae` writes), or a whole `diffusion_cond`
    model folder or name (e.g. `longplay-mini`), whose pretransform is taken: so a producer can
    encode a sample library and fine-tune a shipped model without a separate autoencoder folder.
    Either way the returned config is in the autoencoder-folder shape (see `autoencoder_config`)."""
    from engine.checkpoint import read_state_dict

    folder, raw, prefix = autoencoder_config(folder)
    state = read_state_dict(folder)
    if prefix:  # a whole model's weights (float16 when shipped): keep its pretransform's
        state = {k[len(prefix) :]: v.float() for k, v in state.items() if k.startswith(prefix)}
    model: AudioAutoencoder | STFTCodec
    if raw["model_type"] == STFT_CODEC:
        model = STFTCodec(parse_stft_codec(raw["model"], "model"))
    else:
        model = AudioAutoencoder(parse_autoencoder(raw["model"], "model"))
    load_state_dict_strict(model, {k: v.float() for k, v in state.items()}, str(folder))
    return model.eval(), raw


def train_autoencoder(
    corpus_dir: str | Path,
    out_dir: str | Path,
    ae_raw: Mapping[str, Any] | None,
    cfg: AETrainConfig = AETrainConfig(),
    quiet: bool = False,
    should_stop: Callable[[], bool] | None = None,
    init_from: str | Path | None = None,
) -> Path:
    """Train (or resume) an Oobleck autoencoder on the corpus; returns the model folder.

    `init_from` (an autoencoder folder, or a model folder or name, see `load_autoencoder`) starts
    from trained weights, and its architecture replaces `ae_raw` (which may then be None): with
    `decoder_only`, e.g. `init_from="longplay-mini"` trains the shipped decoder on with the
    latent space unchanged, and `package_model(..., ae_dir=out)` swaps it back in. A run with a
    checkpoint of its own resumes from that instead."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    init = None
    if init_from is not None:
        init, init_raw = load_autoencoder(init_from)
        ae_raw = init_raw["model"]
    if cfg.decoder_channels is not None:
        if init is None or not cfg.decoder_only:
            raise TrainingError("decoder_channels widens a trained decoder: it needs init_from and decoder_only")
        if cfg.decoder_channels != init.cfg.decoder.channels:
            init, ae_raw = widen_decoder(init, ae_raw, cfg.decoder_channels, cfg.widen_noise, seed=cfg.seed)
    if cfg.latent_dim is not None:
        if init is None or cfg.decoder_only:
            raise TrainingError(
                "latent_dim grows a trained autoencoder's latents: it needs init_from, and the encoder training"
            )
        if cfg.latent_dim != init.cfg.latent_dim:
            init, ae_raw = widen_latents(init, ae_raw, cfg.latent_dim, seed=cfg.seed)
    if ae_raw is None:
        raise TrainingError("train_autoencoder needs an architecture (ae_raw) or a model to start from (init_from)")
    ae_cfg = parse_autoencoder(ae_raw, "autoencoder")
    if cfg.decoder_latents not in ("sample", "mean"):
        raise TrainingError(f"decoder_latents must be 'sample' or 'mean', not {cfg.decoder_latents!r}")
    if cfg.crop_samples % ae_cfg.downsampling_ratio:
        raise TrainingError(
            f"crop_samples {cfg.crop_samples} must be a multiple of the hop {ae_cfg.downsampling_ratio}"
        )
    model = (init if init is not None else AudioAutoencoder(ae_cfg)).train()
    readout = PitchReadout(ae_cfg.latent_dim, ae_cfg.downsampling_ratio, cfg.sample_rate) if cfg.pitch_weight else None
    trained = [*model.parameters(), *(readout.parameters() if readout is not None else [])]
    opt = torch.optim.AdamW(trained, lr=cfg.lr, betas=(0.8, 0.99), weight_decay=1e-3)
    loss_fn = StereoSTFTLoss(cfg.sample_rate)
    mel_fn = StereoMelLoss(cfg.sample_rate) if cfg.mel_weight > 0 else None
    span_fn = FrameSpanSTFTLoss(ae_cfg.downsampling_ratio) if cfg.frame_span_weight > 0 else None
    rng = random.Random(cfg.seed)
    state_path = out / "train_state.pt"
    step = 0
    state = load_state(state_path)
    if state is not None:
        model.load_state_dict(state["model"])
        if readout is not None and "readout" in state:
            readout.load_state_dict(state["readout"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        set_rng_state(rng, state["rng"])
    elif cfg.decoder_only and init_from is None:
        raise TrainingError(
            f"decoder-only training needs trained weights: give init_from (--init-from) or an "
            f"out folder holding a checkpoint ({state_path} is missing)"
        )
    disc = disc_opt = None
    if cfg.adv_weight > 0 or cfg.fm_weight > 0:
        heard = min(cfg.disc_crop or cfg.crop_samples, cfg.crop_samples)
        if heard <= max(DISC_FFT_SIZES) // 2:
            raise TrainingError(
                f"the discriminator's longest window ({max(DISC_FFT_SIZES)} samples) needs crops of more "
                f"than {max(DISC_FFT_SIZES) // 2} samples; it would hear {heard}"
            )
        disc = MultiResolutionDiscriminator(channels=cfg.disc_channels, audio_channels=ae_cfg.io_channels)
        disc_opt = torch.optim.AdamW(disc.parameters(), lr=cfg.disc_lr, betas=(0.8, 0.99), weight_decay=1e-3)
        if state is not None and "disc" in state:
            disc.load_state_dict(state["disc"])
            disc_opt.load_state_dict(state["disc_opt"])
        elif init_from is not None and (Path(init_from) / DISC_FILE).is_file():
            disc.load_state_dict(_read_float(Path(init_from) / DISC_FILE))  # a run resumed from its float16 weights
    bank = AudioBank(read_index(corpus_dir, "train"), cfg.sample_rate, ae_cfg.io_channels)
    log = Logger(out, cfg.steps, "ae", quiet)
    meta = {"train": asdict(cfg), "corpus": str(corpus_dir)}

    def checkpoint() -> None:
        extra = (
            {} if disc is None or disc_opt is None else {"disc": disc.state_dict(), "disc_opt": disc_opt.state_dict()}
        )
        if readout is not None:
            extra["readout"] = readout.state_dict()
        save_state(
            state_path,
            {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "rng": rng_state(rng), **extra},
        )
        save_autoencoder(
            model, out, ae_folder_config(ae_raw, cfg.sample_rate, cfg.crop_samples, {**meta, "step": step})
        )
        if disc is not None:
            _save_float(disc, out / DISC_FILE)

    if cfg.decoder_only:
        model.encoder.requires_grad_(False)  # AdamW skips parameters without gradients
    deadline = Deadline(cfg.time_limit_s)
    log.begin(step)
    while step < cfg.steps:
        if should_stop is not None and should_stop():
            break
        if deadline.passed():
            break
        x = torch.from_numpy(
            np.stack([bank.crop(rng, cfg.crop_samples, cfg.min_rms_db) for _ in range(cfg.batch_size)])
        )  # [B, C, N]
        for group in opt.param_groups:
            group["lr"] = cfg.lr * linear_decay(step, cfg.steps, cfg.lr_final)
        with torch.set_grad_enabled(not cfg.decoder_only):
            if cfg.decoder_latents == "mean" and not cfg.decoder_only:
                z, kl = model.encode_mean(x)
            else:
                z, kl = model.encode(x, sample=cfg.decoder_latents == "sample")
        y = model.decode(z)
        rec = loss_fn(y, x)
        mel = mel_fn(y, x) if mel_fn is not None else torch.zeros(())
        span = span_fn(y, x) if span_fn is not None else torch.zeros(())
        wave = (y - x).abs().mean() if cfg.wave_weight > 0 else torch.zeros(())
        loss = rec + cfg.mel_weight * mel + cfg.frame_span_weight * span + cfg.wave_weight * wave + cfg.kl_weight * kl
        pitch = readout(z, x) if readout is not None else torch.zeros(())
        loss = loss + cfg.pitch_weight * pitch
        adv = fm = d_loss = torch.zeros(())
        if disc is not None and disc_opt is not None:
            # The discriminator hears a random `disc_crop` of each item (its cost grows with length).
            dx, dy = same_crop(x, y, cfg.disc_crop, rng)
            judge = AdversarialLosses(disc, dx)
            if step >= cfg.adv_start:
                adv, fm = judge.generator(dy)
                loss = loss + cfg.adv_weight * adv + cfg.fm_weight * fm
            d_loss = judge.discriminator(dy)  # on the detached output: no gradient into the decoder
        check_finite(loss, step, out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if disc is not None and disc_opt is not None:
            disc_opt.zero_grad(set_to_none=True)  # drops what the generator's terms left on it
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(disc.parameters(), 1.0)
            disc_opt.step()
        step += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            log.log(
                step,
                loss=loss.item(),
                stft=rec.item(),
                **({"mel": mel.item()} if mel_fn else {}),
                **({"span": span.item()} if span_fn else {}),
                **({"wave": wave.item()} if cfg.wave_weight > 0 else {}),
                **({"pitch": pitch.item()} if readout is not None else {}),
                **({"adv": adv.item(), "fm": fm.item(), "disc": d_loss.item()} if disc is not None else {}),
                kl=kl.item(),
            )
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint()
    checkpoint()
    return out
