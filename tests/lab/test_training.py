"""Training runs in CI size: losses fall, runs resume deterministically, the result is a model folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine import Generator, RenderRequest, load_model, tiny_config
from engine.errors import ModelLoadError
from lab.training.autoencoder import AETrainConfig, load_autoencoder, train_autoencoder
from lab.training.data import CorpusError, read_index
from lab.training.diffusion import DiTTrainConfig, encode_corpus, train_dit
from lab.training.errors import TrainingError

SR = 44100
KEYS = ("A major", "A minor", "E major", "A dorian")  # the tones' 110 * (i + 1) Hz


def _synthetic_corpus(root: Path, n: int = 4) -> Path:
    """Tone-and-click loops with prompts: enough structure for losses to fall in a few steps."""
    (root / "audio").mkdir(parents=True)
    lines = []
    for i in range(n):
        sec = 1.0 + 0.5 * i
        t = np.arange(int(SR * sec)) / SR
        f = 110 * (i + 1)
        tone = 0.3 * np.sin(2 * np.pi * f * t)
        clicks = (np.mod(t, 0.25) < 0.005) * 0.5
        audio = np.stack([tone + clicks, tone - clicks], axis=1).astype(np.float32)
        sf.write(str(root / "audio" / f"s{i}.flac"), audio, SR, subtype="PCM_24")
        lines.append(
            json.dumps(
                {
                    "id": f"s{i}",
                    "path": f"audio/s{i}.flac",
                    "seconds": sec,
                    "split": "test" if i == n - 1 else "train",
                    "kind": "mix",
                    "metadata": {"bpm": 240},  # clicks every 0.25 s
                    "prompts": [f"tone {f} Hz, clicks", f"Genre: test|BPM: 240|Key: {KEYS[i % len(KEYS)]}"],
                }
            )
        )
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


AE_RAW = tiny_config()["model"]["pretransform"]["config"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _synthetic_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained_ae(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ae")
    train_autoencoder(
        corpus,
        out,
        AE_RAW,
        AETrainConfig(steps=24, batch_size=2, crop_samples=4096, lr=1e-3, log_every=4, ckpt_every=12),
        quiet=True,
    )
    return out


@pytest.fixture(scope="module")
def latents(corpus: Path, trained_ae: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic corpus through `trained_ae` (tests read it, none writes to it)."""
    return encode_corpus(corpus, trained_ae, tmp_path_factory.mktemp("latents"), quiet=True)


