"""Do an autoencoder's latents pin a tone's frequency? A quick gate before training a decoder.

    .venv/bin/python scripts/frequency_probe.py [AE_OR_MODEL ...]     (default: longplay-mini)

A decoder can only render a held note at its pitch if the latents say what that pitch is, to
within the tone-fidelity band (+-3 Hz: 0.7 % at 441 Hz). This encodes 300 steady sines at random
frequencies (100-1,000 Hz, random phase) and fits a regressor from one latent frame to the log
frequency (ridge, and a 2-layer MLP: scikit-learn, from the eval extra), then scores 60 other
sines. Measured in session 10: longplay-mini's latents pin a sine to 7.1 % (ridge) / 4.2 % (MLP)
median error: ten times coarser than a decoder would need, so no decoder can hold a pitch on them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SR, FRAMES = 44100, 24
TRAIN, TEST = 300, 60


def latent_frames(ae: torch.nn.Module, freqs: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    hop = ae.cfg.downsampling_ratio
    t = np.arange(hop * FRAMES) / SR
    out = []
    for f in freqs:
        x = 0.25 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        with torch.no_grad():
            z, _ = ae.encode(torch.from_numpy(np.stack([x, x]).astype(np.float32))[None], sample=False)
        out.append(z[0, :, 6:-6].T.numpy())  # [frames, D], edges left out
    return out


def probe(folder: str) -> dict[str, float]:
    from sklearn.linear_model import Ridge
    from sklearn.neural_network import MLPRegressor

    from lab.training.autoencoder import load_autoencoder

    src = Path(folder)
    if (src / "train_state.pt").exists():  # a training run's folder: read a copy, it may be mid-save
        tmp = Path(tempfile.mkdtemp())
        for name in ("model.safetensors", "model_config.json"):
            shutil.copy(src / name, tmp / name)
        src = tmp
    ae, _ = load_autoencoder(src if src.exists() else folder)
    rng = np.random.default_rng(0)
    f_train = np.exp(rng.uniform(np.log(100), np.log(1000), TRAIN))
    f_test = np.exp(rng.uniform(np.log(100), np.log(1000), TEST))
    xs, xt = latent_frames(ae, f_train, rng), latent_frames(ae, f_test, rng)
    a = np.concatenate(xs)
    y = np.concatenate([np.full(len(x), np.log(f)) for x, f in zip(xs, f_train)])
    b = np.concatenate(xt)
    yt = np.concatenate([np.full(len(x), np.log(f)) for x, f in zip(xt, f_test)])
    scores = {}
    for name, model in (
        ("ridge", Ridge(alpha=1e-3)),
        ("mlp", MLPRegressor(hidden_layer_sizes=(256, 256), max_iter=400, random_state=0)),
    ):
        model.fit(a, y)
        scores[name] = float(np.median(np.abs(np.exp(model.predict(b) - yt) - 1)))
    return scores


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", default=["longplay-mini"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| autoencoder | median relative frequency error: ridge | MLP | needed for +-3 Hz at 441 Hz |")
    print("|---|---|---|---|")
    for folder in args.models:
        s = probe(folder)
        print(f"| {folder} | {s['ridge']:.4f} | {s['mlp']:.4f} | 0.0068 |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
