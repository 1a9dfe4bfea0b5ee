"""Per-clip quality measures, taken on the cut samples while the worker holds them (pure numpy).

``measure`` turns one clip's samples (int16 as the decoders give them, or float in [-1, 1]; shape
(frames,) or (frames, channels), at the output rate) into four floats; ``judge`` adds the verdict of
the filters on them. Everything is vectorised and a few passes over the samples: measured at well
under 3 % of a worker's CPU (``python -m benchmarks.measures``).

Definitions (also in the dataset card and ``conf/default.yaml``):

- ``rms_db``: RMS level in dBFS (full scale = 1.0, i.e. 32768 for int16); digital silence is
  ``FLOOR_DB`` (-120), not minus infinity, so medians and Parquet stay finite.
- ``peak_db``: largest absolute sample in dBFS (same floor).
- ``clipped_fraction``: share of samples at full scale (int16 -32768 or 32767; float |x| >= 32767/32768).
- ``silence_fraction``: share of 10 ms frames whose RMS is more than 40 dB below the clip's loudest
  10 ms frame (an energy VAD relative to the clip, so recording gain does not matter); a clip of
  digital silence is 1.0. A clip that is *all* quiet noise is not "mostly silence" by this measure,
  it is caught by ``rms_db`` (``filters.min_rms_db``).
"""

from __future__ import annotations

import numpy as np

from ..config import FiltersConfig
from ..schema import reasons_where

FLOOR_DB = -120.0
FRAME_SECONDS = 0.010
SILENCE_BELOW_DB = 40.0
MEASURE_COLUMNS = ("rms_db", "peak_db", "clipped_fraction", "silence_fraction")
# Reasons found on the cut samples, in priority order (stage "quality" in schema.REASONS, which
# names the measure and the filter each tests).
REASONS = reasons_where(stage="quality")
_FULL = 32768.0
_CLIP_FLOAT = 32767.0 / 32768.0


def _db(power_ratio: float) -> float:
    """10·log10 of a power ratio, floored at FLOOR_DB."""
    return max(FLOOR_DB, 10.0 * np.log10(power_ratio)) if power_ratio > 0 else FLOOR_DB


def measure(samples: np.ndarray, sampling_rate: int) -> dict:
    """rms_db, peak_db, clipped_fraction, silence_fraction of one clip (see the module docstring)."""
    x = np.asarray(samples)
    n = x.size
    if n == 0:
        return {
            "rms_db": FLOOR_DB,
            "peak_db": FLOOR_DB,
            "clipped_fraction": 0.0,
            "silence_fraction": 1.0,
        }
    channels = x.shape[1] if x.ndim == 2 else 1
    integer = np.issubdtype(x.dtype, np.integer)
    hi, lo = float(x.max()), float(x.min())
    scale = _FULL if integer else 1.0
    peak = max(hi, -lo) / scale
    clipped = 0
    if integer and (
        hi >= 32767 or lo <= -32768
    ):  # the count only when the peak says there is something
        clipped = int(np.count_nonzero(x >= 32767) + np.count_nonzero(x <= -32768))
    elif not integer and peak >= _CLIP_FLOAT:
        clipped = int(np.count_nonzero(np.abs(x) >= _CLIP_FLOAT))
    # Frame energies: one float32 copy and one dot product per frame (einsum), the tail as its own frame.
    f = x.reshape(-1).astype(np.float32)
    if integer:
        f *= np.float32(1.0 / _FULL)
    step = max(1, int(round(FRAME_SECONDS * sampling_rate))) * channels
    whole = (n // step) * step
    frames = f[:whole].reshape(-1, step)
    energy = np.einsum("ij,ij->i", frames, frames, dtype=np.float64)
    tail = f[whole:]
    total = float(energy.sum()) + float(np.dot(tail, tail))
    mean_sq = energy / step
    if len(tail) and not len(energy):
        mean_sq = np.array([float(np.dot(tail, tail)) / len(tail)])
    loudest = float(mean_sq.max())
    silent = (
        1.0
        if loudest <= 0
        else float(np.count_nonzero(mean_sq < loudest * 10 ** (-SILENCE_BELOW_DB / 10)))
        / len(mean_sq)
    )
    return {
        "rms_db": _db(total / n),
        "peak_db": _db(peak * peak),
        "clipped_fraction": clipped / n,
        "silence_fraction": silent,
    }


def judge(m: dict, filters: FiltersConfig) -> tuple[str, str] | None:
    """The first of ``REASONS`` whose filter (``filters.min_rms_db``, ``max_clipped_fraction``,
    ``max_silence_fraction``; None disables one) the measures fail, with a detail; else None."""
    lo = filters.min_rms_db
    if lo is not None and m["rms_db"] < lo:
        return "silent", f"rms {m['rms_db']:.1f} dBFS < {lo}"
    hi = filters.max_clipped_fraction
    if hi is not None and m["clipped_fraction"] > hi:
        return "clipped", f"{m['clipped_fraction']:.4f} of samples at full scale > {hi}"
    hi = filters.max_silence_fraction
    if hi is not None and m["silence_fraction"] > hi:
        return "mostly_silence", (
            f"{m['silence_fraction']:.2f} of 10 ms frames {SILENCE_BELOW_DB:g} dB below "
            f"the loudest > {hi}"
        )
    return None


def chars_per_second(text, duration):
    """Normalized text without whitespace ÷ duration (vectorised on pandas Series; NaN where unknown)."""
    import pandas as pd

    t = (
        pd.Series(text, dtype=object).fillna("").astype(str)
    )  # an empty partition is no string column
    chars = t.str.len() - t.str.count(r"\s")
    dur = pd.Series(duration, copy=False).astype("float64")
    return (chars / dur.where(dur > 0)).astype("float64")


def summarize(clips: list[dict]) -> dict:
    """Per-recording aggregate of its cut clips' measures (computed in the worker that holds them all):
    clips cut, median rms_db / peak_db / silence_fraction, and how many clips have any clipping."""
    if not clips:
        return {"cut": 0}
    out: dict[str, float | int] = {"cut": len(clips)}
    for name in ("rms_db", "peak_db", "silence_fraction"):
        out[f"median_{name}"] = float(np.median([c[name] for c in clips]))
    out["clipped_clips"] = int(sum(c["clipped_fraction"] > 0 for c in clips))
    return out