@pytest.fixture(scope="module")
def base_dit(corpus: Path, trained_ae: Path, latents: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DiT folder (2 steps) that warm starts and decoder runs start from (read only)."""
    return train_dit(
        tiny_config(window_seconds=1.5),
        corpus,
        latents,
        trained_ae,
        tmp_path_factory.mktemp("base_dit"),
        DiTTrainConfig(steps=2, batch_size=2, crop_frames=128, log_every=1),
        quiet=True,
    )


def _losses(folder: Path, key: str = "loss") -> list[float]:
    return [json.loads(line)[key] for line in (folder / "train_log.jsonl").read_text().splitlines()]


def test_autoencoder_loss_falls_and_folder_loads(trained_ae: Path) -> None:
    losses = _losses(trained_ae, "stft")
    assert np.mean(losses[-2:]) < 0.9 * np.mean(losses[:2]), losses
    ae, raw = load_autoencoder(trained_ae)
    assert raw["model_type"] == "autoencoder" and raw["longplay"]["step"] == 24


def test_autoencoder_training_resumes_exactly(corpus: Path, tmp_path: Path) -> None:
    cfg = dict(batch_size=1, crop_samples=4096, log_every=1, ckpt_every=3)
    straight, resumed = tmp_path / "a", tmp_path / "b"
    train_autoencoder(corpus, straight, AE_RAW, AETrainConfig(steps=6, **cfg), quiet=True)
    train_autoencoder(corpus, resumed, AE_RAW, AETrainConfig(steps=3, **cfg), quiet=True)
    train_autoencoder(corpus, resumed, AE_RAW, AETrainConfig(steps=6, **cfg), quiet=True)
    a, _ = load_autoencoder(straight)
    b, _ = load_autoencoder(resumed)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_dit_trains_on_latents_and_renders(corpus: Path, trained_ae: Path, tmp_path: Path, latents: Path) -> None:
    assert sorted(p.name for p in latents.glob("s*.npy")) == [f"s{i}.npy" for i in range(4)]
    config = tiny_config(window_seconds=1.5)
    # Crops shorter than the window, one longer crop every 4th step (the long-context schedule).
    folder = train_dit(
        config,
        corpus,
        latents,
        trained_ae,
        tmp_path / "dit",
        DiTTrainConfig(steps=30, batch_size=2, lr=1e-3, log_every=5, ckpt_every=15, crop_frames=128, long_frames=256),
        quiet=True,
        description="test",
    )
    losses = _losses(tmp_path / "dit")
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    model = load_model(folder)
    assert model.config.raw["longplay"]["description"] == "test"
    # The pretransform scale makes the DiT's latents unit-variance, and is written to the config.
    means = np.concatenate([np.load(f)[:8].ravel() for f in latents.glob("s*.npy")]).astype(np.float64)
    train_means = np.concatenate([np.load(latents / f"s{i}.npy")[:8].ravel() for i in range(3)]).astype(np.float64)
    assert model.config.autoencoder.scale == pytest.approx(train_means.std(), rel=1e-3)
    assert means.std() > 0
    # The frozen autoencoder is the one trained above, unchanged.
    ae, _ = load_autoencoder(trained_ae)
    for k, v in ae.state_dict().items():
        assert torch.equal(model.pretransform.model.state_dict()[k], v), k
    res = Generator(model, device="cpu").render(RenderRequest("tone 220 Hz, clicks", seconds=1.0, steps=4, seed=0))[0]
    assert res.audio.shape == (2, SR) and np.isfinite(res.audio).all()
    # Packaging: float16 weights, half the size, the same render up to float16 rounding.
    from lab import package_model

    shipped = package_model(folder, tmp_path / "ship", trained_ae, description="shipped", defaults={"steps": 4})
    assert (shipped / "model.safetensors").stat().st_size < 0.6 * (folder / "model.safetensors").stat().st_size
    small = load_model(shipped)
    assert small.config.raw["longplay"]["description"] == "shipped"
    assert Generator(small, device="cpu").defaults["steps"] == 4
    res16 = Generator(small, device="cpu").render(RenderRequest("tone 220 Hz, clicks", seconds=1.0, steps=4, seed=0))[0]
    assert np.abs(res16.audio - res.audio).max() < 0.05 * np.abs(res.audio).max() + 1e-3
    # A decoder can be swapped in only together with the very encoder the DiT learned from.
    from lab.training.autoencoder import save_autoencoder

    ae, raw = load_autoencoder(trained_ae)
    with torch.no_grad():
        next(p for n, p in ae.named_parameters() if n.startswith("encoder.")).add_(0.1)
    save_autoencoder(ae, tmp_path / "other_ae", raw)
    with pytest.raises(TrainingError, match="encoder differs"):
        package_model(folder, tmp_path / "ship2", tmp_path / "other_ae")
    # Defaults the model cannot use are refused before anything is written.
    with pytest.raises(TrainingError, match="key_cfg needs"):
        package_model(folder, tmp_path / "ship3", defaults={"key_cfg": 3.0})
    assert not (tmp_path / "ship3").exists()


def test_corpus_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="metadata.jsonl is missing"):
        read_index(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(CorpusError, match="metadata.jsonl:1: malformed"):
        read_index(tmp_path)


def test_stereo_stft_loss_equals_auraloss_weighting_inside_each_resolution() -> None:
    import auraloss

    from lab.training.autoencoder import STFT_SIZES, StereoSTFTLoss

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 2, 8192, generator=g) * 0.1, torch.randn(2, 2, 8192, generator=g) * 0.1
    ref = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=STFT_SIZES,
        hop_sizes=[s // 4 for s in STFT_SIZES],
        win_lengths=STFT_SIZES,
        perceptual_weighting=True,
        sample_rate=SR,
    )

    def ms(a: torch.Tensor) -> torch.Tensor:
        return torch.stack(((a[:, 0] + a[:, 1]) / 2, (a[:, 0] - a[:, 1]) / 2), dim=1)

    expected = ref(ms(y), ms(x)) + 0.5 * ref(y, x)
    assert torch.allclose(StereoSTFTLoss(SR)(y, x), expected, rtol=1e-5)
    assert StereoSTFTLoss(SR)(x, x) < 1e-3 < float(expected)


def test_decoder_only_training_keeps_the_latent_space(trained_ae: Path, corpus: Path, tmp_path: Path) -> None:
    import shutil

    dec = tmp_path / "dec"
    shutil.copytree(trained_ae, dec)
    train_autoencoder(
        corpus,
        dec,
        AE_RAW,
        AETrainConfig(
            steps=28, batch_size=2, crop_samples=4096, lr=1e-3, log_every=4, ckpt_every=14, decoder_only=True
        ),
        quiet=True,
    )
    before, _ = load_autoencoder(trained_ae)
    after, raw = load_autoencoder(dec)
    assert raw["longplay"]["step"] == 28
    old, new = before.state_dict(), after.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith("encoder."))
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("decoder."))
    # Without a checkpoint or weights to start from, a decoder-only run is refused.
    with pytest.raises(TrainingError, match="decoder-only training needs trained weights"):
        train_autoencoder(corpus, tmp_path / "nothing", AE_RAW, AETrainConfig(steps=1, decoder_only=True), quiet=True)


def test_decoder_of_a_shipped_model_trains_on_and_swaps_back(
    corpus: Path, trained_ae: Path, tmp_path: Path, base_dit: Path
) -> None:
    """`init_from` a whole model folder: its autoencoder (architecture and weights) is the start,
    the encoder stays put, and the trained decoder packages back into that model."""
    dec = train_autoencoder(
        corpus,
        tmp_path / "dec",
        None,
        AETrainConfig(steps=3, batch_size=2, crop_samples=4096, lr=1e-3, log_every=1, decoder_only=True),
        quiet=True,
        init_from=base_dit,
    )
    before, _ = load_autoencoder(base_dit)
    after, _ = load_autoencoder(dec)
    old, new = before.state_dict(), after.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith("encoder."))
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("decoder."))
    from lab import package_model

    shipped = load_model(package_model(base_dit, tmp_path / "ship", dec, half=False))
    assert all(torch.equal(v, shipped.pretransform.model.state_dict()[k]) for k, v in new.items())


def test_widened_decoder_computes_the_same_function(trained_ae: Path) -> None:
    from lab.training.widen import widen_decoder

    ae, raw = load_autoencoder(trained_ae)
    width = ae.cfg.decoder.channels
    wide, wide_raw = widen_decoder(ae, raw["model"], 2 * width, noise=0.0)
    assert wide_raw["decoder"]["config"]["channels"] == 2 * width == wide.cfg.decoder.channels
    assert raw["model"]["decoder"]["config"]["channels"] == width  # the input config is left alone
    n_small = sum(p.numel() for p in ae.decoder.parameters())
    assert sum(p.numel() for p in wide.decoder.parameters()) > 3 * n_small
    z = torch.randn(2, ae.cfg.latent_dim, 9, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, out = ae.decode(z), wide.eval().decode(z)
        noisy, _ = widen_decoder(ae, raw["model"], 2 * width, noise=1e-2)
        other = noisy.eval().decode(z)
    assert torch.allclose(out, ref, atol=1e-5 * float(ref.abs().max()))
    assert not torch.allclose(other, ref, atol=1e-5 * float(ref.abs().max()))  # the noise breaks the tie
    assert all(torch.equal(v, wide.state_dict()[k]) for k, v in ae.state_dict().items() if k.startswith("encoder."))
    with pytest.raises(TrainingError, match="multiple"):
        widen_decoder(ae, raw["model"], width + 1)


def test_widened_latents_start_as_the_same_autoencoder(trained_ae: Path) -> None:
    """The old latent channels come out unchanged, the new ones at their scale, and the decoder
    renders exactly what it did; a narrower or equal width is refused."""
    from lab.training.widen import widen_latents

    ae, raw = load_autoencoder(trained_ae)
    d = ae.cfg.latent_dim
    wide, wide_raw = widen_latents(ae, raw["model"], 2 * d)
    wide.eval()
    assert wide_raw["latent_dim"] == 2 * d and raw["model"]["latent_dim"] == d
    x = 0.3 * torch.randn(1, 2, 8192, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z0, _ = ae.encode(x, sample=False)
        z1, _ = wide.encode(x, sample=False)
        y0, y1 = ae.decode(z0), wide.decode(z1)
    assert z1.shape[1] == 2 * d and torch.allclose(z1[:, :d], z0, atol=1e-5)
    assert 0.2 * float(z0.abs().mean()) < float(z1[:, d:].abs().mean()) < 5 * float(z0.abs().mean())
    assert torch.allclose(y1, y0, atol=1e-5 * float(y0.abs().max()))
    with pytest.raises(TrainingError, match="larger"):
        widen_latents(ae, raw["model"], d)


def test_adversarial_training_widens_latents_and_resumes_from_float16_weights(
    corpus: Path, trained_ae: Path, tmp_path: Path
) -> None:
    """`latent_dim` + the discriminator: the run logs its adversarial terms, writes the
    discriminator beside the model (float16), and a run started from that folder alone (a fresh
    machine: no train_state.pt) picks the discriminator up instead of a new one."""
    from lab.training.autoencoder import DISC_FILE, _read_float

    ae, _ = load_autoencoder(trained_ae)
    cfg = AETrainConfig(
        steps=3,
        batch_size=2,
        crop_samples=8192,
        lr=1e-3,
        log_every=1,
        decoder_latents="mean",
        latent_dim=2 * ae.cfg.latent_dim,
        adv_weight=0.1,
        fm_weight=5.0,
        adv_start=1,
        disc_crop=0,
    )
    out = train_autoencoder(corpus, tmp_path / "gan", None, cfg, quiet=True, init_from=trained_ae)
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert rows[0]["adv"] == 0 and rows[-1]["adv"] > 0 and rows[-1]["disc"] > 0  # the decoder hears it from adv_start
    grown, raw = load_autoencoder(out)
    assert grown.cfg.latent_dim == 2 * ae.cfg.latent_dim == raw["model"]["latent_dim"]
    saved = _read_float(out / DISC_FILE)
    on = train_autoencoder(
        corpus,
        tmp_path / "moved",
        None,
        AETrainConfig(**{**cfg.__dict__, "lr": 0.0, "disc_lr": 0.0, "steps": 1}),
        quiet=True,
        init_from=out,
    )
    again = _read_float(on / DISC_FILE)
    assert all(torch.allclose(saved[k], again[k], atol=1e-3) for k in saved)
    with pytest.raises(TrainingError, match="init_from"):
        train_autoencoder(corpus, tmp_path / "x", AE_RAW, AETrainConfig(steps=1, latent_dim=64), quiet=True)
    with pytest.raises(TrainingError, match="longest window"):
        train_autoencoder(
            corpus, tmp_path / "y", AE_RAW, AETrainConfig(steps=1, crop_samples=4096, adv_weight=0.1), quiet=True
        )


def test_wider_decoder_on_the_mean_trains_and_packages_into_the_model(
    corpus: Path, trained_ae: Path, tmp_path: Path, base_dit: Path
) -> None:
    """`decoder_channels` + `decoder_latents="mean"` from a model folder: the encoder stays, the
    decoder grows, and `package_model` rebuilds the model around it (config and weights)."""
    before, _ = load_autoencoder(base_dit)
    width = before.cfg.decoder.channels
    cfg = AETrainConfig(
        steps=3,
        batch_size=2,
        crop_samples=4096,
        lr=1e-3,
        log_every=1,
        decoder_only=True,
        decoder_latents="mean",
        decoder_channels=2 * width,
    )
    dec = train_autoencoder(corpus, tmp_path / "dec", None, cfg, quiet=True, init_from=base_dit)
    after, raw = load_autoencoder(dec)
    assert raw["model"]["decoder"]["config"]["channels"] == 2 * width
    assert raw["longplay"]["train"]["decoder_latents"] == "mean"
    old, new = before.state_dict(), after.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith("encoder."))
    # Resuming rebuilds the widened shapes before loading its own checkpoint.
    train_autoencoder(
        corpus, tmp_path / "dec", None, AETrainConfig(**{**cfg.__dict__, "steps": 4}), quiet=True, init_from=base_dit
    )
    from lab import package_model

    shipped = load_model(package_model(base_dit, tmp_path / "ship", dec, half=False))
    assert shipped.pretransform.model.cfg.decoder.channels == 2 * width
    assert shipped.config.raw["model"]["pretransform"]["config"]["decoder"]["config"]["channels"] == 2 * width
    resumed, _ = load_autoencoder(dec)
    assert all(torch.equal(v, shipped.pretransform.model.state_dict()[k]) for k, v in resumed.state_dict().items())
    base_model = load_model(base_dit)
    assert all(
        torch.equal(v, shipped.state_dict()[k])
        for k, v in base_model.state_dict().items()
        if not k.startswith("pretransform.")
    )
    audio = Generator(shipped, device="cpu").render(RenderRequest("tone 110 Hz", seconds=0.5, steps=2, seed=1))[0].audio
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    # Only a decoder may differ; a new width needs a decoder-only run from weights.
    with pytest.raises(TrainingError, match="needs init_from and decoder_only"):
        train_autoencoder(corpus, tmp_path / "y", AE_RAW, AETrainConfig(steps=1, decoder_channels=64), quiet=True)


def test_time_limit_stops_with_a_checkpoint(corpus: Path, tmp_path: Path) -> None:
    out = train_autoencoder(
        corpus,
        tmp_path / "ae",
        AE_RAW,
        AETrainConfig(steps=1000, batch_size=1, crop_samples=4096, time_limit_s=1e-9),
        quiet=True,
    )
    assert load_autoencoder(out)[1]["longplay"]["step"] == 0


def test_sharded_encoding_equals_one_pass(corpus: Path, trained_ae: Path, tmp_path: Path) -> None:
    one = encode_corpus(corpus, trained_ae, tmp_path / "one", quiet=True)
    for i in range(2):
        two = encode_corpus(corpus, trained_ae, tmp_path / "two", quiet=True, shard=(i, 2))
    for f in sorted(one.glob("*.npy")):
        assert np.array_equal(np.load(f), np.load(two / f.name)), f.name
    assert not list(two.glob("*.tmp.npy"))
    with pytest.raises(TrainingError, match="shard 2 of 2"):
        encode_corpus(corpus, trained_ae, tmp_path / "x", quiet=True, shard=(2, 2))


def test_quiet_crops_are_redrawn(tmp_path: Path) -> None:
    import random

    from lab.training.data import AudioBank

    root = _synthetic_corpus(tmp_path / "c", n=2)
    sf.write(str(root / "audio" / "s1.flac"), np.zeros((SR, 2), np.float32), SR, subtype="PCM_24")
    bank = AudioBank(read_index(root, None), SR, 2)

    def silent_share(min_rms_db: float | None) -> float:
        rng = random.Random(0)
        return float(np.mean([not bank.crop(rng, 2048, min_rms_db).any() for _ in range(60)]))

    assert silent_share(None) > 0.3
    assert silent_share(-50.0) == 0.0


def test_encoding_some_kinds_and_training_on_what_was_encoded(corpus: Path, trained_ae: Path, tmp_path: Path) -> None:
    from lab.training.bank import LatentBank

    none = encode_corpus(corpus, trained_ae, tmp_path / "none", quiet=True, kinds=("stem:drums",))
    assert not list(none.glob("s*.npy"))
    with pytest.raises(FileNotFoundError, match="no latents"):
        LatentBank(corpus, none, 172.0)
    some = encode_corpus(corpus, trained_ae, tmp_path / "some", quiet=True, kinds=("mix",))
    (some / "s0.npy").unlink()  # an item left out: skipped, the others train
    bank = LatentBank(corpus, some, 172.0)
    assert [it.id for it in bank.items] == ["s1", "s2"] and bank.skipped == 1


def test_latent_batches_are_posterior_samples_or_the_mean(corpus: Path, trained_ae: Path, tmp_path: Path) -> None:
    import random

    from lab.training.bank import LatentBank

    bank = LatentBank(corpus, encode_corpus(corpus, trained_ae, tmp_path / "lat", quiet=True), 172.0, scale=2.0)
    frames = min(lat.shape[1] for lat in bank.latents)
    mean_a, metas = bank.batch(random.Random(5), 3, frames, sample=False)
    mean_b, _ = bank.batch(random.Random(5), 3, frames, sample=False)
    drawn, same_metas = bank.batch(random.Random(5), 3, frames)
    assert torch.equal(mean_a, mean_b) and metas == same_metas  # the same items and crops either way
    ids = [next(i for i, it in enumerate(bank.items) if it.seconds == m["seconds_total"]) for m in metas]
    for row, i, meta in zip(mean_a, ids, metas):
        mean = torch.from_numpy(bank.latents[i][: bank.latents[i].shape[0] // 2].astype(np.float32))
        start = round(meta["seconds_start"] * bank.rate)
        assert torch.allclose(row * 2.0, mean[:, start : start + frames])
    assert not torch.allclose(drawn, mean_a)  # samples scatter around the mean
    with pytest.raises(TrainingError, match="train_latents"):
        train_dit(
            tiny_config(),
            corpus,
            tmp_path / "lat",
            trained_ae,
            tmp_path / "x",
            DiTTrainConfig(steps=1, train_latents="median"),
            quiet=True,
        )


def test_a_stopped_dit_run_says_how_many_steps_it_took(
    corpus: Path, trained_ae: Path, tmp_path: Path, latents: Path
) -> None:
    """A run stopped early (Ctrl-C, `--minutes`) records the steps it took, beside the ones it was set."""
    calls = iter(range(100))
    folder = train_dit(
        tiny_config(window_seconds=1.5),
        corpus,
        latents,
        trained_ae,
        tmp_path / "dit",
        DiTTrainConfig(steps=50, batch_size=2, crop_frames=128),
        quiet=True,
        should_stop=lambda: next(calls) >= 3,
    )
    summary = json.loads((folder / "train_summary.json").read_text())
    assert summary["steps"] == 50 and summary["steps_done"] == 3


def test_warm_start_grows_the_tempo_grid(
    corpus: Path, trained_ae: Path, tmp_path: Path, latents: Path, base_dit: Path
) -> None:
    """A model trained without the grid warm-starts one with it: same outputs at step 0 (the new
    projection starts at zero), same latent scale, and training moves the new projection."""
    grid_config = tiny_config(window_seconds=1.5)
    grid_config["model"]["diffusion"]["config"]["beat_phase"] = True
    start = train_dit(
        grid_config,
        corpus,
        latents,
        trained_ae,
        tmp_path / "grown0",
        DiTTrainConfig(steps=0),
        quiet=True,
        init_from=base_dit,
    )
    old, new = load_model(base_dit), load_model(start)
    assert new.config.autoencoder.scale == old.config.autoencoder.scale
    req = RenderRequest("tone 220 Hz, clicks, 240 BPM", seconds=1.0, steps=3, seed=2)
    a = Generator(old, device="cpu").render(req)[0]
    b = Generator(new, device="cpu").render(req)[0]
    assert b.recipe["grid_bpm"] == 240.0 and np.array_equal(a.audio, b.audio)
    trained = train_dit(
        grid_config,
        corpus,
        latents,
        trained_ae,
        tmp_path / "grown",
        DiTTrainConfig(steps=4, batch_size=2, crop_frames=128, lr=1e-3, ema_decay=0.0, tempo_dropout=0.0, log_every=2),
        quiet=True,
        init_from=base_dit,
    )
    assert load_model(trained).model.model.to_beat_embed.weight.abs().sum() > 0
    # Another architecture does not fit, and the error names the first tensor that differs.
    wide = tiny_config(window_seconds=1.5, depth=3)
    with pytest.raises(TrainingError, match="does not fit the model being trained"):
        train_dit(
            wide,
            corpus,
            latents,
            trained_ae,
            tmp_path / "wide",
            DiTTrainConfig(steps=0),
            quiet=True,
            init_from=base_dit,
        )


def test_warm_start_adds_a_key_token_that_training_moves(
    corpus: Path, trained_ae: Path, tmp_path: Path, latents: Path, base_dit: Path
) -> None:
    """A model trained without the key token warm-starts one with it (`train dit --key`), and
    training on prompts that name keys moves the new projection and the key's path into every DiT
    token, which starts at zero."""
    keyed = tiny_config(window_seconds=1.5, key=True)
    runs = {}
    for steps in (0, 4):
        runs[steps] = train_dit(
            keyed,
            corpus,
            latents,
            trained_ae,
            tmp_path / f"keyed{steps}",
            DiTTrainConfig(steps=steps, batch_size=2, crop_frames=128, lr=1e-3, ema_decay=0.0, cfg_dropout=0.0),
            quiet=True,
            init_from=base_dit,
        )
    start, trained = (load_model(runs[s]).conditioner.conditioners["key"].proj.weight for s in (0, 4))
    assert not torch.allclose(start, trained)
    start, trained = (load_model(runs[s]).model.model.to_last_token_add.weight for s in (0, 4))
    assert not start.any() and trained.any()


def test_warm_start_grows_the_latent_channels_of_a_widened_autoencoder(
    corpus: Path, trained_ae: Path, tmp_path: Path, base_dit: Path
) -> None:
    """A DiT trained on C latent channels warm-starts one on 2C (an autoencoder grown by
    `latent_dim`): at step 0 it predicts for the old channels exactly what it did, and 0 for the
    new ones while they are 0; training then moves the new channels' weights."""
    from lab.training.autoencoder import ae_folder_config, save_autoencoder
    from lab.training.widen import widen_latents

    ae, raw = load_autoencoder(trained_ae)
    d = ae.cfg.latent_dim
    wide, wide_raw = widen_latents(ae, raw["model"], 2 * d)
    wide_dir = save_autoencoder(wide, tmp_path / "wide_ae", ae_folder_config(wide_raw, SR, 4096, {}))
    wide_latents = encode_corpus(corpus, wide_dir, tmp_path / "wide_latents", quiet=True)
    config = tiny_config(window_seconds=1.5)
    config["model"]["pretransform"]["config"] = {**wide_raw}
    config["model"]["diffusion"]["config"]["io_channels"] = 2 * d
    start = train_dit(
        config,
        corpus,
        wide_latents,
        wide_dir,
        tmp_path / "grown0",
        DiTTrainConfig(steps=0),
        quiet=True,
        init_from=base_dit,
    )
    old, new = load_model(base_dit).model.model.eval(), load_model(start).model.model.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, d, 64, generator=g)
    t, cond = torch.tensor([0.5]), torch.randn(1, 3, old.cfg.cond_token_dim, generator=g)
    glob = torch.randn(1, old.cfg.global_cond_dim, generator=g)
    with torch.no_grad():
        a = old(x, t, cond, glob)
        b = new(torch.cat([x, torch.zeros_like(x)], 1), t, cond, glob)
    assert torch.allclose(b[:, :d], a, atol=1e-5) and torch.equal(b[:, d:], torch.zeros_like(a))
    trained = train_dit(
        config,
        corpus,
        wide_latents,
        wide_dir,
        tmp_path / "grown",
        DiTTrainConfig(steps=3, batch_size=2, crop_frames=128, lr=1e-3, ema_decay=0.0, log_every=1),
        quiet=True,
        init_from=base_dit,
    )
    w = load_model(trained).model.model.transformer.project_out.weight
    assert w[d * old.cfg.patch_size :].abs().sum() > 0


