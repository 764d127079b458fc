"""`longplay train …` from the command line, CI-sized: every stage runs, a shipped model can be
fine-tuned without repeating its architecture or having its autoencoder folder, and a bad
request is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

import engine  # noqa: E402
from bridge.cli import main  # noqa: E402
from engine import load_model  # noqa: E402
from tests.lab.test_training import _synthetic_corpus  # noqa: E402


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_every_training_stage_runs_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = str(_synthetic_corpus(tmp_path / "corpus"))
    ae, latents = str(tmp_path / "ae"), str(tmp_path / "latents")
    assert (
        main(
            [
                "train",
                "ae",
                "--corpus",
                corpus,
                "--out",
                ae,
                "--steps",
                "2",
                "--batch",
                "1",
                "--crop",
                "16384",
                "--channels",
                "4",
                "--latent-dim",
                "4",
            ]
        )
        == 0
    )
    assert main(["train", "encode", "--corpus", corpus, "--ae", ae, "--out", latents]) == 0
    assert sorted(p.name for p in Path(latents).glob("s*.npy")) == [f"s{i}.npy" for i in range(4)]
    assert (
        main(
            [
                "train",
                "dit",
                "--corpus",
                corpus,
                "--latents",
                latents,
                "--ae",
                ae,
                "--out",
                str(tmp_path / "dit"),
                "--steps",
                "2",
                "--batch",
                "2",
                "--window",
                "3",
                "--width",
                "32",
                "--depth",
                "2",
                "--heads",
                "1",
                "--patch",
                "2",
                "--attn-window",
                "4",
                "--global-layers",
                "1",
            ]
        )
        == 0
    )
    base = tmp_path / "dit" / "model"
    capsys.readouterr()

    # Fine-tuning: the model folder is the autoencoder too, its architecture needs no flags, and
    # --beat-phase grows the tempo grid on top of it.
    assert (
        main(
            [
                "train",
                "dit",
                "--corpus",
                corpus,
                "--latents",
                latents,
                "--ae",
                str(base),
                "--out",
                str(tmp_path / "ft"),
                "--init-from",
                str(base),
                "--beat-phase",
                "--steps",
                "1",
                "--batch",
                "1",
                "--train-latents",
                "mean",
            ]
        )
        == 0
    )
    old, new = load_model(base).config, load_model(tmp_path / "ft" / "model").config
    assert (
        new.dit.embed_dim,
        new.dit.depth,
        new.dit.num_heads,
        new.dit.patch_size,
        new.dit.attn_window,
        tuple(new.dit.global_layers),
    ) == (32, 2, 1, 2, 4, (1,))
    assert new.window_frames == old.window_frames and new.dit.beat_phase and not old.dit.beat_phase
    assert new.autoencoder.scale == old.autoencoder.scale
    assert new.raw["longplay"]["train"]["train_latents"] == "mean"
    assert old.raw["longplay"]["train"]["train_latents"] == "sample"  # the paper's, when nothing says otherwise
    # Fine-tuning a model that learned posterior means keeps to them unless told otherwise.
    for extra, want in (([], "mean"), (["--train-latents", "sample"], "sample")):
        out = tmp_path / f"ft-{want}"
        assert (
            main(
                [
                    "train",
                    "dit",
                    "--corpus",
                    corpus,
                    "--latents",
                    latents,
                    "--ae",
                    str(base),
                    "--out",
                    str(out),
                    "--init-from",
                    str(tmp_path / "ft" / "model"),
                    "--steps",
                    "1",
                    "--batch",
                    "1",
                    *extra,
                ]
            )
            == 0
        )
        assert load_model(out / "model").config.raw["longplay"]["train"]["train_latents"] == want

    # A flag that changes the shape is refused, naming the tensor that does not fit.
    assert (
        main(
            [
                "train",
                "dit",
                "--corpus",
                corpus,
                "--latents",
                latents,
                "--ae",
                str(base),
                "--out",
                str(tmp_path / "bad"),
                "--init-from",
                str(base),
                "--width",
                "64",
                "--steps",
                "1",
            ]
        )
        != 0
    )
    assert "does not fit the model being trained" in _err(capsys)
    # So is a folder that holds no diffusion model, and a model name that is nowhere.
    assert (
        main(
            [
                "train",
                "dit",
                "--corpus",
                corpus,
                "--latents",
                latents,
                "--ae",
                ae,
                "--out",
                str(tmp_path / "bad2"),
                "--init-from",
                ae,
                "--steps",
                "1",
            ]
        )
        != 0
    )
    assert "not a diffusion model folder" in _err(capsys)
    assert main(["train", "encode", "--corpus", corpus, "--ae", "no-such-model", "--out", latents]) != 0
    assert "'no-such-model' not found" in _err(capsys)

    # The shipped model's decoder trains on from the model folder alone (here twice as wide, on the
    # posterior mean its DiT learned), and swaps back in.
    dec = str(tmp_path / "dec")
    assert (
        main(
            [
                "train",
                "ae",
                "--corpus",
                corpus,
                "--out",
                dec,
                "--init-from",
                str(tmp_path / "ft" / "model"),
                "--decoder-only",
                "--steps",
                "1",
                "--batch",
                "1",
                "--crop",
                "16384",
                "--decoder-channels",
                "8",
                "--kl-weight",
                "1e-5",
            ]
        )
        == 0
    )
    assert engine.read_config(Path(dec))["longplay"]["train"]["decoder_latents"] == "mean"
    ship = tmp_path / "ship"
    assert (
        main(
            [
                "train",
                "package",
                "--model",
                str(tmp_path / "ft" / "model"),
                "--out",
                str(ship),
                "--ae",
                dec,
                "--default-steps",
                "2",
            ]
        )
        == 0
    )
    assert load_model(ship).pretransform.model.cfg.decoder.channels == 8
    wav = tmp_path / "out.wav"
    assert main(["generate", "tone 220 Hz, 240 BPM", "--model", str(ship), "--seconds", "1", "--out", str(wav)]) == 0
    assert wav.is_file() and wav.with_suffix(".json").is_file()
