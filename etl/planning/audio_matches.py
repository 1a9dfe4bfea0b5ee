"""Recordings that share audio, found by a hash join of their fingerprints on the cluster.

The input is a Dask frame of (recording, hash, t) rows, the landmark hashes of
``etl/audio/fingerprint.py``. Two copies of the same audio share many hashes, all at one offset
``t_b - t_a``; two recordings that only share words (another voice) share a few by chance, at
scattered offsets. So:

1. **document frequency**: a hash found in more than ``MatchRules.max_recordings`` recordings is
   dropped (a music bed or station sound under hundreds of recordings would make the join
   quadratic); the rule caps the join at max_recordings² pairs per hash;
2. **the join**: the kept hashes merged with themselves on ``hash`` (pairs a < b), each hit counted
   per (a, b, offset in frames, 2-s bin of t_a), on the workers;
3. **per pair** (the counts shuffled by pair): the best offset is the one with the most hits,
   counting its neighbours (±1 frame: an excerpt's frames are not aligned with the original's);
   the time bins of t_a with at least ``min_bin_hits`` hits at that offset are the shared audio.

A pair matches when it has at least ``min_hits`` hits in at least ``min_seconds`` (10 s) of shared
bins. A shared intro, jingle or sign-off shorter than that (5 s) is not a duplicate; silence has no
peaks, so no hashes. Only the matching pairs reach the client.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..audio.fingerprint import FRAME_SECONDS

BIN_FRAMES = 64  # a time bin of t_a: 2.048 s
MATCH_COLUMNS = [
    "recording_a",
    "recording_b",
    "offset",  # seconds: audio at t in a is at t + offset in b
    "start_a",  # the shared audio in a, seconds (the first and the end of its shared bins)
    "end_a",
    "shared_seconds",  # the bins with hits at the offset, seconds
    "hits",  # the score: hashes the pair shares at the offset (±1 frame)
]


@dataclass(frozen=True)
class MatchRules:
    max_recordings: int = 50  # a hash in more recordings is dropped (cost; music beds)
    min_hits: int = 20  # hashes shared at one offset
    min_bin_hits: int = 2  # hits in a 2-s bin for it to count as shared
    min_seconds: float = 10.0  # shared bins: a shorter shared intro or jingle is no duplicate


def match_recordings(hashes, rules: MatchRules = MatchRules()) -> pd.DataFrame:
    """The pairs of recordings that share audio (``MATCH_COLUMNS``), from a Dask frame of
    (recording, hash, t). Runs on the cluster; returns only the matching pairs."""
    kept = _frequent_dropped(hashes[["recording", "hash", "t"]], rules.max_recordings)
    pairs = kept.merge(kept, on="hash", suffixes=("_a", "_b"))
    pairs = pairs[pairs["recording_a"] < pairs["recording_b"]]
    pairs = pairs.assign(
        offset=pairs["t_b"] - pairs["t_a"],
        tbin=pairs["t_a"] // BIN_FRAMES,
    )
    keys = ["recording_a", "recording_b", "offset", "tbin"]
    counts = pairs.groupby(keys).size().rename("n").reset_index()
    by_pair = counts.shuffle(on=["recording_a", "recording_b"])
    found = by_pair.map_partitions(best_offsets, rules, meta=_no_matches()).compute()
    return found.sort_values(["recording_a", "recording_b"]).reset_index(drop=True)


_MATCH_DTYPES = {
    "recording_a": "object",
    "recording_b": "object",
    "offset": "float64",
    "start_a": "float64",
    "end_a": "float64",
    "shared_seconds": "float64",
    "hits": "int64",
}


def _no_matches() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _MATCH_DTYPES.items()})


def _frequent_dropped(hashes, max_recordings: int):
    """``hashes`` without the hashes found in more than ``max_recordings`` recordings."""
    per_hash = hashes[["hash", "recording"]].drop_duplicates().groupby("hash").size()
    keep = per_hash[per_hash <= max_recordings].rename("df").to_frame()
    return hashes.merge(keep, left_on="hash", right_index=True)[["recording", "hash", "t"]]


def best_offsets(counts: pd.DataFrame, rules: MatchRules) -> pd.DataFrame:
    """The matching pairs of ``counts`` (recording_a, recording_b, offset, tbin, n), every pair's
    counts in this frame: the best offset (±1 frame), its shared bins, the rule applied."""
    empty = _no_matches()
    if counts.empty:
        return empty
    pair = ["recording_a", "recording_b"]
    per_offset = counts.groupby([*pair, "offset"], sort=True)["n"].sum().reset_index()
    per_offset = per_offset[per_offset.groupby(pair)["n"].transform("max") >= 2]
    if per_offset.empty:
        return empty
    smooth = _with_neighbours(per_offset, pair)
    best = smooth.loc[smooth.groupby(pair)["near"].idxmax(), [*pair, "offset"]]
    near = counts.merge(best.rename(columns={"offset": "best"}), on=pair)
    near = near[(near["offset"] - near["best"]).abs() <= 1]
    return _shared(near, pair, rules)


def _with_neighbours(per_offset: pd.DataFrame, pair: list[str]) -> pd.DataFrame:
    """``per_offset`` with ``near``: its hits plus those at offset ±1 of the same pair."""
    out = per_offset.copy()
    out["near"] = out["n"]
    for d in (-1, 1):
        shifted = per_offset.assign(offset=per_offset["offset"] + d).rename(columns={"n": "add"})
        out = out.merge(shifted, on=[*pair, "offset"], how="left")
        out["near"] += out.pop("add").fillna(0).astype(np.int64)
    return out


def _shared(near: pd.DataFrame, pair: list[str], rules: MatchRules) -> pd.DataFrame:
    """Per pair, from its hits at the best offset ±1 per time bin: the offset (mean of the hits'),
    the shared bins, the hits in them; only the pairs the rules call a match."""
    per_bin = near.groupby([*pair, "tbin"])["n"].sum().reset_index()
    shared_bins = per_bin[per_bin["n"] >= rules.min_bin_hits]
    near = near.merge(shared_bins[[*pair, "tbin"]], on=[*pair, "tbin"])
    near = near.assign(weighted=near["offset"] * near["n"])
    g = near.groupby(pair)
    out = pd.DataFrame(
        {
            "offset": g["weighted"].sum() / g["n"].sum() * FRAME_SECONDS,
            "start_a": g["tbin"].min() * BIN_FRAMES * FRAME_SECONDS,
            "end_a": (g["tbin"].max() + 1) * BIN_FRAMES * FRAME_SECONDS,
            "shared_seconds": g["tbin"].nunique() * BIN_FRAMES * FRAME_SECONDS,
            "hits": g["n"].sum().astype(np.int64),
        }
    ).reset_index()
    ok = (out["hits"] >= rules.min_hits) & (out["shared_seconds"] >= rules.min_seconds)
    return out[ok][list(_MATCH_DTYPES)].reset_index(drop=True)
