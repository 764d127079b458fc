"""Measure STFT-codec checkpoints against the shipped longplay-mini autoencoder (issue 19) and
print a markdown table: tone/note fidelity (the eval's probes and the wider ones to choose
checkpoints on), held-out reconstruction, drum onsets (`--onsets`), frequency probe, params,
decode time of 285 s of latents.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/eval_stft_codec.py CKPT [CKPT ...] --corpus data/corpus
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SR, HOP = 44100, 2048


class ProbeAdapter(torch.nn.Module):
    """The surface `frequency_probe.latent_frames` reads: `cfg.downsampling_ratio`, `encode(x, sample=)`."""

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.cfg = argparse.Namespace(downsampling_ratio=HOP)
        self._encode = encode

    def encode(self, x: torch.Tensor, sample: bool = False) -> tuple[torch.Tensor, None]:
        return self._encode(x), None


def frequency_probe(encode: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """Median relative error of a ridge readout of a sine's frequency from single latent frames."""
    import frequency_probe as fp
    from sklearn.linear_model import Ridge

    ae = ProbeAdapter(encode)
    rng = np.random.default_rng(0)
    f_train = np.exp(rng.uniform(np.log(100), np.log(1000), fp.TRAIN))
    f_test = np.exp(rng.uniform(np.log(100), np.log(1000), fp.TEST))
    xs, xt = fp.latent_frames(ae, f_train, rng), fp.latent_frames(ae, f_test, rng)
    y = np.concatenate([np.full(len(x), np.log(f)) for x, f in zip(xs, f_train)])
    yt = np.concatenate([np.full(len(x), np.log(f)) for x, f in zip(xt, f_test)])
    model = Ridge(alpha=1e-3).fit(np.concatenate(xs), y)
    return float(np.median(np.abs(np.exp(model.predict(np.concatenate(xt)) - yt) - 1)))


