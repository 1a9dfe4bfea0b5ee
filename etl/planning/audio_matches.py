"""Recordings that share audio, found by a hash join of their fingerprints on the cluster.

The input is (recording, hash, t) rows, the landmark hashes of
``etl/audio/fingerprint.py``. Two copies of the same audio share many hashes, all at one offset
``t_b - t_a``; two recordings that only share words (another voice) share a few by chance, at
scattered offsets. So:

1. **document frequency**: a hash found in more than ``MatchRules.max_recordings`` recordings is
   dropped (a music bed or station sound under hundreds of recordings would make the join
   quadratic); the rule caps the join at max_recordings² pairs per hash;
2. **the join**: the kept hashes merged with themselves on ``hash`` (pairs a < b), each hit counted
   per (a, b, offset in frames, 2-s bin of t_a), on the workers, one task per bucket of hashes;
3. **per pair** (the counts split by pair, one task per bucket of pairs): the best offset is the one with the most hits,
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
from ..output import storage

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


ROWS_PER_BUCKET = 4_000_000  # hashes joined by one task (~100 MB as pandas frames)


@dataclass(frozen=True)
class ParquetPiece:
    """Row groups of a Parquet file of (recording, hash, t): what one task reads."""

    url: str
    row_groups: tuple[int, ...]
    rows: int


def parquet_pieces(url: str, rows_per_piece: int = ROWS_PER_BUCKET) -> list[ParquetPiece]:
    """The row groups of ``url`` (its footer read here), in pieces of about ``rows_per_piece``."""
    import pyarrow.parquet as pq

    fs, path = storage.fs_and_path(url)
    with fs.open(path, "rb") as f:
        meta = pq.ParquetFile(f).metadata
    pieces: list[ParquetPiece] = []
    groups: list[int] = []
    rows = 0
    for g in range(meta.num_row_groups):
        groups.append(g)
        rows += meta.row_group(g).num_rows
        if rows >= rows_per_piece or g == meta.num_row_groups - 1:
            pieces.append(ParquetPiece(url, tuple(groups), rows))
            groups, rows = [], 0
    return pieces


def _load(part) -> pd.DataFrame:
    """A frame of (recording, hash, t): ``part`` itself, or the row groups a ``ParquetPiece`` names."""
    if isinstance(part, pd.DataFrame):
        return part[["recording", "hash", "t"]]
    import pyarrow.parquet as pq

    fs, path = storage.fs_and_path(part.url)
    with fs.open(path, "rb") as f:
        table = pq.ParquetFile(f).read_row_groups(
            list(part.row_groups), columns=["recording", "hash", "t"]
        )
    return table.to_pandas()


def _rows(part) -> int:
    return len(part) if isinstance(part, pd.DataFrame) else part.rows


def match_recordings(
    client, parts: list, rules: MatchRules = MatchRules(), rows_per_bucket: int = ROWS_PER_BUCKET
) -> pd.DataFrame:
    """The pairs of recordings that share audio (``MATCH_COLUMNS``), from ``parts`` of
    (recording, hash, t): frames, or ``ParquetPiece`` s the workers read. Plain tasks on
    ``client``'s cluster (no Dask dataframe: no graph to build or unpickle, nothing imported on the
    client): each part is split by hash into buckets, each bucket (every row of its hashes) joined
    with itself and its hits counted, the counts split by pair and each pair's best offset found.
    One bucket (a corpus of up to ~``rows_per_bucket`` hashes, ~1,000 h) is one task. Returns only
    the matching pairs."""
    buckets = max(1, -(-sum(_rows(p) for p in parts) // rows_per_bucket))
    if buckets == 1:
        found = client.submit(match_local, parts, rules, pure=False).result()
    else:
        split = client.map(_split_by_hash, parts, buckets=buckets, pure=False)
        counts = [
            client.submit(_bucket_counts, [_pick(client, s, b) for s in split], rules, buckets)
            for b in range(buckets)
        ]
        found = pd.concat(
            client.gather(
                [
                    client.submit(_pair_matches, [_pick(client, c, j) for c in counts], rules)
                    for j in range(buckets)
                ]
            ),
            ignore_index=True,
        )
    found = found.astype(_MATCH_DTYPES)
    return found.sort_values(["recording_a", "recording_b"]).reset_index(drop=True)


def _pick(client, future, i: int):
    import operator

    return client.submit(operator.getitem, future, i)


def match_local(parts: list, rules: MatchRules) -> pd.DataFrame:
    """The whole match in this process (on a worker: a corpus small enough for one task)."""
    [counts] = _bucket_counts([pd.concat([_load(p) for p in parts], ignore_index=True)], rules, 1)
    return best_offsets(counts, rules)


def _split_by_hash(part, buckets: int) -> list[pd.DataFrame]:
    """On a worker: ``part``'s rows in ``buckets`` frames by hash, so every row of a hash is in one."""
    df = _load(part)
    key = df["hash"].to_numpy() % buckets
    return [df[key == b] for b in range(buckets)]


def _bucket_counts(pieces: list[pd.DataFrame], rules: MatchRules, splits: int) -> list:
    """On a worker: every row of a bucket's hashes, joined with itself, its hits counted per
    (recording_a, recording_b, offset, tbin); in ``splits`` frames by pair."""
    hashes = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]
    kept = _frequent_dropped(hashes, rules.max_recordings)
    pairs = kept.merge(kept, on="hash", suffixes=("_a", "_b"))
    pairs = pairs[pairs["recording_a"] < pairs["recording_b"]]
    pairs = pairs.assign(offset=pairs["t_b"] - pairs["t_a"], tbin=pairs["t_a"] // BIN_FRAMES)
    keys = ["recording_a", "recording_b", "offset", "tbin"]
    counts = pairs.groupby(keys).size().rename("n").reset_index()
    if splits == 1:
        return [counts]
    key = pd.util.hash_pandas_object(counts[keys[:2]], index=False).to_numpy() % splits
    return [counts[key == j] for j in range(splits)]


def _pair_matches(pieces: list[pd.DataFrame], rules: MatchRules) -> pd.DataFrame:
    """On a worker: the matching pairs among ``pieces``' counts (every count of their pairs)."""
    counts = pd.concat(pieces, ignore_index=True)
    keys = ["recording_a", "recording_b", "offset", "tbin"]
    return best_offsets(counts.groupby(keys)["n"].sum().reset_index(), rules)


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


def _frequent_dropped(hashes: pd.DataFrame, max_recordings: int) -> pd.DataFrame:
    """``hashes`` without the hashes found in more than ``max_recordings`` recordings."""
    per_hash = hashes[["hash", "recording"]].drop_duplicates()["hash"].value_counts()
    common = per_hash.index[per_hash.to_numpy() > max_recordings]
    return hashes[~hashes["hash"].isin(common)][["recording", "hash", "t"]]


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
