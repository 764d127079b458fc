"""The evaluation suite: Table-5 reconstruction metrics, tempo/drums/onsets/structure measures,
a beatbox clip with known onsets, and `run_eval` that writes eval.json + eval.md + SSM PNGs.

librosa, mir_eval and matplotlib come from the `eval` extra (`pip install -e '.[eval]'`);
they are imported inside the functions that use them, so `import lab` never needs them.
"""

from __future__ import annotations

from .beatbox import BeatboxClip, espeak_available, make_beatbox
from .errors import EvalDependencyError, EvaluationError
from .metrics import PAPER_TABLE5, ReconstructionMetrics, evaluate_reconstruction, reconstruction_metrics
from .music import (
    DRUMS_THRESHOLD,
    OnsetScore,
    Repetition,
    SelfSimilarity,
    TempoMatch,
    detect_onsets,
    drums_present,
    estimate_tempo,
    onset_f_measure,
    percussive_ratio,
    repetition_score,
    self_similarity,
    tempo_error,
)
from .plots import save_ssm_png
from .report import EvalConfig, run_eval

__all__ = [
    "BeatboxClip",
    "DRUMS_THRESHOLD",
    "EvalConfig",
    "EvalDependencyError",
    "EvaluationError",
    "OnsetScore",
    "PAPER_TABLE5",
    "ReconstructionMetrics",
    "Repetition",
    "SelfSimilarity",
    "TempoMatch",
    "detect_onsets",
    "drums_present",
    "espeak_available",
    "estimate_tempo",
    "evaluate_reconstruction",
    "make_beatbox",
    "onset_f_measure",
    "percussive_ratio",
    "reconstruction_metrics",
    "repetition_score",
    "run_eval",
    "save_ssm_png",
    "self_similarity",
    "tempo_error",
]
