"""The placed table on storage, under ``OUT/.parts/plan/``: written by the workers, read by the workers.

``shard-{i:05d}/part-{p:05d}.parquet`` holds the kept rows of input partition ``p`` that shard ``i``
cuts (the columns of ``schema.PLANNED_COLUMNS`` only), ``rejects/part-{p:05d}.parquet`` the rows
rejected before decoding. A shard task reads only its own folder, so no row passes through the
scheduler or the client; ``submit_merge_rejects`` and ``text_stats`` stream these files into
``rejects.parquet`` and the vocabulary's character counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..output import storage
from ..schema import PLANNED_COLUMNS, RECORDING_ROW_COLUMNS, SPEAKER, DatasetShape


def plan_dir(out: str) -> str:
    fs, root = storage.fs_and_path(out)
    return storage.join(root, storage.PARTS_DIR, storage.PLAN_DIR)


def shard_dir(out: str, shard: int) -> str:
    return storage.join(plan_dir(out), storage.plan_shard_name(shard))


def write_partition(
    pdf: pd.DataFrame, out: str, p: int, shard_of: dict, shape: DatasetShape, buckets: int
) -> int:
    """One placed partition: its kept rows by shard, its rejects, and every row's recording
    statistics inputs by recording bucket (``recording_stats_of_bucket``); returns the rows written."""
    fs, _ = storage.fs_and_path(out)
    _write_recording_rows(fs, pdf, out, p, buckets)
    kept = pdf[pdf["split"].notna()]
    cols = [c for c in PLANNED_COLUMNS if c in kept.columns]
    for shard, rows in kept[cols].groupby(kept["recording"].map(shard_of), sort=True):
        d = shard_dir(out, int(shard))
        fs.makedirs(d, exist_ok=True)
        with storage.atomic_open(fs, storage.join(d, storage.plan_part_name(p))) as f:
            pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), f)
    rej = pdf[pdf["reason"].notna()]
    if len(rej):
        schema = shape.rejects_schema()
        d = storage.join(plan_dir(out), storage.PLAN_REJECTS_DIR)
        fs.makedirs(d, exist_ok=True)
        with storage.atomic_open(fs, storage.join(d, storage.plan_part_name(p))) as f:
            pq.write_table(_rejects_table(rej, schema), f)
    return len(pdf)


def _write_recording_rows(fs, pdf: pd.DataFrame, out: str, p: int, buckets: int) -> None:
    rows = pdf.assign(kept=pdf["split"].notna()).reindex(columns=RECORDING_ROW_COLUMNS)
    rows = rows[rows["recording"].notna()].astype({"recording": str, "id": str})
    b = pd.util.hash_pandas_object(rows["recording"], index=False).to_numpy() % buckets
    for bucket, g in cast("Iterable[tuple[int, pd.DataFrame]]", rows.groupby(b)):
        d = storage.join(
            plan_dir(out), storage.PLAN_RECORDINGS_DIR, storage.bucket_name(int(bucket))
        )
        fs.makedirs(d, exist_ok=True)
        with storage.atomic_open(fs, storage.join(d, storage.plan_part_name(p))) as f:
            pq.write_table(pa.Table.from_pandas(g, preserve_index=False), f)


def recording_buckets(out: str) -> list[str]:
    fs, _ = storage.fs_and_path(out)
    return sorted(
        fs.glob(storage.join(plan_dir(out), storage.PLAN_RECORDINGS_DIR, storage.BUCKET_GLOB))
    )


def recording_stats_of_bucket(
    out: str, bucket: str, late_files: list[str], measured: dict
) -> pd.DataFrame:
    """``suspects.recording_stats`` of the recordings of one bucket (every row of a recording is in
    its bucket), with the reasons found while decoding."""
    from ..curate.suspects import recording_stats

    fs, _ = storage.fs_and_path(out)
    frames = []
    for name in sorted(fs.glob(storage.join(bucket, storage.PLAN_PART_GLOB))):
        with fs.open(name, "rb") as f:
            frames.append(pq.read_table(f).to_pandas())
    rows = pd.concat(frames, ignore_index=True)
    late_df = read_late(out, late_files, ["id", "reason"])
    late = rows["id"].map(dict(zip(late_df["id"], late_df["reason"]))).where(rows["kept"])
    rows = rows.assign(reason=rows["reason"].where(rows["reason"].notna(), late))
    return recording_stats(
        rows, {k: measured[k] for k in rows["recording"].unique() if k in measured}
    )


def empty_recording_stats() -> pd.DataFrame:
    from ..curate.suspects import recording_stats

    return recording_stats(
        pd.DataFrame({c: pd.Series(dtype=object) for c in RECORDING_ROW_COLUMNS}), {}
    )


def _rejects_table(rej: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    strings = {
        c: object
        for c in ("id", "recording", "text_raw", "hypothesis", SPEAKER)
        if c in schema.names
    }
    t = pa.Table.from_pandas(
        rej.reindex(columns=schema.names).astype(strings), schema=schema, preserve_index=False
    )
    return t.append_column("row", pa.array(rej["row"].to_numpy(), pa.int64()))


def read_shard(out: str, shard: int) -> pd.DataFrame:
    """The kept rows shard ``shard`` cuts (on the worker that cuts them)."""
    fs, _ = storage.fs_and_path(out)
    files = sorted(fs.glob(storage.join(shard_dir(out, shard), storage.PLAN_PART_GLOB)))
    frames = []
    for name in files:
        with fs.open(name, "rb") as f:
            frames.append(pq.read_table(f).to_pandas())
    return pd.concat(frames, ignore_index=True)


def _shard_files(out: str) -> list[str]:
    fs, _ = storage.fs_and_path(out)
    return sorted(
        fs.glob(storage.join(plan_dir(out), storage.PLAN_SHARD_GLOB, storage.PLAN_PART_GLOB))
    )


def reserve_rows(out: str, reserve: str) -> pd.DataFrame:
    """id, unit, order, duration of the reserve rows (a dev's worth: small)."""
    fs, _ = storage.fs_and_path(out)
    frames = []
    for name in _shard_files(out):
        with fs.open(name, "rb") as f:
            t = pq.read_table(f, columns=["id", "unit", "order", "duration", "split"]).to_pandas()
        frames.append(t[t["split"] == reserve])
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["id", "unit", "order", "duration"])
    )


