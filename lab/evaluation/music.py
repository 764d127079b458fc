"""Musical measurements of a render: tempo, percussiveness, onsets, self-similarity.

Everything runs on a mono 22.05 kHz copy (librosa's analysis rate) and uses librosa for the
signal processing and mir_eval for onset scoring. What is defined here is only what no library
decides for us: how a tempo counts as a half/double-time match, the "drums present" threshold,
and the repetition score read off a self-similarity matrix (SSM).

Audio arguments are `[C, N]` or `[N]` float arrays at `sample_rate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.audio_io import conform

from .errors import require

ANALYSIS_RATE = 22050
HOP = 512  # 23.2 ms analysis frames
TEMPO_HOP = 256  # finer lag grid for tempo: 11.6 ms, so the lag quantisation stays under 2 % to 180 BPM
TEMPO_WINDOW_FRAMES = 768  # ~8.9 s autocorrelation window (librosa's default span at hop 512)

# Share of spectrogram energy in the percussive part (HPSS with a residual, margin 2) above which
# we say "drums present". Calibrated with scripts/calibrate_drums.py on the 90 drummed songs of
# the generated corpus and their drumless twins (`longplay corpus --drumless`: same notes, same
# mix, no kit), middle 20 s, as every render is heard: through longplay-mini's autoencoder. There
# 0.05 tells a song from its twin with a balanced accuracy of 0.74 (with drums: median 0.057,
# min 0.029; without: median 0.039, max 0.095); as rendered, 0.031 would reach 0.82. A heuristic
# for "did the render get a beat", not a drum detector: struck keys and slap bass read
# as percussive too, and the decoder blurs drum hits toward its floor. The earlier two-way
# split (margin 1, threshold 0.09) counted the decoder's noise as drums: every drum-free
# held-out mix scored above it after the round trip.
DRUMS_THRESHOLD = 0.05
HPSS_MARGIN = 2.0
HPSS_FFT = 1024
HPSS_KERNEL = 17  # median-filter length: 17 frames = 0.39 s across time, 17 bins = 366 Hz across frequency
ONSET_WINDOW = 0.05  # +-50 ms, the MIREX onset tolerance


def to_mono(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """`[C, N]` or `[N]` audio -> mono `[n]` float32 at `ANALYSIS_RATE`."""
    a = np.asarray(audio, dtype=np.float32)
    return conform(a if a.ndim == 2 else a[None, :], sample_rate, ANALYSIS_RATE, 1)[0]


# ------------------------------------------------------------------ tempo
def estimate_tempo(audio: np.ndarray, sample_rate: int) -> float:
    """Global tempo in BPM (librosa's tempogram estimate: the number `beat_track` also returns).

    The onset envelope's autocorrelation is weighted by a log-normal prior around 120 BPM; no
    dynamic-programming beat pass is run because only the tempo is scored.
    """
    require("librosa")
    import librosa

    y = to_mono(audio, sample_rate)
    env = librosa.onset.onset_strength(y=y, sr=ANALYSIS_RATE, hop_length=TEMPO_HOP)
    if not np.any(env > 0):
        return 0.0
    bpm = librosa.feature.tempo(
        onset_envelope=env,
        sr=ANALYSIS_RATE,
        hop_length=TEMPO_HOP,
        ac_size=TEMPO_WINDOW_FRAMES * TEMPO_HOP / ANALYSIS_RATE,
    )
    return float(bpm[0])


@dataclass(frozen=True)
class TempoMatch:
    """How a tempo estimate relates to the tempo asked for.

    `relative_error` is |estimate - target| / target. `octave` says which of target, target/2
    ("half": the render or the tracker sits at half time) or 2 x target ("double") the estimate
    lies within `tolerance` of, else "none". `octave_error` is the relative error to the nearest
    of the three, so a half-time render is not scored as 50 % wrong there.
    """

    estimate: float
    target: float
    relative_error: float
    octave: str
    octave_error: float


def tempo_error(estimate: float, target: float, tolerance: float = 0.04) -> TempoMatch:
    """Compare an estimated BPM with the target BPM (see `TempoMatch`)."""
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target tempo must be a positive number (got {target})")
    candidates = {"exact": target, "half": target / 2, "double": target * 2}
    errors = {name: abs(estimate - t) / t for name, t in candidates.items()}
    best = min(errors, key=lambda k: errors[k])
    octave = best if errors[best] <= tolerance else "none"
    return TempoMatch(float(estimate), float(target), errors["exact"], octave, errors[best])


# ------------------------------------------------------------------ percussiveness
def percussive_ratio(audio: np.ndarray, sample_rate: int, margin: float = HPSS_MARGIN) -> float:
    """Share of spectrogram energy in the percussive part after HPSS, in [0, 1].

    librosa's median-filter HPSS with soft masks splits |STFT| (a shorter FFT and filter than
    librosa's defaults, with the same ~350 Hz span: 3x faster) into H + P + R. With ``margin``
    1 there is no residual R and this is Fitzgerald's (2010) two-way split; with a margin > 1
    (Driedger, Müller & Disch 2014) a bin goes to P only when it is ``margin`` times more
    percussive than harmonic, and noise -- neither sustained nor a click -- goes to R. The
    ratio is sum(P^2) / sum(|STFT|^2). Drums are broadband and short, so they land in P;
    sustained notes land in H. Silence gives 0.
    """
    require("librosa")
    import librosa

    y = to_mono(audio, sample_rate)
    mag = np.abs(librosa.stft(y, n_fft=HPSS_FFT, hop_length=HOP))
    _, perc = librosa.decompose.hpss(mag, kernel_size=HPSS_KERNEL, margin=margin)
    total = float(np.sum(mag**2))
    return float(np.sum(perc**2)) / total if total > 1e-12 else 0.0


def drums_present(ratio: float, threshold: float = DRUMS_THRESHOLD) -> bool:
    """Whether a `percussive_ratio` says the audio has drums."""
    return ratio >= threshold


# ------------------------------------------------------------------ onsets
def detect_onsets(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset times in seconds (librosa spectral-flux onset detection with peak picking)."""
    require("librosa")
    import librosa

    y = to_mono(audio, sample_rate)
    if not np.any(y):
        return np.zeros(0)
    return np.asarray(librosa.onset.onset_detect(y=y, sr=ANALYSIS_RATE, hop_length=HOP, units="time"))


@dataclass(frozen=True)
class OnsetScore:
    f_measure: float
    precision: float
    recall: float


def onset_f_measure(reference: np.ndarray, estimate: np.ndarray, window: float = ONSET_WINDOW) -> OnsetScore:
    """mir_eval's onset F-measure: each estimate may match one reference within +-`window` s."""
    require("mir_eval")
    import mir_eval

    ref, est = np.sort(np.asarray(reference, float)), np.sort(np.asarray(estimate, float))
    if ref.size == 0 or est.size == 0:  # mir_eval warns and returns zeros; say it plainly
        return OnsetScore(1.0 if ref.size == est.size else 0.0, float(est.size == 0), float(ref.size == 0))
    f, p, r = mir_eval.onset.f_measure(ref, est, window=window)
    return OnsetScore(float(f), float(p), float(r))


# ------------------------------------------------------------------ self-similarity
@dataclass(frozen=True)
class SelfSimilarity:
    """Cosine SSM `[T, T]` in [0, 1], its binary (mutual k-NN) version, and the frame length."""

    similarity: np.ndarray
    recurrence: np.ndarray
    frame_seconds: float

    @property
    def frames(self) -> int:
        return int(self.similarity.shape[0])


def ssm_features(
    audio: np.ndarray, sample_rate: int, frame_seconds: float = 0.5, context_frames: int = 4
) -> tuple[np.ndarray, float]:
    """Chroma averaged over ~`frame_seconds` blocks, delay-embedded over `context_frames`.

    -> (features `[12 * context_frames, T]`, the exact frame length in seconds). The delay
    embedding (Serra et al. 2014, the paper's SSM reference [45]) makes a frame match only
    where a whole 2 s phrase matches, which is what turns repeats into clean stripes.
    """
    require("librosa")
    import librosa

    y = to_mono(audio, sample_rate)
    # tuning=0: the corpus is rendered at A440; librosa's tuning estimate (a pitch tracker) would
    # cost more than the chroma itself.
    chroma = librosa.feature.chroma_stft(y=y, sr=ANALYSIS_RATE, hop_length=HOP, tuning=0.0)  # [12, F]
    per = max(1, round(frame_seconds * ANALYSIS_RATE / HOP))
    t = max(1, chroma.shape[1] // per)
    chroma = chroma[:, : t * per] if chroma.shape[1] >= per else np.pad(chroma, ((0, 0), (0, per - chroma.shape[1])))
    blocks = chroma.reshape(12, t, per).mean(axis=2)  # [12, T]
    feats = librosa.feature.stack_memory(blocks, n_steps=context_frames, mode="edge")  # [12 * k, T]
    return feats, per * HOP / ANALYSIS_RATE


def self_similarity(
    audio: np.ndarray, sample_rate: int, frame_seconds: float = 0.5, neighbours: float = 0.1
) -> SelfSimilarity:
    """The SSM of a piece: cosine similarity of `ssm_features`, plus a binary version.

    Binary as in the paper's Figure 4 / Serra et al.: cell (i, j) is set when j is among i's
    `neighbours` fraction of most similar frames *and* i among j's (mutual k-NN); the main
    diagonal is set. Written in
    numpy rather than `librosa.segment.recurrence_matrix` because that one refuses short
    inputs (quick CI renders are a few frames) and pulls in scikit-learn for a 5-line rule.
    """
    feats, seconds = ssm_features(audio, sample_rate, frame_seconds)
    norm = feats / np.maximum(np.linalg.norm(feats, axis=0, keepdims=True), 1e-9)
    sim = np.clip(norm.T @ norm, 0.0, 1.0)  # [T, T]
    t = sim.shape[0]
    k = max(1, int(math.ceil(neighbours * t)))
    ranked = np.where(np.eye(t, dtype=bool), -np.inf, sim)
    kth = -np.sort(-ranked, axis=1)[:, min(k, t) - 1 : min(k, t)]  # [T, 1] each row's k-th best
    knn = ranked >= kth
    return SelfSimilarity(sim.astype(np.float32), (knn & knn.T) | np.eye(t, dtype=bool), seconds)


@dataclass(frozen=True)
class Repetition:
    """How much of a piece recurs later (or earlier) in it.

    `fraction`: share of frames lying on a stripe of the binary SSM at a lag of at least
    `min_lag_seconds`, a stripe being a `stripe_seconds` diagonal run whose cells are at least
    `stripe_fill` set. `stripe`: mean over frames of the best such diagonal run's mean cosine
    similarity (the continuous counterpart). Both None when the piece is shorter than the lag.
    """

    fraction: float | None
    stripe: float | None
    min_lag_seconds: float


def _diagonal_mean(m: np.ndarray, length: int) -> np.ndarray:
    """Mean of `m` over a centred diagonal run of `length` cells, per cell (zeros outside)."""
    from scipy.ndimage import convolve

    return convolve(m.astype(np.float64), np.eye(length) / length, mode="constant", cval=0.0)


def repetition_score(
    ssm: SelfSimilarity, min_lag_seconds: float = 8.0, stripe_seconds: float = 4.0, stripe_fill: float = 0.75
) -> Repetition:
    """Score repetition on an SSM (see `Repetition`); same function for renders and corpus songs."""
    t = ssm.frames
    lag = int(math.ceil(min_lag_seconds / ssm.frame_seconds))
    if t <= lag:
        return Repetition(None, None, min_lag_seconds)
    run = max(2, int(round(stripe_seconds / ssm.frame_seconds)))
    i, j = np.indices((t, t))
    far = np.abs(i - j) >= lag
    binary = np.where(far, _diagonal_mean(ssm.recurrence, run), 0.0)
    smooth = np.where(far, _diagonal_mean(ssm.similarity, run), 0.0)
    fraction = float(np.mean(binary.max(axis=1) >= stripe_fill))
    return Repetition(fraction, float(np.mean(smooth.max(axis=1))), min_lag_seconds)


# ------------------------------------------------------------------ level over time
def level_dbfs(audio: np.ndarray) -> float:
    """RMS level in dBFS over all samples and channels (-240 for digital silence)."""
    a = np.asarray(audio, dtype=np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(a**2)) + 1e-12))


