"""Planning's worker side: what runs on one partition of the table (pure pandas). Check its rows,
number them, mark duplicates, join them with the audio files, hash their split units, label them,
and sum them up. ``planning.client`` drives these passes and combines their small results.
"""

from __future__ import annotations

import functools
import pickle
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..config import ColumnsConfig, FiltersConfig, InputConfig, TextConfig
from ..curate.splits import (
    listed,
    seeded_hash,
    split_units,
)
from ..ingest import rows as rowchecks
from ..ingest import table
from ..ingest.recordings import resolve
from ..ingest.resolved import ResolvedInput
from ..schema import (
    CHECKED_COLUMNS,
    ELIGIBLE,
    ENCODING,
    HASH,
    JOINED_COLUMNS,
    JSON_KEY,
    PLACED_COLUMNS,
    PLANNING_SCRATCH,
    POOL,
    RECORDING_COLUMNS,
    TEST,
    UNIT_COLUMNS,
    check_frame_columns,
)

# what the duplicate-audio policy needs of a row (``curate.duplicates.decide``)
AUDIO_ROW_COLUMNS = ["id", "recording", "start", "end", "row", "reason", "unit"]

BUCKET_BITS = 16  # 65,536 buckets of the seeded hash: a bucket of a 50M-row table holds ~760 units


class TableLayout(NamedTuple):
    """The table as its reader sees it, worked out on a worker (``table_layout``)."""

    columns: list[str]  # the user's columns, as read
    partitions: int
    graph: bytes  # the partitions' lazy Dask frame, pickled: opaque to the client


def table_layout(resolved: ResolvedInput) -> TableLayout:
    """On a worker: the table as a lazy dask frame (``ResolvedInput.read_raw``: files listed, a
    CSV's first block sampled, a JSON document's columns read here), its columns and partitions.
    The client never builds it, so it never imports dask.dataframe (~1 s of every command's start)."""
    import cloudpickle
    import dask

    with dask.config.set({"dataframe.convert-string": False, "scheduler": "sync"}):
        ddf = resolved.read_raw()
        parts = ddf.to_delayed()
    return TableLayout([str(c) for c in ddf.columns], len(parts), cloudpickle.dumps(parts))


@functools.lru_cache(maxsize=1)
def _partitions(graph: bytes) -> list:
    return pickle.loads(graph)  # written by table_layout, on this cluster


def read_partition(layout: TableLayout, i: int) -> pd.DataFrame:
    """Partition ``i`` of the table, read here (in input order, as ``table_layout`` cut it)."""
    import dask

    with dask.config.set({"dataframe.convert-string": False}):
        (frame,) = dask.compute(_partitions(layout.graph)[i], scheduler="sync")
    return frame


# ---- what each pass returns for one partition (the client takes the fields apart as futures) ----


class IdHashes(NamedTuple):
    """The distinct id hashes of some partitions, and those among them that repeat."""

    all: np.ndarray
    repeated: np.ndarray


class CheckedPart(NamedTuple):
    rows: pd.DataFrame
    n: int
    id_hashes: IdHashes
    encodings: dict  # alignment files decoded per encoding (``schema.ENCODING``)


class PreparedPart(NamedTuple):
    rows: pd.DataFrame
    summary: dict  # the join's: refs found ("refs"), rows each exclusion list matched ("excluded")
    test_units: set  # units with a row listed in splits.test_ids
    audio_rows: pd.DataFrame  # AUDIO_ROW_COLUMNS of the eligible rows of recordings sharing audio


class PooledPart(NamedTuple):
    rows: pd.DataFrame
    prev_units: set  # pool units holding a previous dev id
    fixed_bytes: float  # estimated bytes of the rows already placed (test, low_similarity)
    histogram: np.ndarray | None  # pool_histogram; None with a previous dev (left out once known)


class LabelledPart(NamedTuple):
    rows: pd.DataFrame
    summary: dict  # summary_part


# ---- worker side: one partition each (pure pandas) ----