def write_late_rejects(
    out: str, shard: int, rejects: list[dict], shape: DatasetShape
) -> str | None:
    """A shard's decode-time rejects (with ``row``) as one file; returns its path (None: none)."""
    if not rejects:
        return None
    fs, _ = storage.fs_and_path(out)
    d = storage.join(plan_dir(out), storage.LATE_DIR)
    fs.makedirs(d, exist_ok=True)
    path = storage.join(d, storage.late_name(shard))
    df = pd.DataFrame(rejects).reindex(columns=shape.rejects_schema().names + ["row"])
    df = df.sort_values("row", kind="stable")  # in input order: merge_rejects_chunk reads its rows'
    with storage.atomic_open(fs, path) as f:
        pq.write_table(
            _rejects_table(df, shape.rejects_schema()), f, row_group_size=LATE_GROUP_ROWS
        )
    return path


def read_late(out: str, files: list[str], columns: list[str] | None = None) -> pd.DataFrame:
    fs, _ = storage.fs_and_path(out)
    frames = []
    for name in files:
        with fs.open(name, "rb") as f:
            frames.append(pq.read_table(f, columns=columns).to_pandas())
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=columns or ["id", "reason", "row"])
    )


def submit_merge_rejects(client, out: str, late_files, shape: DatasetShape, per_worker: int = 2):
    """``rejects.parquet`` by several tasks: ``merge_rejects_chunk`` sorts the rejects of a run of
    consecutive partitions, and the decode-time rejects of their rows (``late_files``), into input
    order, all runs at once; ``combine_rejects`` then copies the sorted runs, in order, into the one
    file. Returns the future of the rows per reason."""
    fs, _ = storage.fs_and_path(out)
    files = sorted(
        fs.glob(storage.join(plan_dir(out), storage.PLAN_REJECTS_DIR, storage.PLAN_PART_GLOB))
    )
    n = max(1, min(len(files), len(client.scheduler_info()["workers"]) * per_worker))
    runs = [files[len(files) * j // n : len(files) * (j + 1) // n] for j in range(n)]
    chunks = [
        client.submit(
            merge_rejects_chunk,
            out,
            j,
            run,
            runs[j - 1][-1] if j else None,
            late_files,
            shape,
            last=j == n - 1,
            pure=False,
        )
        for j, run in enumerate(runs)
    ]
    return client.submit(combine_rejects, out, chunks, shape, pure=False)


def merge_rejects_chunk(
    out: str,
    j: int,
    files: list[str],
    previous: str | None,
    late_files: list[str],
    shape: DatasetShape,
    last: bool,
) -> tuple[str | None, dict]:
    """Run ``j``: the rejects of ``files`` (consecutive partitions) and the late rejects whose input
    row falls after ``previous``'s last row and up to the run's own last (to the end, for the last
    run), sorted by input row, as ``plan/merged/run-j.parquet``: (its path or None, rows per reason)."""
    fs, _ = storage.fs_and_path(out)
    names = shape.rejects_schema().names + ["row"]
    lo = _last_row(fs, previous) if previous is not None else -1
    parts = []
    for name in files:
        with fs.open(name, "rb") as f:
            parts.append(pq.read_table(f).select(names).replace_schema_metadata(None))
    hi = None if last or not parts else int(parts[-1].column("row")[-1].as_py())
    tables = parts + _late_rows(fs, late_files, names, lo, hi)
    if not tables or sum(t.num_rows for t in tables) == 0:
        return None, {}
    t = pa.concat_tables(tables).sort_by("row")
    counts = pc.value_counts(t.column("reason")).to_pylist()
    d = storage.join(plan_dir(out), storage.PLAN_MERGED_DIR)
    fs.makedirs(d, exist_ok=True)
    path = storage.join(d, storage.merged_run_name(j))
    with storage.atomic_open(fs, path) as f:  # a scratch copy: fast to write, read once
        pq.write_table(
            t.drop_columns(["row"]),
            f,
            compression="none",
            use_dictionary=False,
            row_group_size=REJECT_GROUP_ROWS,
        )
    return path, {c["values"]: c["counts"] for c in counts}


# the columns of rejects.parquet with few distinct values (a dictionary pays only for those)
DICTIONARY = ("recording", SPEAKER, "reason", "detail", "hypothesis")
REJECT_GROUP_ROWS = 1 << 17  # rows per row group of rejects.parquet (report.html counts by group)
LATE_GROUP_ROWS = 2048  # a late file's row groups, sorted by row: a run reads only its rows'


def _last_row(fs, name: str) -> int:
    with fs.open(name, "rb") as f:
        t = pq.read_table(f, columns=["row"])
    return int(t.column("row")[-1].as_py())


def _late_rows(fs, files: list[str], names: list[str], lo: int, hi: int | None) -> list[pa.Table]:
    """The late rejects with lo < row <= hi (hi None: no bound), reading only the row groups whose
    statistics can hold such rows."""
    out = []
    for name in files:
        with fs.open(name, "rb") as f:
            pf = pq.ParquetFile(f)
            groups = storage.row_groups_that_may_hold(
                pf, "row", lambda a, b: b > lo and (hi is None or a <= hi)
            )
            for g in groups:
                t = pf.read_row_group(g).select(names).replace_schema_metadata(None)
                keep = pc.greater(t.column("row"), lo)
                if hi is not None:
                    keep = pc.and_(keep, pc.less_equal(t.column("row"), hi))
                out.append(t.filter(keep))
    return out


def combine_rejects(out: str, runs: list[tuple[str | None, dict]], shape: DatasetShape) -> dict:
    """``rejects.parquet`` from the sorted runs, in order (row group by row group: flat memory);
    the runs are removed. No rejects: no file (never an empty Parquet file). Rows per reason."""
    fs, root = storage.fs_and_path(out)
    counts: Counter = Counter()
    for _, c in runs:
        counts.update(c)
    paths = [p for p, _ in runs if p is not None]
    if not paths:
        return {}
    with storage.atomic_open(fs, storage.join(root, storage.REJECTS_FILE)) as f:
        schema = shape.rejects_schema()
        writer = pq.ParquetWriter(
            f,
            schema,
            compression="zstd",
            use_dictionary=[c for c in DICTIONARY if c in schema.names],
        )
        for p in paths:
            with fs.open(p, "rb") as fh:
                pf = pq.ParquetFile(fh)
                for g in range(pf.num_row_groups):
                    writer.write_table(pf.read_row_group(g))
        writer.close()
    for p in paths:
        fs.rm(p)
    return dict(counts)


def shard_dirs(out: str) -> list[str]:
    fs, _ = storage.fs_and_path(out)
    return sorted(fs.glob(storage.join(plan_dir(out), storage.PLAN_SHARD_GLOB)))


def combine_text_stats(parts: list[dict]) -> dict:
    chars: dict = {}
    speakers: dict = {}
    for p in parts:
        for s, c in p["chars"].items():
            chars.setdefault(s, Counter()).update(c)
        for s, v in p["speakers"].items():
            speakers.setdefault(s, set()).update(v)
    return {"chars": {s: dict(c) for s, c in chars.items()}, "speakers": speakers}


def text_stats(
    out: str,
    shards: list[str],
    late_files: list[str],
    promoted: set,
    reserve: str,
    shape: DatasetShape,
) -> dict:
    """Per final split: character counts of ``text`` (vocab.json, characters dev lacks) and speakers.
    Streams shard by shard: a shard's rows lost while decoding are in that shard's own late file."""
    fs, _ = storage.fs_and_path(out)
    chars: dict = {}
    speakers: dict = {}
    cols = ["id", "split", "text"] + ([SPEAKER] if shape.speaker else [])
    late_of = {
        name.rsplit("/", 1)[-1].split(".")[0]: name for name in late_files
    }  # "shard-00003" -> file
    for shard in shards:
        name = shard.rsplit("/", 1)[-1]
        lost = set(read_late(out, [late_of[name]], ["id"])["id"]) if name in late_of else set()
        for part in sorted(fs.glob(storage.join(shard, storage.PLAN_PART_GLOB))):
            with fs.open(part, "rb") as f:
                t = pq.read_table(f, columns=cols).to_pandas()
            if lost:
                t = t[~t["id"].isin(lost)]
            split = t["split"].where(
                t["split"] != reserve, t["id"].isin(promoted).map({True: "dev", False: "train"})
            )
            for s, g in t.groupby(split):
                c = chars.setdefault(s, Counter())
                for text in g["text"]:
                    c.update(text)
                if shape.speaker:
                    speakers.setdefault(s, set()).update(g[SPEAKER].dropna())
    return {"chars": {s: dict(c) for s, c in chars.items()}, "speakers": speakers}
