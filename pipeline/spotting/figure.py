"""The QC figure of one spotted video: its score curves with their thresholds, the true intervals (when the
dataset codes them) and the spotted ones, on the video's frame numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no display backend needed

COLOURS = {"micro": "tab:red", "macro": "tab:blue"}


def threshold(curve: np.ndarray, p: float) -> float:
    """The spotting threshold of a curve: mean + p (max - mean) over its scored frames (NaN: none scored)."""
    scored = curve[np.isfinite(curve)]
    return float(scored.mean() + p * (scored.max() - scored.mean())) if len(scored) else float("nan")


def spotting_figure(video: str, curves: pd.DataFrame, spotted: pd.DataFrame, truth: pd.DataFrame | None,
                    p: float) -> Figure:
    """Top: the micro and macro score curves and their thresholds; bottom: one row of true intervals (if any)
    and one of spotted intervals, coloured by type."""
    fig = Figure(figsize=(10, 3.6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    frames = curves["frame"].to_numpy()
    for kind, colour in COLOURS.items():
        curve = curves[f"score_{kind}"].to_numpy(dtype=float)
        top.plot(frames, curve, color=colour, lw=0.8, label=f"{kind} score")
        level = threshold(curve, p)
        if np.isfinite(level):
            top.axhline(level, color=colour, lw=0.6, ls="--")
    top.set_ylabel("MDMD score")
    top.legend(fontsize=7, loc="upper right")
    top.set_title(video, fontsize=9)
    rows = [("spotted", spotted)] + ([("true", truth)] if truth is not None else [])
    for y, (_, intervals) in enumerate(rows):
        for r in intervals.itertuples():
            bottom.broken_barh([(r.onset, r.offset - r.onset + 1)], (y - 0.35, 0.7),
                               color=COLOURS.get(str(r.type), "grey"), alpha=0.8)
    bottom.set_yticks(range(len(rows)), [name for name, _ in rows])
    bottom.set_ylim(-0.6, len(rows) - 0.4)
    bottom.set_xlabel("frame")
    fig.tight_layout()
    return fig