def window_levels(audio: np.ndarray, sample_rate: int, window_seconds: float = 10.0) -> np.ndarray:
    """RMS level in dBFS of each whole `window_seconds` window (all channels; one window if shorter).
    A long render that fades into near-silence scores well on repetition; this shows it."""
    a = np.asarray(audio, dtype=np.float64)
    a = a[None] if a.ndim == 1 else a
    n = max(1, int(window_seconds * sample_rate))
    count = max(1, a.shape[1] // n)
    windows = [a[:, i * n : (i + 1) * n] for i in range(count)]
    return np.array([level_dbfs(w) for w in windows])


TONAL_HZ = (80.0, 2000.0)  # where the corpus's bass, chords and melodies put their fundamentals
TONAL_FLOOR_DB = -40.0  # spectral peaks this far under their frame's loudest are left out


def tonal_in_scale_share(audio: np.ndarray, sample_rate: int, pitch_classes: frozenset[int]) -> float | None:
    """The share of tonal energy on `pitch_classes` (a key's scale, `judges.scale_pitch_classes`):
    per frame the spectral peaks (local maxima within `TONAL_FLOOR_DB` of the frame's loudest,
    `TONAL_HZ`, 2.7 Hz bins) each give their power to their nearest pitch class. Peaks, not the
    whole spectrum, so a drum's broadband energy does not count for every class (chance for a
    seven-note scale: 7 / 12 = 0.58). None for silence."""
    import librosa

    y = to_mono(audio, sample_rate)
    spec = np.abs(librosa.stft(y, n_fft=8192, hop_length=2048)) ** 2  # [F, T] at 22.05 kHz
    freqs = librosa.fft_frequencies(sr=ANALYSIS_RATE, n_fft=8192)
    band = (freqs >= TONAL_HZ[0]) & (freqs <= TONAL_HZ[1])
    spec, freqs = spec[band], freqs[band]
    peaks = librosa.util.localmax(spec, axis=0) & (spec >= spec.max(0, keepdims=True) * 10 ** (TONAL_FLOOR_DB / 10))
    power = np.where(peaks, spec, 0.0).sum(1)  # [F]
    if power.sum() <= 0:
        return None
    classes = np.round(12 * np.log2(freqs / 440.0) + 69).astype(int) % 12
    return float(power[np.isin(classes, sorted(pitch_classes))].sum() / power.sum())
