"""Policy for recordings that share audio: pure functions over the matched pairs
(``planning/audio_matches.MATCH_COLUMNS``: recording_a, recording_b, offset, start_a, end_a, ...;
audio at t in a is at t + offset in b, and a's shared audio is start_a..end_a) and the rows.

- ``merged_units``: recordings that share audio become one split unit. Every unit (a recording, or
  a speaker) of one recording of a pair is merged with every unit of the other, so no copy's audio
  can sit in two splits; the merged unit is named by its unit seen first in input order.
- ``reject_duplicate_audio``: the first copy is the recording seen first in input order. A row of a
  later copy is ``duplicate_audio`` when at least ``min_share`` of its span, mapped onto the first
  copy by the offset, is audio a kept row of the first copy holds (inside the shared part); its
  detail names that recording, its row, id and the offset. Rows over the rest of a copy are kept.
  Later copies are decided in input order, so a third copy is compared with the rows still kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..ingest.rows import reject
from ..records import DuplicateAudio


def merged_units(rows: pd.DataFrame, pairs: pd.DataFrame) -> dict:
    """``rows`` (recording, unit, row): the unit each unit merges into, for the units that merge."""
    first = rows.groupby("unit")["row"].min()
    units_of = rows.groupby("recording")["unit"].unique()
    parent = {u: u for u in first.index}

    def root(u):
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    for a, b in zip(pairs["recording_a"], pairs["recording_b"]):
        if a not in units_of.index or b not in units_of.index:
            continue
        members = [*units_of[a], *units_of[b]]
        roots = sorted({root(u) for u in members}, key=lambda u: first[u])
        for r in roots[1:]:
            parent[r] = roots[0]
    return {u: root(u) for u in parent if root(u) != u}


def oriented(pairs: pd.DataFrame, first_row: pd.Series) -> pd.DataFrame:
    """Each pair as (first, later, offset: t in later = t in first + offset, shared_start,
    shared_end: the shared audio in the first's time), the later copies in input order."""
    a_first = (
        first_row.reindex(pairs["recording_a"]).to_numpy()
        <= first_row.reindex(pairs["recording_b"]).to_numpy()
    )
    shift = np.where(a_first, 0.0, pairs["offset"])
    out = pd.DataFrame(
        {
            "first": np.where(a_first, pairs["recording_a"], pairs["recording_b"]),
            "later": np.where(a_first, pairs["recording_b"], pairs["recording_a"]),
            "offset": np.where(a_first, pairs["offset"], -pairs["offset"]),
            "shared_start": pairs["start_a"].to_numpy() + shift,
            "shared_end": pairs["end_a"].to_numpy() + shift,
        }
    )
    out = out[out["first"].isin(first_row.index) & out["later"].isin(first_row.index)]
    order = first_row.reindex(out["later"]).to_numpy()
    return out.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def reject_duplicate_audio(df: pd.DataFrame, pairs: pd.DataFrame, min_share: float | None) -> None:
    """Give ``duplicate_audio`` to the rows of ``df`` (id, recording, start, end, row, reason,
    detail; a kept row has no reason) of later copies whose span is at least ``min_share`` audio a
    kept row of the first copy holds. ``min_share`` None: nothing is rejected (report only)."""
    if min_share is None or pairs.empty or df.empty:
        return
    first_row = df.groupby("recording")["row"].min()
    for p in oriented(pairs, first_row).itertuples():
        share, detail = _held_share(df, p)
        reject(df, share >= min_share, "duplicate_audio", detail)


def _held_share(df: pd.DataFrame, p) -> tuple[pd.Series, pd.Series]:
    """Per row of ``df``: the share of it (a kept row of ``p.later``) the kept rows of ``p.first``
    hold inside the shared part, and a detail naming the first copy's row that holds the most."""
    kept = df["reason"].isna()
    later = df[kept & (df["recording"] == p.later)]
    first = df[kept & (df["recording"] == p.first)]
    later = later.assign(
        lo=(later["start"] - p.offset).clip(lower=p.shared_start),
        hi=(later["end"] - p.offset).clip(upper=p.shared_end),
        key=later.index,
    )
    later = later[later["hi"] > later["lo"]]
    cols = ["key", "lo", "hi", "start", "end"]
    both = later[cols].merge(first[["id", "row", "start", "end"]], how="cross", suffixes=("", "_f"))
    both["held"] = (
        np.minimum(both["hi"], both["end_f"]) - np.maximum(both["lo"], both["start_f"])
    ).clip(lower=0)
    both = both[both["held"] > 0]
    share = pd.Series(0.0, index=df.index)
    detail = pd.Series(None, index=df.index, dtype=object)
    if both.empty:
        return share, detail
    held = both.groupby("key")["held"].sum()
    length = (later.set_index("key")["end"] - later.set_index("key")["start"]).reindex(held.index)
    share.loc[held.index] = (held / length).clip(upper=1.0)
    best = both.loc[both.groupby("key")["held"].idxmax()].set_index("key")
    detail.loc[best.index] = [
        f"the audio of {p.first} row {int(r.row)} ({r.id}), at offset {p.offset:+.2f} s "
        f"({share[k]:.0%} of the clip)"
        for k, r in best.iterrows()
    ]
    return share, detail


def decide(rows: pd.DataFrame, pairs: pd.DataFrame, min_share: float | None) -> tuple[dict, dict]:
    """Both policies over ``rows``: the eligible rows (id, recording, start, end, row, reason,
    unit; reason None: kept) of the recordings in ``pairs``, from any partitions. Returns
    ({row: detail} of the rows that become ``duplicate_audio``, {unit: the unit it merges into}
    over the rows still eligible)."""
    if pairs.empty or rows.empty:
        return {}, {}
    df = rows.sort_values("row").reset_index(drop=True)
    before = df["reason"].copy()
    reject_duplicate_audio(df, pairs, min_share)
    new = df["reason"].eq("duplicate_audio") & before.isna()
    rejects = dict(zip(df.loc[new, "row"].astype(int), df.loc[new, "detail"]))
    return rejects, merged_units(df.loc[~new, ["recording", "unit", "row"]], pairs)


def merged(unit: pd.Series, merges: dict) -> pd.Series:
    """``unit`` with every merging unit replaced by the unit it merges into."""
    if not merges:
        return unit
    return unit.where(~unit.isin(list(merges)), unit.map(merges))


def applied_pairs(pairs: pd.DataFrame, recordings) -> pd.DataFrame:
    """The pairs whose both recordings are among ``recordings`` (those with eligible rows)."""
    keep = pairs["recording_a"].isin(recordings) & pairs["recording_b"].isin(recordings)
    return pairs[keep].reset_index(drop=True)


def said(pairs: pd.DataFrame | None, fingerprints: bool | None = None) -> DuplicateAudio:
    """What report.json and `etl plan` say of the pairs planning applied (None: no fingerprints
    of an earlier build were known). ``fingerprints``: whether there are fingerprints to match
    (default: whether planning had some); a build's report says so of its own, made while
    decoding and matched after (the pairs then are those its last plan applied)."""
    rows = [] if pairs is None else pairs.to_dict("records")
    return {
        "fingerprints": pairs is not None if fingerprints is None else fingerprints,
        "pairs": [
            {
                "recording_a": str(p["recording_a"]),
                "recording_b": str(p["recording_b"]),
                "offset": round(float(p["offset"]), 3),
                "start_a": round(float(p["start_a"]), 3),
                "end_a": round(float(p["end_a"]), 3),
                "shared_hours": float(p["shared_seconds"]) / 3600,
                "hits": int(p["hits"]),
            }
            for p in rows
        ],
    }