def test_fresh_prompts_come_from_metadata_when_it_has_the_fields(tmp_path: Path) -> None:
    import random

    from lab.training.bank import LatentBank
    from lab.training.data import CorpusItem

    meta = {
        "genre": "house",
        "bpm": 124,
        "key": "A minor",
        "instruments": ["Rhodes", "Sub Bass"],
        "moods": ["warm"],
        "stems": {"drums": "Drums"},
        "has_drums": True,
    }
    item = CorpusItem("a", tmp_path / "a.flac", 10.0, "train", "mix", ["stored"], meta)
    rng = random.Random(0)
    prompts = {LatentBank._prompt(item, rng, 1.0) for _ in range(20)}
    assert "stored" not in prompts and len(prompts) > 10
    assert {LatentBank._prompt(item, rng, 0.0) for _ in range(5)} == {"stored"}
    bare = CorpusItem("b", tmp_path / "b.flac", 10.0, "train", "mix", ["mine"], {"bpm": 90})
    assert LatentBank._prompt(bare, rng, 1.0) == "mine"  # a user's corpus without Longplay metadata


def test_mel_term_is_logged_and_trains(corpus: Path, tmp_path: Path) -> None:
    train_autoencoder(
        corpus,
        tmp_path,
        AE_RAW,
        AETrainConfig(steps=12, batch_size=2, crop_samples=4096, lr=1e-3, log_every=2, mel_weight=1.0),
        quiet=True,
    )
    mel = _losses(tmp_path, "mel")
    total = _losses(tmp_path, "loss")
    stft = _losses(tmp_path, "stft")
    assert all(m > 0 for m in mel) and mel[-1] < mel[0]
    assert total[0] == pytest.approx(stft[0] + mel[0], rel=0.01)  # + the tiny KL term


