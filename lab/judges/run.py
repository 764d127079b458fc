"""The judges runner: published estimators scoring audio files, run inside `.venv-judges`.

    .venv-judges/bin/python lab/judges/run.py < request.json > answer.json

Request: ``{"files": [wav paths], "judges": [names]}``; an entry of "files" may also be
``{"path": ..., "judges": [names]}`` to ask for other judges on that file. Answer: ``{"versions": {package: version},
"unavailable": {judge: reason}, "results": {path: {judge: result | {"error": reason}}}}``.

Judges (each with the weights its wheel ships; nothing is downloaded):

* ``tempo``: madmom's RNNBeatProcessor + TempoEstimationProcessor (comb filter, the
  TempoDetector program's defaults): the strongest tempo and the next candidates;
* ``key``: madmom's CNNKeyRecognitionProcessor (Korzeniowski & Widmer 2018): one of 24 keys;
* ``onsets``: madmom's RNNOnsetProcessor + OnsetPeakPickingProcessor with the OnsetDetector
  program's settings (threshold 0.35, smoothing 0.07 s), onset times in seconds;
* ``notes``: basic-pitch's ICASSP 2022 model (its ONNX file): note count, the MIDI pitch held
  longest, and a key from the duration-weighted pitch-class histogram (Krumhansl–Kessler);
* ``f0``: PESTO (mir-1k_g7): median f0 over confident frames;
* ``embedding``: musicnn's MSD_musicnn penultimate layer, one 200-d vector per 3 s patch.

This file runs in another interpreter (numpy<2, TensorFlow, madmom): it imports nothing from the
project, and each judge's package is imported only when that judge is asked for.
"""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# musicnn builds its graph with tf.compat.v1.layers, which Keras 3 removed; tf-keras restores them.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

RATE = 44100  # madmom's networks were trained at 44.1 kHz
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl & Kessler (1982) probe-tone profiles, C major / C minor.
KK_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
KK_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
PACKAGES = ("madmom", "basic-pitch", "pesto-pitch", "musicnn", "tensorflow-cpu", "onnxruntime", "torch", "numpy")


