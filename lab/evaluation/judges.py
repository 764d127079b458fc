"""Independent judges: published estimators (madmom, basic-pitch, PESTO, musicnn) scoring audio.

They live in their own interpreter, `.venv-judges` (`make judges`; madmom needs numpy<2), and run
as `lab/judges/run.py` in a subprocess: wav paths in, one JSON answer out. This module finds that
interpreter, calls it, and does the arithmetic on its answers (key agreement, tempo error, the
Fréchet distance between two sets of embeddings). Without the env every caller gets a reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.keys import (
    QUALITY,
    parse_key,
    scale_of,
    scale_pitch_classes as scale_pitch_classes,  # the judges' callers read it here
)

from .errors import EvaluationError

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "lab" / "judges" / "run.py"
ENV_VAR = "LONGPLAY_JUDGES_PYTHON"  # another judges interpreter than ROOT/.venv-judges
JUDGES = ("tempo", "key", "onsets", "notes", "f0", "embedding")
TEMPO_TOLERANCE = 0.04


class JudgesUnavailable(EvaluationError):
    """The judges env is missing or its runner failed; the message says what to do."""


def find_python() -> Path | None:
    """The judges env's interpreter: $LONGPLAY_JUDGES_PYTHON, else `.venv-judges` at the repo root."""
    named = os.environ.get(ENV_VAR)
    path = Path(named) if named else ROOT / ".venv-judges" / "bin" / "python"
    return path if path.is_file() else None


def missing_reason() -> str:
    where = os.environ.get(ENV_VAR) or str(ROOT / ".venv-judges")
    return f"no judges env at {where}: build it with `make judges` (madmom, basic-pitch, PESTO, musicnn; about 1-2 min)"


def run_judges(
    files: Sequence[str | os.PathLike[str] | tuple[str | os.PathLike[str], Sequence[str]]],
    judges: Sequence[str] = JUDGES,
    *,
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """Score `files` (paths, or (path, judges) pairs) with `judges` in the judges env.

    -> {"versions": {...}, "unavailable": {judge: reason}, "results": {path: {judge: result}}}.
    Raises `JudgesUnavailable` when there is no env or the runner fails as a whole."""
    python = find_python()
    if python is None:
        raise JudgesUnavailable(missing_reason())
    entries: list[Any] = []
    for f in files:
        entries.append({"path": str(f[0]), "judges": list(f[1])} if isinstance(f, tuple) else str(f))
    request = json.dumps({"files": entries, "judges": list(judges)})
    # One thread each: the eval shares a 2-core machine, and TF / torch / onnxruntime would each take all.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    try:
        done = subprocess.run(
            [str(python), str(RUNNER)], input=request, capture_output=True, text=True, timeout=timeout, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JudgesUnavailable(f"the judges runner did not finish: {exc}") from exc
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise JudgesUnavailable(f"the judges runner failed (exit {done.returncode}): {' | '.join(tail)}")
    try:
        answer: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise JudgesUnavailable(f"the judges runner answered no JSON ({exc})") from exc
    return answer


# ---------------------------------------------------------------------------------- arithmetic
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    """Fréchet distance between Gaussians fitted to two sets of embeddings `[N, D]`, `[M, D]`
    (Heusel et al. 2017; FAD, Kilgour et al. 2019): |mu_a - mu_b|^2 + Tr(Sa + Sb - 2 (Sa Sb)^1/2).
    None when either set has fewer than two rows."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or len(a) < 2 or len(b) < 2:
        return None
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # fewer rows than dimensions: singular, as the row counts say
        warnings.simplefilter("ignore")
        root = linalg.sqrtm(sa @ sb)
        if not np.all(np.isfinite(root)):  # nudge both as FID's reference code does
            eps = np.eye(len(sa)) * 1e-6
            root = linalg.sqrtm((sa + eps) @ (sb + eps))
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2.0 * np.trace(np.real(root)))


def key_agreement(asked: str, heard: str) -> str:
    """How a judge's 24-key answer sits against the asked key (a corpus key may be modal):
    'right' (same tonic, the mode's major/minor third), 'relative' (its relative major/minor),
    'same_scale' (another key of the same seven pitch classes, e.g. C major for D dorian),
    else 'other'."""
    a, h = parse_key(asked), parse_key(heard)
    if a is None or h is None:
        return "other"
    (at, am), (ht, hm) = a, h
    quality = QUALITY[am]
    if ht == at and hm == quality:
        return "right"
    if hm != quality and ht == (at + (-3 if quality == "major" else 3)) % 12:
        return "relative"
    if scale_of(h) == scale_of(a):
        return "same_scale"
    return "other"


def tempo_row(asked: float, heard: float | None) -> dict[str, Any]:
    """Relative error against the asked tempo and whether it sits within 4 % of it, or of half or
    double it."""
    if heard is None or heard <= 0:
        return {"asked_bpm": asked, "bpm": None, "relative_error": None, "within": False, "octave_within": False}
    err = abs(heard / asked - 1.0)
    octave = min(abs(heard / (asked * k) - 1.0) for k in (0.5, 1.0, 2.0))
    return {
        "asked_bpm": asked,
        "bpm": round(heard, 2),
        "relative_error": round(err, 4),
        "within": err <= TEMPO_TOLERANCE,
        "octave_within": octave <= TEMPO_TOLERANCE,
    }


def tempo_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    errs = [r["relative_error"] for r in rows if r["relative_error"] is not None]
    n = len(rows)
    return {
        "n": n,
        "median_relative_error": float(np.median(errs)) if errs else None,
        "share_within": sum(r["within"] for r in rows) / n if n else None,
        "share_octave_within": sum(r["octave_within"] for r in rows) / n if n else None,
        "items": rows,
    }


def key_summary(rows: list[dict[str, Any]], judge: str) -> dict[str, Any]:
    kinds = [r[judge]["agreement"] for r in rows if isinstance(r.get(judge), dict) and "agreement" in r[judge]]
    return {"n": len(kinds), **{k: kinds.count(k) for k in ("right", "relative", "same_scale", "other")}}