def check_part(
    pdf: pd.DataFrame,
    columns: ColumnsConfig,
    inp: InputConfig,
    text: TextConfig,
    filters: FiltersConfig,
    reader_extras: bool,
) -> CheckedPart:
    """One partition checked; returns (frame, rows, its id hashes for the duplicates)."""
    texts = {getattr(columns, k) for k in ("id", "recording", "text", "hypothesis", "speaker")} | {
        JSON_KEY
    }
    # the cells canonical() reads one by one: iterating Arrow-backed strings costs several times more
    pdf = pdf.astype(
        {c: object for c in pdf.columns if c in texts and isinstance(pdf[c].dtype, pd.StringDtype)}
    )
    canon = table.canonical(pdf, columns, inp.id_template, reader_extras=reader_extras)
    checked = rowchecks.check_rows(
        canon, text, filters, inp.id_template, absolute_recordings=inp.audio is None
    )
    check_frame_columns(checked.columns, CHECKED_COLUMNS, "checked")
    return CheckedPart(checked, len(checked), _id_hashes(checked), encodings_of(pdf))


def encodings_of(pdf: pd.DataFrame) -> dict[str, int]:
    """{encoding: files} of a reader's partition (``schema.ENCODING``: a tuple per recording)."""
    if ENCODING not in pdf.columns:
        return {}
    return {str(k): int(n) for k, n in pdf[ENCODING].dropna().explode().value_counts().items()}


def _number(pdf: pd.DataFrame, offset: int) -> pd.DataFrame:
    pdf = pdf.reset_index(drop=True)
    pdf.insert(0, "row", np.arange(offset, offset + len(pdf), dtype=np.int64))
    return pdf


