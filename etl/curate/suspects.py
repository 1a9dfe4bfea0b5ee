"""Suspect recordings: per-recording statistics and the ones that are outliers against the corpus (pure).

A table that belongs to another upload of the video (every row shifted), an alignment that drifts,
a recording of music or of clipped audio: each shows up as a recording whose reject share or whose
medians stand far from every other recording's. The rule is the robust z-score of Iglewicz & Hoaglin,
``z = (x - median) / (1.4826 · MAD)`` over the recordings with at least ``MIN_ROWS`` rows, flagged
beyond ``Z_LIMIT`` = 3.5 in the direction that means trouble. MAD is 0 whenever most recordings are
alike (a reject share of 0 everywhere), so the scale has a floor per measure (``FLOORS``): a recording
is never suspect for a difference smaller than 3.5 floors (e.g. 35 points of reject share, 10.5 dB).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import reasons_where
from .splits import id_list_line

MIN_ROWS = (
    3  # recordings with fewer rows are listed but neither judged nor part of the corpus medians
)
MIN_RECORDINGS = 3  # fewer judged recordings: no corpus to be an outlier of
Z_LIMIT = 3.5
# measure -> (direction of trouble: +1 high, -1 low, 0 both; floor of the scale; what it means)
RULES = {
    "fault_share": (+1, 0.10, "reject share"),
    "median_similarity": (-1, 0.05, "median similarity"),
    "median_chars_per_second": (0, 1.0, "median chars/s"),
    "median_rms_db": (-1, 3.0, "median rms dBFS"),
    "median_silence_fraction": (+1, 0.05, "median silence fraction"),
}
# Reasons that say nothing about a recording's audio or alignment (choices, or the file is absent).
NOT_FAULTS = reasons_where(recording_fault=False)


def recording_stats(rows: pd.DataFrame, measured: dict) -> pd.DataFrame:
    """One row per recording. ``rows``: every input row with recording, reason (final, None = kept),
    similarity, chars_per_second. ``measured``: {recording: measures.summarize(...)} from the shards."""
    rows = rows[rows["recording"].notna()].assign(recording=lambda d: d["recording"].astype(str))
    g = rows.groupby("recording", sort=True)
    stats = pd.DataFrame(
        {
            "rows_in": g.size(),
            "rows_kept": g["reason"].apply(lambda r: int(r.isna().sum())),
            "median_similarity": g["similarity"].median(),
            "median_chars_per_second": g["chars_per_second"].median(),
        }
    )
    fault = rows["reason"].notna() & ~rows["reason"].isin(NOT_FAULTS)
    stats["fault_share"] = fault.groupby(rows["recording"]).mean()
    shares = pd.crosstab(rows["recording"], rows["reason"].fillna("kept"), normalize="index")
    stats["reject_share"] = pd.Series(
        [
            {r: round(float(v), 4) for r, v in shares.loc[rec].items() if v > 0 and r != "kept"}
            for rec in stats.index
        ],
        index=stats.index,
        dtype=object,
    )
    m = pd.DataFrame.from_dict(measured, orient="index") if measured else pd.DataFrame()
    for col in ("median_rms_db", "median_silence_fraction", "median_peak_db", "clipped_clips"):
        stats[col] = m[col].reindex(stats.index) if col in m else np.nan
    stats["clipped_clips"] = stats["clipped_clips"].astype(
        "Int64"
    )  # a count, null where nothing was cut
    return stats


def find_suspects(stats: pd.DataFrame) -> pd.DataFrame:
    """Adds ``suspicion`` (largest |z| in a troubling direction, 0 when none) and ``suspect`` (the
    reasons, '' when not suspect) to ``recording_stats``; sorted by suspicion, most suspect first."""
    stats = stats.copy()
    stats["suspicion"], stats["suspect"] = 0.0, ""
    judged = stats["rows_in"] >= MIN_ROWS
    if judged.sum() >= MIN_RECORDINGS:
        why: dict = {rec: [] for rec in stats.index}
        for col, (direction, floor, label) in RULES.items():
            x = stats.loc[judged, col].astype(float).dropna()
            if len(x) < MIN_RECORDINGS:
                continue
            med = float(x.median())
            scale = max(1.4826 * float((x - med).abs().median()), floor)
            z = (x - med) / scale
            bad = z.abs() if direction == 0 else (z * direction).clip(lower=0)
            stats.loc[bad.index, "suspicion"] = np.maximum(stats.loc[bad.index, "suspicion"], bad)
            for rec in bad.index[bad > Z_LIMIT]:
                why[rec].append(f"{label} {x[rec]:.2f} (corpus median {med:.2f}, z {z[rec]:+.1f})")
        stats["suspect"] = ["; ".join(why[rec]) for rec in stats.index]
    return stats.sort_values(["suspicion"], ascending=False, kind="stable")


def report_section(stats: pd.DataFrame) -> dict:
    """The per-recording part of report.json: {recording: stats}, most suspect first."""
    out = {}
    for rec, r in stats.iterrows():
        out[rec] = {
            k: (
                None
                if v is pd.NA or (isinstance(v, float) and v != v)
                else round(float(v), 4)
                if isinstance(v, (float, np.floating))
                else int(v)
                if isinstance(v, (np.integer,))
                else v
            )
            for k, v in r.items()
        }
    return out


def suspects_text(stats: pd.DataFrame) -> str:
    """suspect_recordings.txt: one recording id per line with the reason as a comment, the form
    ``splits.exclude_ids`` reads (``#`` comments ignored; an id holding ``#`` as a JSON string)."""
    sus = stats[stats["suspect"] != ""]
    head = (
        f"# suspect recordings: robust z-score beyond {Z_LIMIT} against the corpus (see report.json "
        f"'recordings'); {len(sus)} of {len(stats)}\n"
    )
    return head + "".join(id_list_line(str(rec), why) for rec, why in sus["suspect"].items())
