"""The STFT codec through the training tools (issue 19): a codec run exports as an autoencoder
folder; stage 2 trains its decoder alone; the corpus encodes through it; a DiT trains on those
latents into a model folder the engine renders; a stage-2 decoder packages into that model and a
changed encoder is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine import Generator, RenderRequest, build_model, diffusion_config, load_model, save_model, tiny_config
from engine.stft_codec import STFTCodec, STFTCodecPretransform
from lab import package_model
from lab.training.autoencoder import load_autoencoder, save_autoencoder
from lab.training.diffusion import DiTTrainConfig, encode_corpus, train_dit
from lab.training.errors import TrainingError
from lab.training.loop import load_state
from lab.training.stft_codec_train import main as codec_main

from .test_training import _synthetic_corpus

SMALL = ["--synthetic", "1.0", "--batch", "1", "--crop-hops", "4", "--latent-dim", "8", "--dim", "32"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stage 1 (2 steps) exported; then stage 2 (1 step, encoder frozen) exported beside it."""
    root = tmp_path_factory.mktemp("codec")
    run = root / "run"
    codec_main([str(run), "--steps", "2", "--save-every", "1", "--if-bins", "16", *SMALL])
    codec_main([str(run), "--export-folder", str(root / "stage1")])
    codec_main([str(run), "--steps", "3", "--save-every", "1", "--if-bins", "16", "--freeze-encoder", *SMALL])
    codec_main([str(run), "--export-folder", str(root / "stage2")])
    corpus = _synthetic_corpus(root / "corpus")
    return {"run": run, "stage1": root / "stage1", "stage2": root / "stage2", "corpus": corpus, "root": root}


def test_export_folder_loads_as_a_phase_locked_codec(runs: dict[str, Path]) -> None:
    codec, raw = load_autoencoder(runs["stage1"])
    assert isinstance(codec, STFTCodec) and raw["model_type"] == "stft_codec"
    assert codec.config.phase_lock and codec.config.if_bins == 16 and codec.config.latent_dim == 8
    assert "scale" not in raw["model"]  # the DiT's to set, from the latents it learns
    assert raw["longplay"]["step"] == 2


def test_stage_two_trains_the_decoder_alone(runs: dict[str, Path]) -> None:
    one, _ = load_autoencoder(runs["stage1"])
    two, _ = load_autoencoder(runs["stage2"])
    a, b = one.state_dict(), two.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("enc_"))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("dec_"))
    assert load_state(runs["run"] / "checkpoint.pt")["frozen_encoder"] is True


DIT = {"window_seconds": 1.5, "embed_dim": 32, "depth": 1, "num_heads": 1, "text_width": 32, "text_depth": 1}


def _train(codec_block: dict, corpus: Path, latents: Path, ae: Path, out: Path, init_from: Path | None = None) -> Path:
    return train_dit(
        diffusion_config(codec_block, **DIT, pretransform_type="stft_codec"),  # type: ignore[arg-type]
        corpus,
        latents,
        ae,
        out,
        DiTTrainConfig(steps=4, batch_size=2, lr=1e-3, log_every=2, ckpt_every=2, crop_frames=16, train_latents="mean"),
        quiet=True,
        init_from=init_from,
    )


def test_an_oobleck_dit_warm_starts_a_codec_dit_with_the_codec_latents_scale(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """The DiT body carries over; the latent scale is the new latents' own, not the Oobleck's."""
    oobleck = build_model(diffusion_config(tiny_config()["model"]["pretransform"]["config"] | {"scale": 9.0}, **DIT))
    assert oobleck.config.autoencoder.latent_dim == 8
    init = save_model(oobleck, tmp_path / "oobleck", {})
    latents = encode_corpus(runs["corpus"], runs["stage1"], tmp_path / "latents", quiet=True)
    raw = load_autoencoder(runs["stage1"])[1]
    model = load_model(_train(raw["model"], runs["corpus"], latents, runs["stage1"], tmp_path / "dit", init))
    means = np.concatenate([np.load(latents / f"s{i}.npy")[:8].ravel() for i in range(3)]).astype(np.float64)
    assert model.config.autoencoder.scale == pytest.approx(means.std(), rel=1e-3)


def test_a_dit_trains_on_codec_latents_renders_and_takes_the_stage_two_decoder(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    corpus = runs["corpus"]
    latents = encode_corpus(corpus, runs["stage1"], tmp_path / "latents", quiet=True)
    first = np.load(latents / "s0.npy")
    frames = -(-sf.info(str(corpus / "audio" / "s0.flac")).frames // 2048)
    assert first.shape == (16, frames)  # the posterior's mean and scale, 8 channels each
    codec, raw = load_autoencoder(runs["stage1"])
    audio = torch.from_numpy(sf.read(str(corpus / "audio" / "s0.flac"), dtype="float32")[0].T.copy())[None]
    audio = torch.nn.functional.pad(audio, (0, frames * 2048 - audio.shape[-1]))
    with torch.no_grad():
        np.testing.assert_allclose(first[:8], codec.encode(audio)[0].numpy(), atol=2e-3, rtol=2e-3)

    folder = _train(raw["model"], corpus, latents, runs["stage1"], tmp_path / "dit")
    model = load_model(folder)
    assert isinstance(model.pretransform, STFTCodecPretransform)
    means = np.concatenate([np.load(latents / f"s{i}.npy")[:8].ravel() for i in range(3)]).astype(np.float64)
    assert model.config.autoencoder.scale == pytest.approx(means.std(), rel=1e-3)
    request = RenderRequest("tone 220 Hz, clicks", seconds=1.0, steps=3, seed=0)
    res = Generator(model, device="cpu").render(request)[0]
    assert res.audio.shape == (2, 44100) and np.isfinite(res.audio).all()

    # Stage 2's decoder packages in (config and weights); a codec with another encoder does not.
    shipped = load_model(package_model(folder, tmp_path / "ship", runs["stage2"], half=False))
    two, _ = load_autoencoder(runs["stage2"])
    assert all(torch.equal(v, shipped.pretransform.model.state_dict()[k]) for k, v in two.state_dict().items())
    assert shipped.config.autoencoder.scale == model.config.autoencoder.scale
    with torch.no_grad():
        two.enc_in.weight.add_(0.1)
    save_autoencoder(two, tmp_path / "other", json.loads((runs["stage2"] / "model_config.json").read_text()))
    with pytest.raises(TrainingError, match="encoder differs"):
        package_model(folder, tmp_path / "ship2", tmp_path / "other")
