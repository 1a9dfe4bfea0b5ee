"""The audio fingerprints a build keeps: each shard task writes its recordings' hashes
(``write_part``, OUT/.parts/fingerprints/), finalize merges them into OUT/fingerprints.parquet
(``merge_parts``) with the earlier build's hashes of the audio this build did not decode (a
recording not decoded, or decoded less: its rows now rejected as copies), so a recording decoded
once is never decoded again for its fingerprint, and its fingerprint never shrinks. Matching
(``planning/audio_matches.match_recordings``) reads the file at ``url`` on the workers.

A file made with other fingerprint settings (``fingerprint.VERSION``, in the Parquet metadata) is
ignored: its hashes are not comparable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..audio import fingerprint
from . import storage

BIN_FRAMES = 64  # 2.048 s: an earlier build's hashes are kept in the bins this build has none in
_META = {b"etl_fingerprint": fingerprint.VERSION.encode()}
SCHEMA = pa.schema(
    [("recording", pa.string()), ("hash", pa.uint32()), ("t", pa.int32())], metadata=_META
)


def table(prints: dict[str, np.ndarray]) -> pa.Table:
    """One table of the hashes of each recording (``fingerprint.HASH_DTYPE`` arrays)."""
    rows = [(r, h) for r, h in prints.items() if len(h)]
    empty = np.zeros(0, dtype=fingerprint.HASH_DTYPE)
    hashes = np.concatenate([h for _, h in rows]) if rows else empty
    names = [np.full(len(h), r, dtype=object) for r, h in rows]
    return pa.Table.from_arrays(
        [
            pa.array(np.concatenate(names) if names else [], pa.string()),
            pa.array(hashes["hash"], pa.uint32()),
            pa.array(hashes["t"], pa.int32()),
        ],
        schema=SCHEMA,
    )


def write_part(out: str, shard: int, prints: dict[str, np.ndarray]) -> None:
    """The hashes of shard ``shard``'s recordings, under OUT/.parts/fingerprints/ (a silent
    recording has no rows; a shard without fingerprints writes no file)."""
    if not prints:
        return
    fs, root = storage.fs_and_path(out)
    folder = storage.join(root, storage.PARTS_DIR, storage.FINGERPRINT_PARTS_DIR)
    fs.makedirs(folder, exist_ok=True)
    path = storage.join(folder, storage.fingerprint_part_name(shard))
    with storage.atomic_open(fs, path) as f:
        pq.write_table(table(prints), f, compression="zstd")


def _comparable(fs, path: str) -> bool:
    if not fs.exists(path):
        return False
    with fs.open(path, "rb") as f:
        meta = pq.read_schema(f).metadata or {}
    return meta.get(b"etl_fingerprint") == _META[b"etl_fingerprint"]


def exists(out: str) -> bool:
    """OUT/fingerprints.parquet is there, made with this version's settings (``url`` gives it)."""
    fs, root = storage.fs_and_path(out)
    return _comparable(fs, storage.join(root, storage.FINGERPRINTS_FILE))


def merge_parts(out: str) -> int:
    """OUT/fingerprints.parquet: this build's parts, then the earlier file's hashes in the 2-s bins
    of each recording that no part has a hash in, or after its part's last hash: its recordings
    this build did not decode, and the parts of those it decoded less of (rows now rejected,
    decoding stopped sooner, skipped stretches), so a recording's fingerprint never shrinks. One part, one batch at a time. Returns the
    recordings written (0: none, nothing written)."""
    fs, root = storage.fs_and_path(out)
    folder = storage.join(root, storage.PARTS_DIR, storage.FINGERPRINT_PARTS_DIR)
    parts = (
        sorted(fs.glob(storage.join(folder, storage.FINGERPRINT_PART_GLOB)))
        if fs.exists(folder)
        else []
    )
    if not parts:
        return 0
    final = storage.join(root, storage.FINGERPRINTS_FILE)
    earlier = _comparable(fs, final)
    seen: set[str] = set()
    bins = []  # (recording, 2-s bin, last t) this build has hashes in
    # atomic_open writes beside `final` (or an uncommitted upload): the earlier file stays readable
    with storage.atomic_open(fs, final) as f, pq.ParquetWriter(f, SCHEMA, compression="zstd") as w:
        for p in parts:
            with fs.open(p, "rb") as src:
                t = pq.read_table(src).cast(SCHEMA)
            seen.update(t.column("recording").unique().to_pylist())
            bins.append(_bins(t).groupby(["recording", "bin"], as_index=False).agg(t=("t", "max")))
            w.write_table(t)
        mine = pd.concat(bins, ignore_index=True)
        last = mine.groupby("recording")["t"].max()
        held = mine[["recording", "bin"]].drop_duplicates()
        for t in _earlier_tables(fs, final) if earlier else ():
            t = t.filter(pa.array(_not_in(_bins(t), held, last)))
            seen.update(t.column("recording").unique().to_pylist())
            w.write_table(t)
    return len(seen)


def _bins(t: pa.Table) -> pd.DataFrame:
    """(recording, bin, t): each hash's time and its 2-s bin."""
    frames = t.column("t").to_numpy()
    return pd.DataFrame(
        {"recording": t.column("recording").to_numpy(), "bin": frames // BIN_FRAMES, "t": frames}
    )


def _not_in(keys: pd.DataFrame, mine: pd.DataFrame, last: pd.Series) -> np.ndarray:
    """Per row of ``keys``: its (recording, bin) holds none of this build's hashes, or it is
    later than this build's last hash of its recording (where decoding stopped)."""
    hit = keys.merge(mine.assign(_mine=True), on=["recording", "bin"], how="left")["_mine"]
    after = keys["t"].to_numpy() > keys["recording"].map(last).fillna(np.inf).to_numpy()
    return hit.isna().to_numpy() | after


def _earlier_tables(fs, path: str):
    with fs.open(path, "rb") as src:
        for batch in pq.ParquetFile(src).iter_batches(batch_size=1 << 20):
            yield pa.Table.from_batches([batch]).cast(SCHEMA)


def url(out: str) -> str | None:
    """The URL of OUT/fingerprints.parquet (matching reads it on the workers:
    ``planning/audio_matches.parquet_pieces``), or None (none, or made with other settings)."""
    fs, root = storage.fs_and_path(out)
    if not _comparable(fs, storage.join(root, storage.FINGERPRINTS_FILE)):
        return None
    return out.rstrip("/") + "/" + storage.FINGERPRINTS_FILE