def _id_hash_values(pdf: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(pdf["id"].astype(str), index=False).to_numpy()


def _id_hashes(pdf: pd.DataFrame) -> IdHashes:
    """(unique id hashes, hashes seen twice) of a partition."""
    u, n = np.unique(_id_hash_values(pdf), return_counts=True)
    return IdHashes(u, u[n > 1])


def merge_hashes(a: IdHashes, b: IdHashes) -> IdHashes:
    both = np.concatenate([a.all, b.all])
    u, n = np.unique(both, return_counts=True)
    return IdHashes(u, np.union1d(np.union1d(a.repeated, b.repeated), u[n > 1]))


def rows_with_hashes(pdf: pd.DataFrame, hashes: np.ndarray) -> pd.DataFrame:
    """id and position in the partition of the rows whose id hash is one of ``hashes``."""
    at = np.nonzero(np.isin(_id_hash_values(pdf), hashes))[0]
    return pd.DataFrame({"id": pdf["id"].to_numpy(object)[at], "at": at})


def _mark_duplicates(pdf: pd.DataFrame, first_row: dict) -> pd.DataFrame:
    if first_row:
        first = pdf["id"].map(first_row).fillna(-1).astype(np.int64)
        dup = first.ge(0) & first.ne(pdf["row"])
        rowchecks.reject(
            pdf, dup, "duplicate_id", lambda d: "first at row " + first[d.index].astype(str)
        )
    return pdf


def prepare_part(
    pdf: pd.DataFrame, offset: int, first_row: dict, join: dict, units: dict, sharing: set
) -> PreparedPart:
    """Numbered, duplicates marked, joined with the audio files, units hashed: one task per partition.
    Returns (frame, join summary, units with a listed test row, the eligible rows of the recordings
    in ``sharing``: those in a pair of recordings sharing audio)."""
    pdf = _mark_duplicates(_number(pdf, offset), first_row)
    pdf, summary = _resolve_part(pdf, **join)
    pdf, tests = _units_part(pdf, **units)
    audio = pdf.loc[pdf[ELIGIBLE] & pdf["recording"].isin(sharing), AUDIO_ROW_COLUMNS]
    return PreparedPart(pdf, summary, tests, audio.reset_index(drop=True))


class SharedAudioPart(NamedTuple):
    rows: pd.DataFrame
    test_units: set  # units with a row listed in splits.test_ids, after the policy


def duplicate_audio_part(pdf: pd.DataFrame, rejects: dict, merges: dict, units: dict):
    """The planning policy for recordings sharing audio (``curate.duplicates.decide``'s result):
    ``rejects`` {row: detail} become ``duplicate_audio`` (no longer eligible, no unit), and every
    unit in ``merges`` is replaced by the unit it merges into, hashed again. ``units``: by, seed."""
    hit = pdf["row"].isin(list(rejects))
    rowchecks.reject(pdf, hit, "duplicate_audio", pdf["row"].map(rejects))
    pdf.loc[hit, ELIGIBLE] = False
    pdf.loc[hit, TEST] = False
    pdf.loc[hit, "unit"] = None
    pdf.loc[hit, HASH] = np.uint64(0)
    moved = pdf[ELIGIBLE] & pdf["unit"].isin(list(merges))
    if moved.any():
        pdf.loc[moved, "unit"] = pdf.loc[moved, "unit"].map(merges)
        pdf.loc[moved, HASH] = seeded_hash(pdf.loc[moved, "unit"], units["seed"])
    tests = set(pdf.loc[pdf[TEST], "unit"]) if units["by"] != "segment" else set()
    return SharedAudioPart(pdf, tests)


def _resolve_part(pdf: pd.DataFrame, listing, wav_scp, where: str, excludes: list) -> tuple:
    """The file join and the exclusion lists of one partition; returns (frame, small summary)."""
    refs = pdf["recording"].where(pdf["reason"].ne("invalid_recording_id"), None)
    found, refs_found = _resolve_distinct(refs, listing, wav_scp)
    pdf["url"] = found["url"]
    pdf["recording_key"] = found["key"]
    rowchecks.mark_unread_pipes(pdf, wav_scp)
    ambiguous = found["candidates"].notna()
    rowchecks.mark_missing_audio(pdf, found["url"].mask(ambiguous, ""), where)
    rowchecks.mark_ambiguous(pdf, found["candidates"])
    hits = []
    for path, ids, by in excludes:
        hit = listed(pdf, ids, by)
        rowchecks.reject(pdf, hit, "excluded", f"listed in {path}")
        hits.append(int(hit.sum()))
    check_frame_columns(pdf.columns, JOINED_COLUMNS, "joined")
    return pdf, {"refs": refs_found, "excluded": hits}


def _resolve_distinct(refs: pd.Series, listing, wav_scp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``resolve`` once per distinct reference: (its frame for every row, and per reference with ``ref``,
    in order of first appearance). A table names each recording many times."""
    codes, uniques = pd.factorize(
        refs
    )  # a missing reference: -1, which picks the None appended below
    distinct = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    found = resolve(distinct, listing, wav_scp)
    per_row = {}
    for col in found.columns:
        values = np.empty(len(found) + 1, dtype=object)
        values[:-1] = found[col].to_numpy(object)
        per_row[col] = pd.Series(values[codes], index=refs.index, dtype=object)
    return pd.DataFrame(per_row), pd.concat([distinct.rename("ref").to_frame(), found], axis=1)


def _units_part(pdf: pd.DataFrame, by: str, seed: int, test_keys, low_split: bool) -> tuple:
    """Eligible rows get their unit and its hash; returns (frame, units with a listed test row)."""
    eligible = pdf["reason"].isna() | (low_split & pdf["reason"].eq("low_similarity").fillna(False))
    cols = ["id", "recording", "duration", "reason"] + [
        c for c in ("recording_key", "speaker") if c in pdf
    ]
    unit = split_units(pdf.loc[eligible, cols], by)
    pdf["unit"] = pd.Series(None, index=pdf.index, dtype=object)
    pdf.loc[eligible, "unit"] = unit.astype(object)
    pdf[HASH] = np.zeros(len(pdf), dtype=np.uint64)
    pdf.loc[eligible, HASH] = seeded_hash(unit, seed)
    pdf[ELIGIBLE] = eligible
    test = eligible & pdf["reason"].isna() & listed(pdf, test_keys, by)
    pdf[TEST] = test
    return pdf, set(pdf.loc[test, "unit"]) if by != "segment" else set()


def pool_part(
    pdf: pd.DataFrame, by: str, test_units: set, low_split: bool, previous_dev, policy
) -> PooledPart:
    """Test and low_similarity rows; the pool of the others. Returns (frame, prev units, fixed bytes,
    ``pool_histogram`` of the pool: None with a previous dev, whose units it must leave out once known)."""
    ok = pdf[ELIGIBLE] & pdf["reason"].isna()
    test = pdf[TEST] if by == "segment" else ok & pdf["unit"].isin(test_units)
    pdf["split"] = pd.Series(None, index=pdf.index, dtype=object)
    pdf.loc[test, "split"] = "test"
    low = pdf[ELIGIBLE] & pdf["reason"].eq("low_similarity").fillna(False).astype(bool) & ~test
    if low_split:
        pdf.loc[low, "split"] = "low_similarity"
    pdf[POOL] = ok & ~test
    fixed = pdf["split"].notna()
    fixed_bytes = float(policy.estimated_bytes(pdf.loc[fixed, "duration"]).sum())
    prev = set(pdf.loc[pdf[POOL] & pdf["id"].isin(previous_dev), "unit"])
    return PooledPart(pdf, prev, fixed_bytes, None if previous_dev else pool_histogram(pdf, set()))


def unit_partials(pdf: pd.DataFrame, prev_units: set, buckets, policy) -> pd.DataFrame:
    """Per-unit rows, seconds and estimated bytes of the pool rows of the given hash buckets (all
    with ``buckets`` None), prev units always included: flag ``prev``."""
    pool = pdf[pdf[POOL]]
    prev = pool["unit"].isin(prev_units)
    take = (
        prev
        if buckets is None
        else prev
        | np.isin(
            pool[HASH].to_numpy() >> np.uint64(64 - BUCKET_BITS),
            np.asarray(buckets, dtype=np.uint64),
        )
    )
    if buckets is None:
        take = pd.Series(True, index=pool.index)
    p = pool[take]
    agg = pd.DataFrame(
        {
            "unit": p["unit"],
            "hash": p[HASH],
            "rows": 1,
            "seconds": p["duration"],
            "bytes": policy.estimated_bytes(p["duration"]),
            "prev": prev[take],
        }
    )
    return (
        agg.groupby("unit", sort=False, dropna=False)
        .agg(
            hash=("hash", "first"),
            rows=("rows", "sum"),
            seconds=("seconds", "sum"),
            bytes=("bytes", "sum"),
            prev=("prev", "first"),
        )
        .reset_index()[UNIT_COLUMNS]
    )


def pool_histogram(pdf: pd.DataFrame, prev_units: set) -> np.ndarray:
    """Rows, seconds and distinct-unit count per hash bucket of the pool, prev units left out."""
    pool = pdf[pdf[POOL] & ~pdf["unit"].isin(prev_units)]
    b = (pool[HASH].to_numpy() >> np.uint64(64 - BUCKET_BITS)).astype(np.int64)
    n = 1 << BUCKET_BITS
    return np.stack(
        [
            np.bincount(b, minlength=n).astype(float),
            np.bincount(b, weights=pool["duration"].to_numpy(float), minlength=n),
        ]
    )


def _after(pdf: pd.DataFrame, prev_units: set, cut) -> pd.Series:
    """Pool rows whose unit comes at or after ``cut`` = (prev flag, hash, unit) in the order."""
    if cut is None:
        return pd.Series(False, index=pdf.index)
    flag = (~pdf["unit"].isin(prev_units)).astype(int).to_numpy()
    h = pdf[HASH].to_numpy()
    cf, ch, cu = cut
    same = (flag == cf) & (
        h == np.uint64(ch)
    )  # the cut's own hash: rare, so units compared as text only here
    tie = np.zeros(len(pdf), dtype=bool)
    if same.any():
        tie[same] = [str(x) >= cu for x in pdf["unit"].to_numpy()[same]]
    after = (flag > cf) | ((flag == cf) & (h > np.uint64(ch))) | tie
    return pd.Series(after, index=pdf.index) & pdf[POOL]


def label_part(
    pdf: pd.DataFrame, head: dict, prev_units: set, cuts: list, count: dict
) -> LabelledPart:
    """Dev / reserve / train of the pool rows, over_budget beyond the cuts; the rest as planned.
    Returns (frame, ``summary_part`` of it with ``count``'s arguments)."""
    pool = pdf[POOL]
    at = pd.Index(list(head), dtype=object).get_indexer(
        pdf["unit"]
    )  # -1 (not in head) picks the last entry
    role = pd.Series(
        np.array([r for r, _ in head.values()] + [None], dtype=object)[at], index=pdf.index
    )
    pdf.loc[pool, "split"] = role[pool].fillna("train")
    pdf["order"] = np.array([o for _, o in head.values()] + [-1], dtype=np.int64)[at]
    over = pd.Series(None, index=pdf.index, dtype=object)
    for cut, message in reversed(cuts):  # the first budget's message wins where both apply
        over = over.mask(_after(pdf, prev_units, cut), message)
    pdf.loc[over.notna(), "split"] = None
    kept_low = pdf["split"].eq("low_similarity").fillna(False)
    pdf.loc[kept_low, ["reason", "detail"]] = None
    rowchecks.reject(pdf, over.notna(), "over_budget", over)
    pdf = pdf.drop(columns=PLANNING_SCRATCH)
    check_frame_columns(pdf.columns, PLACED_COLUMNS, "placed")
    return LabelledPart(pdf, summary_part(pdf, **count))


def summary_part(pdf: pd.DataFrame, test_keys, by: str, previous_dev, with_speaker: bool) -> dict:
    """Counts of one placed partition (reserve counted as itself) and its per-recording aggregates."""
    split = pdf["split"]
    kept = split.notna()
    k = pdf.loc[kept, ["split", "duration", "recording", "end", "url", "id"]]  # not every column
    out = {
        "splits": {
            s: (int(n), float(d))
            for s, (n, d) in k.groupby("split")["duration"].agg(["count", "sum"]).iterrows()
        },
        "reasons": {r: int(n) for r, n in pdf["reason"].value_counts().items()},
        "recordings": k.groupby("recording", sort=False)
        .agg(seconds=("end", "max"), url=("url", "first"), rows=("id", "size"))
        .reset_index()[RECORDING_COLUMNS],
        "test_matched": int(listed(pdf, test_keys, by).sum()) if test_keys else 0,
        "prev_in_dev": int((pdf["id"].isin(previous_dev) & split.eq("dev")).sum())
        if previous_dev
        else 0,
        "without_speaker": int((kept & pdf["speaker"].isna()).sum()) if "speaker" in pdf else 0,
        "has_words": "words" in pdf
        and bool(pdf["words"].notna().any()),  # readers give the column to every partition
        "ids_from_template": _blank_count(
            pdf.loc[pdf["reason"].ne("unreadable_alignment"), "source_id"]
        )
        if "source_id" in pdf
        else 0,
    }  # a malformed line's row has an id naming its file and line
    if with_speaker:
        out["speakers"] = {
            s: set(g.dropna()) for s, g in pdf.loc[kept, "speaker"].groupby(split[kept])
        }
    return out


def _blank_count(source_id: pd.Series) -> int:
    """Rows whose own id was missing: null or blank (``canonical`` gives text or None)."""
    given = source_id[source_id.notna()]
    return int(
        len(source_id)
        - len(given)
        + (given.astype(str).str.strip().eq("").sum() if len(given) else 0)
    )
