"""The evaluation suite measures what it says: properties on signals whose answer is known."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("librosa", reason="the eval extra (librosa, mir_eval, matplotlib) is not installed")
pytest.importorskip("mir_eval", reason="the eval extra is not installed")
pytest.importorskip("matplotlib", reason="the eval extra is not installed")

from lab.evaluation import (  # noqa: E402
    beatbox,
    detect_onsets,
    drums_present,
    estimate_tempo,
    onset_f_measure,
    percussive_ratio,
    reconstruction_metrics,
    repetition_score,
    run_eval,
    self_similarity,
    tempo_error,
)
from lab.evaluation.metrics import hop_periodic_db, tone_fidelity, tone_sweep  # noqa: E402
from lab.evaluation.music import window_levels  # noqa: E402

SR = 22050  # the analysis rate: no resampling in the music tests


def _clicks(bpm: float, seconds: float, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """A click track (10 ms decaying noise bursts on every beat) -> (mono audio, click times)."""
    rng = np.random.default_rng(1)
    times = np.arange(0.0, seconds - 0.05, 60.0 / bpm)
    audio = np.zeros(int(seconds * sr), dtype=np.float32)
    burst = (rng.standard_normal(int(0.01 * sr)) * np.exp(-np.linspace(0, 6, int(0.01 * sr)))).astype(np.float32)
    for t in times:
        i = int(round(t * sr))
        audio[i : i + burst.size] += 0.8 * burst
    return audio, times


def _tones(pitches: list[list[int]], note_seconds: float, sr: int = SR) -> np.ndarray:
    """A sequence of sine chords (MIDI pitches), one per `note_seconds`, with short fades."""
    n = int(note_seconds * sr)
    t = np.arange(n) / sr
    env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    out = [
        sum(np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t) for p in chord) * env / len(chord) for chord in pitches
    ]
    return (0.3 * np.concatenate(out)).astype(np.float32)


# ------------------------------------------------------------------ reconstruction metrics
def test_identical_audio_scores_perfectly_and_noise_scores_worse() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(44100) / 44100
    x = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)]).astype(np.float32) * 0.3
    x += 0.01 * rng.standard_normal(x.shape).astype(np.float32)
    same = reconstruction_metrics(x, x.copy(), 44100)
    assert same.stft < 1e-3 and same.mel < 1e-3 and same.sisdr > 60
    light = reconstruction_metrics(x, x + 0.01 * rng.standard_normal(x.shape).astype(np.float32), 44100)
    heavy = reconstruction_metrics(x, x + 0.1 * rng.standard_normal(x.shape).astype(np.float32), 44100)
    assert same.stft < light.stft < heavy.stft
    assert same.mel < light.mel < heavy.mel
    assert same.sisdr > light.sisdr > heavy.sisdr
    assert 20 < light.sisdr < 35 and 0 < heavy.sisdr < 15  # signal power ~0.045 vs noise 1e-4 / 1e-2


def _repeat_each_hop(x, hop: int = 2048):
    """A decoder that renders every latent frame alike: each hop of `x` [B, C, N] replaced by its
    fourth hop (the fault `hop_periodic_db` and `tone_fidelity` exist to see)."""
    frames = x.shape[-1] // hop
    return x[..., 3 * hop : 4 * hop].repeat(1, 1, frames)


def test_hop_periodic_energy_is_zero_db_for_a_repeated_hop_and_low_for_noise() -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 2048 * 100))
    assert -16.0 < hop_periodic_db(noise, 2048) < -13.5  # 1/33 of white noise passes the comb
    assert hop_periodic_db(np.tile(noise[:, :2048], (1, 100)), 2048) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="two hops"):
        hop_periodic_db(noise[:, :3000], 2048)


def test_tone_fidelity_is_one_for_the_identity_and_zero_for_a_hop_periodic_decoder() -> None:
    import torch

    ident = tone_fidelity(lambda x: x, 44100, 2048)
    assert ident["tones_hz"] == pytest.approx([118.4, 226.1, 441.4, 872.1], abs=0.1)
    assert ident["mean"] > 0.999
    hop_periodic = tone_fidelity(_repeat_each_hop, 44100, 2048)
    assert hop_periodic["mean"] < 1e-3
    # the buzz target on tones (<= -20 dB): a sine half-way between the latent rate's
    # harmonics flips sign every hop (1/33 of it passes the comb, -30 dB); a repeated hop is all buzz
    assert max(ident["hop_periodic_db"]) < -29 and ident["hop_periodic_db_mean"] < -29
    assert min(hop_periodic["hop_periodic_db"]) > -0.1
    # the wider sweep: 16 sines over 55-1,760 Hz at every offset from the harmonics but the
    # harmonics themselves, scored alike (identity 1, a repeated hop ~0)
    sweep = tone_sweep(lambda x: x, 44100, 2048)
    offsets = np.array(sweep["tones_hz"]) / (44100 / 2048) % 1
    assert len(offsets) == 16 and offsets.min() > 0.24 and offsets.max() < 0.76 and np.ptp(offsets) > 0.45
    assert 45 < sweep["tones_hz"][0] < 65 and 1700 < sweep["tones_hz"][-1] < 1780
    assert sweep["mean"] > 0.999 and tone_sweep(_repeat_each_hop, 44100, 2048)["mean"] < 0.01
    # a detuned decoder (every tone 1 % sharp: resampled) misses the 3 Hz band above 300 Hz
    detuned = tone_fidelity(
        lambda x: torch.from_numpy(
            np.ascontiguousarray(
                np.interp(np.arange(x.shape[-1]) * 1.01, np.arange(x.shape[-1]), x[0, 0].numpy())[None, None].repeat(
                    2, 1
                ),
                dtype=np.float32,
            )
        ),
        44100,
        2048,
    )
    assert detuned["share"][0] > 0.5 and max(detuned["share"][2:]) < 0.01


def test_comb_share_hears_the_buzz_and_not_a_tone_between_its_teeth() -> None:
    from lab.evaluation.metrics import comb_share

    sr, hop = 44100, 2048
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((2, 10 * sr))
    assert 0.02 < comb_share(noise, sr, hop) < 0.08  # a flat spectrum: the teeth's width over their spacing
    t = np.arange(10 * sr) / sr
    between = np.sin(2 * np.pi * 441.4 * t)  # half-way between the 20th and 21st multiple of 21.53 Hz
    assert comb_share(between, sr, hop) < 0.01
    assert comb_share(_repeat_each_hop(torch_tensor(noise[None]))[0].numpy(), sr, hop) > 0.9


def torch_tensor(a: np.ndarray):  # noqa: ANN201 - test helper
    import torch

    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="FluidSynth is not installed (make apt)")
def test_note_fidelity_is_one_for_the_identity_and_low_for_a_hop_periodic_decoder() -> None:
    """Held GM notes: the identity keeps every note on its partials; a decoder that repeats each
    hop (the buzz) keeps little of any; a half-tone detune (partials moved) keeps little too."""
    import torch

    from lab.evaluation.notes import NOTE_PROBES, WIDE_NOTE_PROBES, note_fidelity

    ident = note_fidelity(lambda x: x, 44100, 2048)
    assert len(ident["notes"]) == sum(len(n) for _, _, n in NOTE_PROBES)
    assert ident["mean"] > 0.999 and min(r["input"] for r in ident["notes"]) > 0.2  # each note has harmonics to keep
    assert note_fidelity(_repeat_each_hop, 44100, 2048)["mean"] < 0.25
    # the wider probe (32 other notes of the same programs) holds the same: the identity keeps all
    wide = note_fidelity(lambda x: x, 44100, 2048, probes=WIDE_NOTE_PROBES)
    assert (
        len(wide["notes"]) == 32 and wide["mean"] > 0.999 and set(wide["by_instrument"]) == set(ident["by_instrument"])
    )
    assert min(r["input"] for r in wide["notes"]) > 0.2
    semitone = 2 ** (1 / 12)
    shifted = note_fidelity(
        lambda x: torch.from_numpy(
            np.ascontiguousarray(
                np.stack(
                    [np.interp(np.arange(x.shape[-1]) * semitone, np.arange(x.shape[-1]), c) for c in x[0].numpy()]
                )[None],
                dtype=np.float32,
            )
        ),
        44100,
        2048,
    )
    assert shifted["mean"] < 0.3


# ------------------------------------------------------------------ tempo
@pytest.mark.parametrize("bpm", [100.0, 128.0])
def test_tempo_of_a_click_track_within_two_percent(bpm: float) -> None:
    audio, _ = _clicks(bpm, 10.0)
    assert tempo_error(estimate_tempo(audio, SR), bpm).relative_error < 0.02


def test_tempo_error_names_half_and_double_time() -> None:
    assert tempo_error(121.0, 120.0).octave == "exact"
    half = tempo_error(60.5, 120.0)
    assert half.octave == "half" and half.relative_error == pytest.approx(0.496, abs=1e-3)
    assert half.octave_error == pytest.approx(0.5 / 60, abs=1e-6)
    assert tempo_error(238.0, 120.0).octave == "double"
    assert tempo_error(90.0, 120.0).octave == "none"
    with pytest.raises(ValueError):
        tempo_error(100.0, 0.0)


# ------------------------------------------------------------------ percussiveness and onsets
def test_percussive_ratio_says_drums_for_clicks_not_for_a_chord() -> None:
    clicks, _ = _clicks(120.0, 4.0)
    chord = _tones([[60, 64, 67]], 4.0)
    hit, sustained = percussive_ratio(clicks, SR), percussive_ratio(chord, SR)
    assert hit > 0.8 and sustained < 0.05
    assert drums_present(hit) and not drums_present(sustained)
    # Hiss under music (a decoder's noise floor) is neither sustained nor a click: mostly the
    # residual, not a beat; the two-way split (margin 1) counts ~5x more of it as percussive.
    hiss = 0.1 * np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32)
    assert not drums_present(percussive_ratio(chord + hiss, SR))
    assert percussive_ratio(hiss, SR, margin=1.0) > 4 * percussive_ratio(hiss, SR)
    eighths, _ = _clicks(240.0, 4.0)  # a beat under the chord
    assert drums_present(percussive_ratio(chord + eighths, SR))
    assert percussive_ratio(np.zeros(SR, np.float32), SR) == 0.0


def test_window_levels_show_a_render_that_falls_silent() -> None:
    sr = 1000
    loud = 0.5 * np.sin(np.linspace(0, 400 * np.pi, 20 * sr))  # RMS 0.354: -9.0 dBFS
    audio = np.stack([np.concatenate([loud, 1e-3 * loud])] * 2)
    levels = window_levels(audio, sr, 10.0)
    assert (
        levels.shape == (4,)
        and np.allclose(levels[:2], -9.03, atol=0.05)
        and np.allclose(levels[2:], -69.03, atol=0.05)
    )
    assert window_levels(audio[:, :500], sr, 10.0).shape == (1,)  # shorter than a window: one


def test_onset_f_measure_is_one_for_identical_onsets_and_drops_when_shifted() -> None:
    ref = np.arange(0.5, 8.0, 0.5)
    assert onset_f_measure(ref, ref).f_measure == 1.0
    assert onset_f_measure(ref, ref + 0.03).f_measure == 1.0  # inside +-50 ms
    assert onset_f_measure(ref, ref + 0.08).f_measure == 0.0
    assert onset_f_measure(ref, np.concatenate([ref, ref + 0.25])).precision == pytest.approx(0.5)
    assert onset_f_measure(ref, np.zeros(0)).f_measure == 0.0


def test_detected_onsets_of_a_click_track_match_its_clicks() -> None:
    audio, times = _clicks(110.0, 6.0)
    assert onset_f_measure(times, detect_onsets(audio, SR)).f_measure >= 0.9


# ------------------------------------------------------------------ structure
def test_repeated_section_scores_higher_than_no_repetition() -> None:
    rng = np.random.default_rng(3)

    def section() -> list[list[int]]:  # 10 s of random triads, 0.5 s each
        return [[int(r), int(r) + 4, int(r) + 7] for r in rng.integers(48, 72, size=20)]

    a, b, c = section(), section(), section()
    repeating = self_similarity(_tones(a + b + a, 0.5), SR)
    through = self_similarity(_tones(a + b + c, 0.5), SR)
    rep, none = repetition_score(repeating), repetition_score(through)
    assert rep.fraction is not None and none.fraction is not None and rep.stripe is not None and none.stripe is not None
    assert rep.fraction > 0.5 and none.fraction < 0.1  # A at 0-10 s and 20-30 s: two thirds of the frames
    assert rep.stripe > none.stripe
    short = repetition_score(self_similarity(_tones(a[:8], 0.5), SR))  # 4 s: nothing 8 s away
    assert short.fraction is None and short.stripe is None


# ------------------------------------------------------------------ beatbox
@pytest.mark.skipif(not beatbox.espeak_available(), reason="espeak-ng is not installed (make apt)")
def test_beatbox_clip_has_onsets_where_intended() -> None:
    clip = beatbox.make_beatbox(bpm=100.0, seconds=4.0, sample_rate=SR, channels=1)
    assert clip.audio.shape == (1, 4 * SR)
    assert np.allclose(clip.onsets, np.arange(14) * 0.3)  # eighth notes at 100 BPM
    assert clip.syllables[:4] == beatbox.DEFAULT_PATTERN
    assert onset_f_measure(clip.onsets, detect_onsets(clip.audio, SR)).f_measure >= 0.9


# ------------------------------------------------------------------ end to end
def _tiny_corpus(root: Path) -> Path:
    import soundfile as sf

    (root / "audio").mkdir(parents=True)
    lines = []
    for i, (split, bpm) in enumerate([("train", 100), ("test", 120), ("test", 90)]):
        clicks, _ = _clicks(bpm, 3.0, 44100)
        audio = clicks + _tones([[57, 60, 64], [55, 59, 62], [53, 57, 60]], 1.0, 44100)
        sf.write(root / "audio" / f"s{i}.flac", np.stack([audio, audio], axis=1), 44100)
        lines.append(
            json.dumps(
                {
                    "id": f"s{i}",
                    "path": f"audio/s{i}.flac",
                    "seconds": 3.0,
                    "split": split,
                    "kind": "mix",
                    "prompts": [f"house, {bpm} BPM"],
                    "metadata": {"genre": "house", "bpm": bpm},
                }
            )
        )
    # A held-out stem without drums.
    chords = _tones([[57, 60, 64], [55, 59, 62], [53, 57, 60]], 1.0, 44100)
    sf.write(root / "audio" / "s1-chords.flac", np.stack([chords, chords], axis=1), 44100)
    lines.append(
        json.dumps(
            {
                "id": "s1-chords",
                "path": "audio/s1-chords.flac",
                "seconds": 3.0,
                "split": "test",
                "kind": "stem:chords",
                "prompts": ["chords only"],
                "metadata": {"genre": "house"},
            }
        )
    )
    # Song s1 again without its clicks (`longplay corpus --drumless`): the reference for "no drums".
    lines.append(
        json.dumps(
            {
                "id": "s1-nodrums",
                "path": "audio/s1-chords.flac",
                "seconds": 3.0,
                "split": "test",
                "kind": "mix:nodrums",
                "prompts": ["house, no drums"],
                "metadata": {"genre": "house", "bpm": 120, "has_drums": False, "drums_removed": True},
            }
        )
    )
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_run_eval_quick_writes_json_markdown_and_pngs(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    report = run_eval(tiny_model_dir, _tiny_corpus(tmp_path / "corpus"), out, quick=True)
    for name in ("eval.json", "eval.md", "ssm_binary.png", "ssm_cosine.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert json.loads((out / "eval.json").read_text(encoding="utf-8"))["quick"] is True
    expected_skips = set() if beatbox.espeak_available() else {"audio_to_audio"}
    skipped = {
        k for k in ("autoencoder", "prompt_adherence", "structure", "audio_to_audio", "speed") if "skipped" in report[k]
    }
    assert skipped == expected_skips, {k: report[k].get("skipped") for k in skipped}
    ae = report["autoencoder"]
    assert ae["n"] == 2 and all(np.isfinite(ae[k]) for k in ("stft", "mel", "sisdr"))
    assert ae["hop_periodic_db"] <= 0 and ae["reference_hop_periodic_db"] <= 0
    assert len(ae["tones"]["share"]) == 4 and 0 <= ae["tones"]["mean"] <= 1
    assert report["prompt_adherence"]["tempo"]["n"] == 1
    sweep = report["prompt_adherence"]["tempo_sweep"]
    assert sweep["n"] == 1 and sweep["items"][0]["prompt"] == "house, 70 BPM" and sweep["items"][0]["target"] == 70
    drums = report["prompt_adherence"]["drums"]
    assert [g["items"][0]["prompt"] for g in drums.values()] == [
        "house, 120 BPM, drums",
        "ambient, no drums",
        "house, 120 BPM, no drums",
    ]
    ref = report["prompt_adherence"]["drum_free_reference"]
    assert [r["id"] for r in ref["items"]] == ["s1-nodrums"] and not drums_present(ref["mean_original"])
    assert ref["items"][0]["with_drums_original"] > 5 * ref["items"][0]["original"]  # its twin, s1, has the clicks
    assert ref["share_below_with_drums_autoencoded"] in (0.0, 1.0)
    assert drums["drums_removed"]["share_below_drums"] in (0.0, 1.0)
    assert np.isfinite(ref["mean_autoencoded"])
    assert report["speed"]["items"][0]["wall_seconds"] > 0
    if beatbox.espeak_available():  # the held-out beatbox set (issue 20): one take in quick mode
        held = report["audio_to_audio"]["held_out"]
        assert held["takes"] == 1 and held["apart_from_return"] in (0, 1) and held["above_floor"] in (0, 1)
        item = held["items"][0]
        assert held["apart_from_return"] == (item["mel_from_return"] > item["mel_floor"])
        assert "not the input returned: takes whose output is further" in (out / "eval.md").read_text("utf-8")
    md = (out / "eval.md").read_text(encoding="utf-8")
    assert "| STFT distance ↓ |" in md and "| 1.19 |" in md and "7.14" in md
    assert "held-out audio without drums: as is → through the autoencoder" in md
    assert "| energy repeating every latent hop (dB; held-out audio itself) |" in md
    assert "| tone fidelity: energy at the pitch of sines at " in md
    assert "| energy repeating every latent hop, those sines (dB; the sines themselves -30) ↓ |" in md
    assert "| same as tone fidelity, 16 sines over 55-1,760 Hz, off the latent rate's harmonics ↑ |" in md
    assert "| share judged 'drums present': drums / ambient, no drums / genre, no drums |" in md
    assert "| tempo sweep, 1 prompts at 70-175 BPM over 8 genres: median error / matches |" in md
    assert "| level of 10 s windows, median / quietest (dBFS): render |" in md
    assert "SSMs: [ssm_binary.png](ssm_binary.png), [ssm_cosine.png](ssm_cosine.png)" in md
    assert report["model"] == str(tiny_model_dir) and f"Model `{tiny_model_dir}`" in md
    assert report["structure"]["corpus"]["median_level_db"] < 0