def test_frame_span_term_is_logged_and_trains(corpus: Path, tmp_path: Path) -> None:
    train_autoencoder(
        corpus,
        tmp_path,
        AE_RAW,
        AETrainConfig(steps=12, batch_size=2, crop_samples=8192, lr=1e-3, log_every=2, frame_span_weight=1.0),
        quiet=True,
    )
    span, total, stft = _losses(tmp_path, "span"), _losses(tmp_path, "loss"), _losses(tmp_path, "stft")
    assert all(v > 0 for v in span) and span[-1] < span[0]
    assert total[0] == pytest.approx(stft[0] + span[0], rel=0.01)  # + the tiny KL term


def test_deterministic_autoencoder_with_a_waveform_term_trains_the_encoder(corpus: Path, tmp_path: Path) -> None:
    """decoder_latents="mean" with the encoder training: the decoder sees the posterior mean, the
    KL term still counts (it keeps the mean's scale), and the encoder moves."""
    base = train_autoencoder(
        corpus, tmp_path / "base", AE_RAW, AETrainConfig(steps=1, batch_size=1, crop_samples=4096), quiet=True
    )
    out = train_autoencoder(
        corpus,
        tmp_path / "det",
        None,
        AETrainConfig(
            steps=8, batch_size=2, crop_samples=4096, lr=1e-3, log_every=2, decoder_latents="mean", wave_weight=1.0
        ),
        quiet=True,
        init_from=base,
    )
    wave, kl = _losses(out, "wave"), _losses(out, "kl")
    assert all(w > 0 for w in wave) and all(k > 0 for k in kl)
    old, new = load_autoencoder(base)[0].state_dict(), load_autoencoder(out)[0].state_dict()
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("encoder."))


