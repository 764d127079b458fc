"""Self-similarity matrices as PNGs, one panel per piece, in the style of the paper's Figure 4.

matplotlib's object API with the Agg canvas: no pyplot, no global figure state, no display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import require
from .music import SelfSimilarity


def save_ssm_png(
    panels: Sequence[tuple[str, SelfSimilarity]], path: str | Path, binary: bool = True, title: str = ""
) -> Path:
    """Draw each `(label, ssm)` side by side (time in seconds on both axes) and save a PNG.

    `binary=True` draws the mutual k-NN recurrence (black = similar), as Figure 4 does;
    otherwise the cosine similarity in grey levels (black = similar).
    """
    require("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError("nothing to draw: no SSM panels given")
    n = len(panels)
    fig = Figure(figsize=(3.2 * n, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    for i, (label, ssm) in enumerate(panels):
        ax = fig.add_subplot(1, n, i + 1)
        extent = (0.0, ssm.frames * ssm.frame_seconds, ssm.frames * ssm.frame_seconds, 0.0)
        image = ssm.recurrence.astype(float) if binary else ssm.similarity
        # Chroma cosines crowd into [0.5, 1]; stretch each panel's grey scale from its 5th percentile.
        low = 0.0 if binary else float(np.quantile(image, 0.05))
        ax.imshow(image, cmap="gray_r", vmin=low, vmax=1.0, extent=extent, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("time (s)", fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.set_ylabel("time (s)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(out), format="png")
    return out
