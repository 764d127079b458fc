"""Audio input (issue 17, findings 12-13): memory follows what a request uses, not what a file
declares, and a source longer than the model's window renders from its first window.

Real files through a real worker thread. The long sources are sparse files (a WAV header and a
hole the kernel reads as silence), so a three-hour recording costs no disk and no time to write.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from bridge.errors import UsageError
from bridge.queue import JobQueue
from engine import AudioInputError, build_model, load_audio, save_model, tiny_config

from .conftest import wait_for

MakeQueue = Callable[..., JobQueue]


def sparse_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A 16-bit mono PCM WAV of ``seconds`` of silence whose samples are a hole in the file."""
    data = int(seconds * rate) * 2
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + data)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data)
    )
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data)
    return path


def _transform(path: Path, **values: Any) -> dict[str, Any]:
    return {"prompt": "drums", "source_path": str(path), "strength": 0.5, "steps": 2, **values}


def _done(queue: JobQueue, job_id: str) -> Any:
    return wait_for(lambda: (j := queue.get(job_id)) is not None and j.is_final and j, what=f"{job_id} to finish")


@pytest.fixture
def door(tiny_model_dir: Path, tmp_path: Path) -> JobQueue:
    """A queue that is never started: only the door's checks run, nothing is ever decoded."""
    return JobQueue(tmp_path / "door.sqlite3", model=tiny_model_dir, device="cpu", out_dir=tmp_path / "out")


@pytest.mark.parametrize("rate", [4, 1000, 384_000])
def test_sample_rates_outside_the_range_are_refused_before_decoding(door: JobQueue, tmp_path: Path, rate: int) -> None:
    """A 16 KB WAV declaring 4 Hz is 2,000 s long: resampled to 44.1 kHz it took 1.9 GB."""
    from engine import SOURCE_RATE_RANGE

    lo, hi = SOURCE_RATE_RANGE
    path = tmp_path / f"rate{rate}.wav"
    sf.write(str(path), np.zeros((8000, 1), np.float32), rate, subtype="PCM_16")
    with pytest.raises(UsageError) as err:
        door.submit(_transform(path), "slow")
    assert err.value.code == 400 and "sample rate" in err.value.message and f"{rate} Hz" in err.value.message
    assert door.get("slow") is None
    # The engine refuses it too (formats whose header the door cannot read get here), from the header.
    with pytest.raises(AudioInputError, match=f"sample rate of {rate} Hz"):
        load_audio(path)
    assert lo == 8000 and hi == 192_000  # documented in docs/osc.md
    # And the app's preview says why, instead of "not an audio file".
    from bridge.media import read_peaks

    with pytest.raises(AudioInputError, match=f"sample rate of {rate} Hz"):
        read_peaks(path)


def test_sources_longer_than_the_limit_are_refused_before_decoding(door: JobQueue, tmp_path: Path) -> None:
    from engine import MAX_SOURCE_SECONDS

    path = sparse_wav(tmp_path / "marathon.wav", MAX_SOURCE_SECONDS + 60)
    with pytest.raises(UsageError) as err:
        door.submit(_transform(path), "marathon")
    assert err.value.code == 400 and "longer than" in err.value.message
    with pytest.raises(AudioInputError, match="longer than"):
        load_audio(path)


def test_the_engine_reads_only_the_frames_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "ramp.wav"
    ramp = np.linspace(-1, 1, 8000 * 60, dtype=np.float32)[:, None].repeat(2, axis=1)  # [N, 2], 60 s at 8 kHz
    sf.write(str(path), ramp, 8000, subtype="FLOAT")
    audio, rate = load_audio(path, seconds=2.5)
    assert rate == 8000 and audio.shape == (2, 20000) and np.array_equal(audio, ramp[:20000].T)
    whole, _ = load_audio(path)
    assert whole.shape == (2, 480000)
    # More channels than the caller keeps are mixed to mono while reading.
    many = tmp_path / "many.wav"
    sf.write(str(many), np.ones((8000, 6), np.float32) * np.arange(6, dtype=np.float32) / 10, 8000, subtype="FLOAT")
    mixed, _ = load_audio(many, seconds=0.5, channels=2)
    assert mixed.shape == (1, 4000) and np.allclose(mixed, 0.25)


def test_a_long_source_costs_its_window_not_its_length(make_queue: MakeQueue, tmp_path: Path) -> None:
    """A 3-hour 8 kHz WAV took the server to 8.6 GB: it was decoded and resampled whole. Ten
    minutes show the same (the whole file would be ~300 MB of numpy arrays; the window is 3 s)."""
    queue = make_queue()
    queue.submit(_transform(sparse_wav(tmp_path / "short.wav", 1.0)), "warm-up")  # lazy imports are not the cost
    assert _done(queue, "warm-up").state == "done"
    path = sparse_wav(tmp_path / "set.wav", 600)
    tracemalloc.start()
    try:
        queue.submit(_transform(path), "long")
        job = _done(queue, "long")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert job.state == "done", job.error
    assert sf.info(job.files[0].path).duration == pytest.approx(queue.limits.window, abs=1e-3)
    assert peak < 64e6, f"{peak / 1e6:.0f} MB traced while transforming 3 s of a 10-minute file"


@pytest.fixture(scope="module")
def local_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny local-attention model (as longplay-mini): its last window of a continued render is
    shorter than a whole one, which is what the 285.3 s failure needed."""
    torch.manual_seed(0)
    raw = tiny_config(window_seconds=6.0)
    raw["model"]["diffusion"]["config"].update(attn_window=8, global_layers=[1], patch_size=2)
    return save_model(build_model(raw), tmp_path_factory.mktemp("models") / "tiny-local")


def test_a_source_longer_than_the_window_renders_its_first_window(
    make_queue: MakeQueue, local_model_dir: Path, tmp_path: Path
) -> None:
    """Finding 13: an audio-to-audio source at least a window long, without `seconds`, failed with
    500 (a 6,144 vs 704 latent-frame mismatch on longplay-mini). It renders one window, from the
    source's start: at strength 0 exactly what its first window alone renders."""
    queue = make_queue(model=local_model_dir)
    window = queue.limits.window
    rng = np.random.default_rng(3)
    audio = rng.uniform(-0.3, 0.3, (int(8.5 * 44100), 2)).astype(np.float32)
    long_src, first = tmp_path / "long.wav", tmp_path / "first.wav"
    sf.write(str(long_src), audio, 44100, subtype="FLOAT")
    sf.write(str(first), audio[: round(window * 44100)], 44100, subtype="FLOAT")

    queue.submit(_transform(long_src), "restyled")
    job = _done(queue, "restyled")
    assert job.state == "done", f"{job.error_code}: {job.error}"
    assert sf.info(job.files[0].path).frames == round(window * 44100)

    for rid, src in (("long-0", long_src), ("first-0", first)):
        queue.submit(_transform(src, strength=0.0, seed=1, name=rid), rid)
    a, b = (sf.read(_done(queue, rid).files[0].path)[0] for rid in ("long-0", "first-0"))
    assert a.shape == b.shape and np.array_equal(a, b)