def test_frame_span_loss_hears_a_decoder_that_repeats_every_hop() -> None:
    """A tone rendered hop by hop alike (a buzz on the latent rate's harmonics) against the same
    tone 2 dB too quiet: the paper's windows (<= one hop) put the buzz ~3x behind, the frame-span
    windows ~20x."""
    from lab.training.autoencoder import FrameSpanSTFTLoss, StereoSTFTLoss

    hop, n = 2048, 2048 * 32
    t = np.arange(n) / 44100
    x = torch.from_numpy(np.stack([0.3 * np.sin(2 * np.pi * 441.4 * t)] * 2).astype(np.float32))[None]
    buzz = x[..., 3 * hop : 4 * hop].repeat(1, 1, 32)
    quiet = x * 10 ** (-2 / 20)
    span, paper = FrameSpanSTFTLoss(hop), StereoSTFTLoss(44100)
    assert float(span(buzz, x)) > 5 * float(span(quiet, x))
    assert float(span(buzz, x)) / float(span(quiet, x)) > 2 * float(paper(buzz, x)) / float(paper(quiet, x))


def test_a_model_folder_serves_as_the_autoencoder(
    corpus: Path, trained_ae: Path, tmp_path: Path, latents: Path, base_dit: Path
) -> None:
    """Fine-tuning a shipped model needs no separate autoencoder folder: `load_autoencoder` takes
    a whole model's pretransform, weight for weight, and encodes the corpus the same way."""
    a, _ = load_autoencoder(trained_ae)
    b, raw = load_autoencoder(base_dit)
    assert raw["model_type"] == "autoencoder" and raw["model"] == load_autoencoder(trained_ae)[1]["model"]
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    again = encode_corpus(corpus, base_dit, tmp_path / "latents2", quiet=True)
    for f in latents.glob("s*.npy"):
        assert np.array_equal(np.load(f), np.load(again / f.name)), f.name
    with pytest.raises(ModelLoadError, match="not found"):
        load_autoencoder(tmp_path / "nowhere")
