"""Longplay's lab: what makes and judges models, beside the runtime in `engine/`.

    build_corpus("data/corpus", n_songs=99, seed=7)           # lab.data: songs we compose and render
    train_autoencoder(corpus, out, raw, AETrainConfig(...))   # lab.training
    train_dit(config, corpus, latents, ae, out, DiTTrainConfig(...))
    run_eval("longplay-mini", corpus, out)                    # lab.evaluation

Arrows point lab -> engine only (tests/test_rooms.py): `import engine`, what `generate`, `serve`
and the app load, never loads the lab or what only the lab needs (mido, pedalboard, auraloss,
librosa). The bridge's `longplay corpus|train|eval` commands import it when they run.
"""

from __future__ import annotations

from .data import build_corpus
from .evaluation import run_eval
from .training.autoencoder import AETrainConfig, autoencoder_config, load_autoencoder, train_autoencoder
from .training.diffusion import DiTTrainConfig, encode_corpus, train_dit
from .training.errors import TrainingError
from .training.package import package_model

__all__ = [
    "AETrainConfig",
    "DiTTrainConfig",
    "TrainingError",
    "autoencoder_config",
    "build_corpus",
    "encode_corpus",
    "load_autoencoder",
    "package_model",
    "run_eval",
    "train_autoencoder",
    "train_dit",
]