def sine_level_db(
    roundtrip: Callable[[torch.Tensor], torch.Tensor], freqs: tuple[float, ...] = (150.0, 441.0, 1200.0)
) -> float:
    """Median over a few steady sines of the output's RMS against the input's (middle 2 s), in dB:
    a codec that places a tone right but hedges its magnitude decodes it quietly."""
    n = 4 * SR // HOP * HOP
    t = np.arange(n) / SR
    mid = slice((n - 2 * SR) // 2, (n + 2 * SR) // 2)
    levels = []
    for f in freqs:
        x = np.repeat((0.25 * np.sin(2 * np.pi * f * t)).astype(np.float32)[None], 2, axis=0)
        with torch.no_grad():
            y = roundtrip(torch.from_numpy(x)[None])[0, :, :n].numpy()
        levels.append(20 * np.log10(np.sqrt(np.mean(y[:, mid] ** 2)) / np.sqrt(np.mean(x[:, mid] ** 2)) + 1e-12))
    return float(np.median(levels))


def heldout_targets(model: Any, clips: list, crops: int = 24) -> tuple[float, float, float]:
    """Stage 1's direct-target losses (log/compressed magnitude, spectral convergence, inst.
    frequency) on fixed 0.74 s crops of the held-out clips and as many fixed synthetic sine crops:
    a deterministic counterpart of the training log's single-batch numbers."""
    import random

    from lab.training.stft_codec import analysis_loss
    from lab.training.stft_codec_train import synthetic_sines

    length, rng = 16 * HOP, random.Random(0)
    items = [c[:, i * length : (i + 1) * length] for _, c in clips for i in range(c.shape[1] // length)][:crops]
    items += [synthetic_sines(rng, 2, length) for _ in range(crops)]
    mags, scs, ifs = [], [], []
    with torch.no_grad():
        for a in items:
            x = torch.from_numpy(np.ascontiguousarray(a))[None]
            log_mag, dev, _ = model.heads(model.encode(x))
            m, f = analysis_loss(log_mag, dev, x, model.config.frame_hop, model.config.dec_fft)
            with_sc, _ = analysis_loss(log_mag, dev, x, model.config.frame_hop, model.config.dec_fft, convergence=1.0)
            mags.append(float(m))
            scs.append(float(with_sc - m))
            ifs.append(float(f))
    return float(np.mean(mags)), float(np.mean(scs)), float(np.mean(ifs))


def held_out_clips(corpus: str, n: int, seconds: float, kind: str = "mix") -> list[tuple[str, np.ndarray]]:
    from lab.training.data import AudioBank, read_index

    items = [i for i in read_index(corpus, "test") if i.kind == kind][:n]
    bank = AudioBank(items, SR, 2)
    length = int(seconds * SR) // HOP * HOP
    clips = []
    for item, a in zip(items, bank.audio):
        start = max(0, (a.shape[1] - length) // 2)
        clips.append(
            (
                item.id if hasattr(item, "id") else str(item.path),
                a[:, start : start + length].astype(np.float32) / 32768,
            )
        )
    return clips


def onset_f1(roundtrip: Callable[[torch.Tensor], torch.Tensor], stems: list) -> tuple[float, float]:
    """Mean onset F1 / precision of held-out drum stems through `roundtrip` alone (no diffusion),
    against the stems' own onsets (librosa, +-50 ms): how exactly the decoder places a hit, which
    bounds what audio-to-audio's drum renders can keep of a take's groove."""
    from lab.evaluation.music import detect_onsets, onset_f_measure

    scores = []
    for _, x in stems:
        with torch.no_grad():
            y = roundtrip(torch.from_numpy(x)[None])[0, :, : x.shape[-1]].float().numpy()
        scores.append(onset_f_measure(detect_onsets(x, SR), detect_onsets(y, SR)))
    return float(np.mean([s.f_measure for s in scores])), float(np.mean([s.precision for s in scores]))


def measure(
    name: str, encode: Callable, decode: Callable, params: int, clips: list, notes: bool, stems: list = ()
) -> dict[str, Any]:
    from lab.evaluation.metrics import evaluate_reconstruction, tone_fidelity, tone_sweep

    def roundtrip(x: torch.Tensor) -> torch.Tensor:
        return decode(encode(x))

    row: dict[str, Any] = {"model": name, "params (M)": params / 1e6}
    tones = tone_fidelity(roundtrip, SR, HOP)
    row["tone"] = tones["mean"]
    row["per tone"] = " / ".join(f"{s:.2f}" for s in tones["share"])
    row["tone hop (dB)"] = tones["hop_periodic_db_mean"]
    row["16 tones"] = tone_sweep(roundtrip, SR, HOP)["mean"]
    row["sine level (dB)"] = sine_level_db(roundtrip)
    if notes:
        from lab.evaluation.notes import WIDE_NOTE_PROBES, note_fidelity

        row["note"] = note_fidelity(roundtrip, SR, HOP)["mean"]
        row["32 notes"] = note_fidelity(roundtrip, SR, HOP, probes=WIDE_NOTE_PROBES)["mean"]
    if clips:
        rec = evaluate_reconstruction(roundtrip, clips, SR, hop=HOP)
        row |= {"mel": rec["mel"], "stft": rec["stft"], "sisdr": rec["sisdr"], "hop_db": rec["hop_periodic_db"]}
        with torch.no_grad():
            z = torch.cat([encode(torch.from_numpy(c)[None]) for _, c in clips], dim=-1)
        row["z std"] = float(z.std())
    if stems:
        row["drum onset F1"], row["onset precision"] = onset_f1(roundtrip, list(stems))
    row["probe err"] = frequency_probe(encode)
    z = torch.randn(1, encode(torch.zeros(1, 2, 4 * HOP)).shape[1], int(285 * SR / HOP))
    with torch.no_grad():
        t0 = time.perf_counter()
        decode(z)
        row["decode 285 s (s)"] = time.perf_counter() - t0
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("checkpoints", nargs="*")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--no-notes", action="store_true")
    p.add_argument("--no-shipped", action="store_true")
    p.add_argument("--shipped", default="resources/models/longplay-mini", help="the model folder measured beside")
    p.add_argument("--targets-only", action="store_true", help="only the held-out direct-target losses")
    p.add_argument("--phase-lock", action="store_true", help="also measure each checkpoint decoding phase-locked")
    p.add_argument("--locked-only", action="store_true", help="only phase-locked (how an exported folder decodes)")
    p.add_argument("--onsets", type=int, default=0, help="held-out drum stems (10 s) through the codec alone (0: none)")
    args = p.parse_args()
    torch.set_num_threads(1)
    from lab.training.stft_codec_train import load_codec

    clips = held_out_clips(args.corpus, args.clips, args.seconds) if args.clips else []
    stems = held_out_clips(args.corpus, args.onsets, 10.0, kind="stem:drums") if args.onsets else []
    rows = []
    if not args.no_shipped and not args.targets_only:
        from lab.training.autoencoder import load_autoencoder

        ae, _ = load_autoencoder(Path(args.shipped))
        ae.eval()
        rows.append(
            measure(
                f"{Path(args.shipped).name} ({args.shipped})",
                ae.encode if hasattr(ae, "encode_dist") else lambda x: ae.encode(x, sample=False)[0],
                ae.decode,
                sum(p.numel() for p in ae.parameters()),
                clips,
                not args.no_notes,
                stems,
            )
        )
    for ck in args.checkpoints:
        model = load_codec(Path(ck))
        step = torch.load(ck, map_location="cpu", weights_only=False)["step"]
        if clips:
            targets = heldout_targets(model, clips)
            print(
                f"{ck} (step {step}): held-out direct targets: magnitude {targets[0]:.4f}, "
                f"spectral convergence {targets[1]:.4f}, inst. frequency {targets[2]:.4f}"
            )
        if args.targets_only:
            continue
        for lock in (True,) if args.locked_only else (False, True) if args.phase_lock else (False,):
            model.config = dataclasses.replace(model.config, phase_lock=lock)
            rows.append(
                measure(
                    f"{Path(ck).parent.name} step {step}" + (", phase-locked" if lock else ""),
                    model.encode,
                    model.decode,
                    sum(p.numel() for p in model.parameters()),
                    clips,
                    not args.no_notes,
                    stems,
                )
            )
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print(
            "| " + " | ".join(f"{r[k]:.3f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys) + " |"
        )


if __name__ == "__main__":
    main()