def load_mono(path: str, rate: int = RATE) -> np.ndarray:
    """A file as float32 mono at `rate` (soundfile reads WAV and FLAC; soxr resamples)."""
    import soundfile as sf

    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if sr != rate:
        import soxr

        mono = soxr.resample(mono, sr, rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def krumhansl_key(histogram: np.ndarray) -> tuple[str, float]:
    """The key whose rotated KK profile correlates best with a 12-bin pitch-class histogram."""
    if not np.any(histogram):
        return "none", 0.0
    best, score = "none", -2.0
    for mode, profile in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for tonic in range(12):
            r = float(np.corrcoef(histogram, np.roll(profile, tonic))[0, 1])
            if r > score:
                best, score = f"{PITCH_CLASSES[tonic]} {mode}", r
    return best, score


class Judges:
    """Each judge's model is loaded once, on first use; `run` scores one file."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def _get(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    def _signal(self, path: str) -> Any:
        from madmom.audio.signal import Signal

        return Signal(load_mono(path), sample_rate=RATE)

    def tempo(self, path: str) -> dict[str, Any]:
        from madmom.features.beats import RNNBeatProcessor
        from madmom.features.tempo import TempoEstimationProcessor

        beat = self._get("beat", RNNBeatProcessor)
        estimate = self._get("tempo", lambda: TempoEstimationProcessor(fps=100))
        tempi = np.asarray(estimate(beat(self._signal(path))))  # [K, 2]: bpm, strength
        if not len(tempi):
            return {"bpm": None, "candidates": []}
        return {"bpm": float(tempi[0, 0]), "candidates": [[float(b), float(s)] for b, s in tempi[:3]]}

    def key(self, path: str) -> dict[str, Any]:
        from madmom.features.key import CNNKeyRecognitionProcessor, key_prediction_to_label

        probs = self._get("key", CNNKeyRecognitionProcessor)(self._signal(path))  # [1, 24]
        return {"key": str(key_prediction_to_label(probs)), "confidence": float(np.max(probs))}

    def onsets(self, path: str) -> dict[str, Any]:
        from madmom.features.onsets import OnsetPeakPickingProcessor, RNNOnsetProcessor

        act = self._get("onset_rnn", RNNOnsetProcessor)(self._signal(path))
        pick = self._get("onset_pick", lambda: OnsetPeakPickingProcessor(fps=100, threshold=0.35, smooth=0.07))
        return {"onsets": [round(float(t), 4) for t in pick(act)]}

    def notes(self, path: str) -> dict[str, Any]:
        from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
        from basic_pitch.inference import Model, predict

        # The ONNX file, not the TF saved model basic-pitch prefers when TensorFlow is present.
        model = self._get("basic_pitch", lambda: Model(build_icassp_2022_model_path(FilenameSuffix.onnx)))
        _, _, events = predict(path, model)  # (start s, end s, MIDI pitch, amplitude, bends)
        histogram = np.zeros(12)
        held: dict[int, float] = {}
        for start, end, pitch, *_ in events:
            histogram[int(pitch) % 12] += end - start
            held[int(pitch)] = held.get(int(pitch), 0.0) + end - start
        key, r = krumhansl_key(histogram)
        return {
            "count": len(events),
            "seconds": float(len(load_mono(path, 22050)) / 22050),
            "longest_pitch": max(held, key=lambda p: held[p]) if held else None,
            "pitch_class_seconds": [round(float(v), 3) for v in histogram],
            "key": key,
            "key_correlation": r,
        }

    def f0(self, path: str) -> dict[str, Any]:
        # pesto imports torchaudio only to read files in predict_from_files; the CUDA torchaudio
        # wheel on PyPI will not load beside the CPU torch, so a stub stands in for it and we hand
        # pesto samples (its CQT is built for whatever sample rate it is given).
        sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
        import pesto
        import torch

        torch.set_num_threads(1)
        x = torch.from_numpy(load_mono(path, 16000))
        _, f0, confidence, _ = pesto.predict(x, 16000, step_size=10.0)
        f0, confidence = f0.numpy(), confidence.numpy()
        voiced = confidence >= 0.5
        median = float(np.median(f0[voiced])) if voiced.any() else None
        return {"f0_hz": median, "voiced_share": float(voiced.mean()), "frames": int(len(f0))}

    def embedding(self, path: str) -> dict[str, Any]:
        from musicnn.extractor import extractor

        if len(load_mono(path, 16000)) < 3 * 16000:  # musicnn fails on less than one 3 s patch
            return {"frames": [], "note": "shorter than one 3 s patch"}
        _, _, features = extractor(path, model="MSD_musicnn", input_length=3, extract_features=True)
        frames = np.asarray(features["penultimate"], dtype=np.float64)  # [patches, 200]
        return {"frames": [[round(float(v), 5) for v in row] for row in frames]}


JUDGES = ("tempo", "key", "onsets", "notes", "f0", "embedding")
IMPORTS = {
    "tempo": "madmom",
    "key": "madmom",
    "onsets": "madmom",
    "notes": "basic_pitch",
    "f0": "pesto",
    "embedding": "musicnn.extractor",
}


def _available(judge: str) -> str | None:
    """None when the judge's package imports here, else the reason it does not."""
    if judge == "f0":
        sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    try:
        __import__(IMPORTS[judge])
    except Exception as exc:  # any import failure is the judge's skip reason, reported
        return f"{IMPORTS[judge]} does not import in the judges env: {type(exc).__name__}: {exc}"
    return None


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def main(out: Any) -> int:
    request = json.load(sys.stdin)
    default = [j for j in request.get("judges", JUDGES) if j in JUDGES]
    jobs = [(f, default) if isinstance(f, str) else (f["path"], f["judges"]) for f in request.get("files", [])]
    asked = sorted({j for _, names in jobs for j in names if j in JUDGES} | set(default))
    unavailable = {j: reason for j in asked if (reason := _available(j)) is not None}
    judges = Judges()
    results: dict[str, dict[str, Any]] = {}
    for path, names in jobs:
        row = results.setdefault(path, {})
        for judge in names:
            if judge not in JUDGES or judge in unavailable:
                continue
            try:
                row[judge] = getattr(judges, judge)(path)
            except Exception as exc:  # one file's failure is reported in its row, the others go on
                row[judge] = {"error": f"{type(exc).__name__}: {exc}"}
    answer = {"versions": _versions(), "unavailable": unavailable, "results": results}
    # The answer goes to the real stdout; the judges' own chatter (TF, musicnn) was sent to stderr.
    out.write(json.dumps(answer))
    out.flush()
    return 0


if __name__ == "__main__":
    answer_to = sys.stdout
    sys.stdout = sys.stderr  # musicnn prints progress; stdout carries the JSON answer alone
    raise SystemExit(main(answer_to))
