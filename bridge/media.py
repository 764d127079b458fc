"""What the desktop app needs from the engine besides the job queue: model folders, audio files
read for previews and playback, and min/max peaks. Re-exported here because desktop/ reaches the
engine only through the bridge (STYLE.md §1).

Importing this module imports the engine, and so torch: the app does it off the GUI thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import AudioInputError, ModelInfo, ModelLoadError, find_models, load_audio, peaks, resolve_model

from .sniff import AudioOutOfRange, sniff_audio

__all__ = [
    "AudioInputError",
    "AudioPeaks",
    "ModelInfo",
    "ModelLoadError",
    "find_models",
    "load_audio",
    "peaks",
    "read_peaks",
    "resolve_model",
]


@dataclass(frozen=True)
class AudioPeaks:
    """Min/max peaks of a whole file, enough to draw it at any width up to ``columns``."""

    path: str
    peaks: np.ndarray  # [C, columns, 2] (min, max)
    sample_rate: int
    frames: int

    @property
    def channels(self) -> int:
        return int(self.peaks.shape[0])

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def read_peaks(path: str | os.PathLike[str], columns: int = 4096) -> AudioPeaks:
    """Decode ``path`` and reduce it to ``[C, columns, 2]`` peaks. Anything that is not usable
    audio (a folder, another kind of file, a corrupt or empty file) raises ``AudioInputError``
    with a reason a person can act on."""
    p = Path(path)
    if p.is_dir():
        raise AudioInputError(f"{p.name} is a folder, not an audio file")
    if not p.is_file():
        raise AudioInputError(f"{p.name}: no such file")
    try:
        sniff_audio(p)
    except AudioOutOfRange as err:  # a rate or length past the limits, refused from its header
        raise AudioInputError(f"{p.name} {err}") from None
    except ValueError:
        raise AudioInputError(f"{p.name} is not an audio file Longplay can read (WAV, FLAC, AIFF or Ogg)") from None
    except OSError as err:
        raise AudioInputError(f"{p.name} cannot be read ({err.strerror or err})") from None
    audio, sr = load_audio(p)  # [C, N]; raises AudioInputError for corrupt or empty files
    return AudioPeaks(str(p), peaks(audio, columns), sr, int(audio.shape[1]))
