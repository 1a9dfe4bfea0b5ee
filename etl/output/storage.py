"""Storage through fsspec: the one place that knows the output layout and how files appear
atomically.

Every name etl gives a file or folder it writes is declared below, each with the function that
writes it (the modules use these names, never a literal). A finished build leaves, in ``output.path``:

    README.md  report.json  report.html  rejects.parquet  vocab.json  suspect_recordings.txt
    recordings.parquet
    data/{split}-{i:05d}-of-{n:05d}.parquet
    arrow/  (output.arrow) dataset_dict.json, {split}/data-{i:05d}-of-{n:05d}.arrow, state.json

and while it runs ``.lease.json`` and ``.parts/`` (its own state; see below). `etl sample` writes
its own folder: ``clips/``, ``sampled_ids.txt``, ``review.xlsx``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from urllib.parse import quote

import fsspec

# -- The dataset folder (output.path) ---------------------------------------------------------
DATA_DIR = "data"  # split files (final_name), moved from .parts: commands/finalize._move_into_place
DATA_GLOB = "*.parquet"  # every file of data/ (split_of tells a split file's split)
README_FILE = "README.md"  # the dataset card: commands/finalize.finalize (output/card.dataset_card)
REPORT_JSON = "report.json"  # commands/finalize.finalize (output/card.report_json)
REPORT_HTML = "report.html"  # output/report_html.write_report_html (`etl report` rewrites it)
REJECTS_FILE = "rejects.parquet"  # planning/store.combine_rejects, on a worker (commands/finalize)
VOCAB_FILE = "vocab.json"  # commands/finalize.finalize (curate/vocab.build_vocab)
SUSPECTS_FILE = "suspect_recordings.txt"  # commands/finalize._suspect_recordings (curate/suspects)
# the audio fingerprints of the decoded recordings, kept for later builds (not in OUR_FILES):
FINGERPRINTS_FILE = "fingerprints.parquet"  # output/fingerprints.merge_parts (commands/finalize)
# each recording's file and its identity, for the next build's reuse (schema.DATASET_RECORDING_COLUMNS):
RECORDINGS_FILE = (
    "recordings.parquet"  # commands/finalize.write_recordings; output/previous reads it
)
# Removed by clear_previous_output before a dataset replaces another (not suspect_recordings.txt).
OUR_FILES = (README_FILE, REPORT_JSON, REPORT_HTML, REJECTS_FILE, VOCAB_FILE, RECORDINGS_FILE)
LEASE_FILE = ".lease.json"  # cluster/lease.Lease: one build at a time per output folder
# output.arrow: the splits in the datasets.save_to_disk layout, output/arrow_export.export:
ARROW_DIR = "arrow"
ARROW_DICT_FILE = "dataset_dict.json"  # arrow/: the split list (arrow_export.write_metadata), last
ARROW_INFO_FILE = "dataset_info.json"  # arrow/{split}/: features and sizes (write_metadata)
ARROW_STATE_FILE = "state.json"  # arrow/{split}/: the split's files (write_metadata)

# -- OUT/.parts/: a build's own state, removed by commands/finalize.finish when it is done -----
PARTS_DIR = ".parts"  # per-task shard files (part_name) before their final {split}-i-of-n names
PART_GLOB = "*-shard*.parquet"  # every part_name file: the clips a build has already written
LOGS_DIR = "logs"  # .parts/logs/: the Dask logs of the cluster etl started (cluster/session)
MANIFEST_FILE = "manifest.json"  # output/resume.write_manifest: the build to resume (build)
JOURNAL_FILE = "finalize.json"  # output/resume.write_journal: the renames (commands/finalize)
TMP_MARK = ".tmp-"  # atomic_open's temporary names; output/resume.remove_temporaries clears them
# .parts/plan/: the placed table, planning/store (write_partition, write_late_rejects):
PLAN_DIR = "plan"
PLAN_REJECTS_DIR = "rejects"  # plan/rejects/part-*.parquet: rows rejected before decoding
PLAN_RECORDINGS_DIR = "recordings"  # plan/recordings/bucket-*/part-*.parquet: per-recording rows
LATE_DIR = "late"  # plan/late/shard-*.parquet: the rejects a shard task found while decoding
FINGERPRINT_PARTS_DIR = "fingerprints"  # .parts/fingerprints/ (fingerprint_part_name)
FINGERPRINT_PART_GLOB = "shard-*.parquet"  # its files
PLAN_MERGED_DIR = "merged"  # plan/merged/run-*.parquet (merged_run_name): rejects.parquet's runs
PLAN_SHARD_GLOB = "shard-*"  # plan/shard-{i:05d}/ (plan_shard_name): the kept rows shard i cuts
PLAN_PART_GLOB = "part-*.parquet"  # plan_part_name: one per input partition
BUCKET_GLOB = "bucket-*"  # bucket_name

# -- The folder of `etl sample` ----------------------------------------------------------------
CLIPS_DIR = "clips"  # clip_name per sampled row: review/sample.cut_recording
IDS_FILE = "sampled_ids.txt"  # commands/sample.sample (for splits.exclude_ids)
REVIEW_FILE = "review.xlsx"  # commands/sample.sample (review/spreadsheet.write_review_xlsx), last
BAD_IDS_FILE = "bad_ids.txt"  # beside the workbook: review/spreadsheet.import_verdicts


def part_name(split: str, shard: int) -> str:
    """.parts/: one split's file of shard task ``shard`` (shards/task._ShardWriters)."""
    return f"{split}-shard{shard:05d}.parquet"


def final_name(split: str, i: int, n: int) -> str:
    """data/: the i-th of the n files of ``split``."""
    return f"{split}-{i:05d}-of-{n:05d}.parquet"


def split_glob(split: str) -> str:
    """data/: the files of one split (``final_name``)."""
    return f"{split}-*.parquet"


def arrow_name(i: int, n: int) -> str:
    """arrow/{split}/: the Arrow file of data/{split}-i-of-n.parquet (arrow_export.convert_file)."""
    return f"data-{i:05d}-of-{n:05d}.arrow"


def record_name(index: int) -> str:
    """.parts/: the record of a finished shard task (output/resume.write_record, by the task)."""
    return f"shard-{index:05d}.done.json"


def plan_shard_name(shard: int) -> str:
    """.parts/plan/: the folder of shard ``shard``'s rows; ``late/`` names its file the same."""
    return f"shard-{shard:05d}"


def late_name(shard: int) -> str:
    """.parts/plan/late/: the rejects shard ``shard`` found while decoding (its shard folder's name:
    planning/store.text_stats pairs them by it)."""
    return plan_shard_name(shard) + ".parquet"


def fingerprint_part_name(shard: int) -> str:
    """.parts/fingerprints/: the hashes of shard ``shard``'s recordings (output/fingerprints.write_part)."""
    return f"shard-{shard:05d}.parquet"


def merged_run_name(j: int) -> str:
    """.parts/plan/merged/: run ``j`` of rejects.parquet, sorted (planning/store.merge_rejects_chunk)."""
    return f"run-{j:05d}.parquet"


def plan_part_name(p: int) -> str:
    return f"part-{p:05d}.parquet"


def bucket_name(bucket: int) -> str:
    return f"bucket-{bucket:05d}"


def clip_name(row_id: str) -> str:
    """A file name for an id that stays inside ``clips/`` and is a valid relative link:
    letters, digits, '-', '_', '.' kept (any script), everything else %-escaped, no leading dot."""
    name = "".join(c if (c.isalnum() or c in "-_.") else quote(c, safe="") for c in str(row_id))
    return ("%2E" + name[1:] if name.startswith(".") else name) + ".wav"


def fs_and_path(url: str):
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path.rstrip("/")


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts if p)


def _protocol(fs) -> str:
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]


def is_local(fs) -> bool:
    return _protocol(fs) in ("file", "local")


def is_s3(fs) -> bool:
    return _protocol(fs) in ("s3", "s3a")


_FINAL = re.compile(r"^(?P<split>.+)-\d{5}-of-\d{5}\.parquet$")


def split_of(name: str) -> str | None:
    """The split of a ``final_name`` file (a path works too); None for any other file."""
    m = _FINAL.match(name.rsplit("/", 1)[-1])
    return m["split"] if m else None


@contextlib.contextmanager
def atomic_open(fs, path: str):
    """Write to a temporary name beside ``path``, then rename: the file appears whole or not at all.
    On failure the temporary file is removed. On S3 the write itself is atomic: an upload (multipart,
    ``autocommit=False``) becomes visible only when ``commit()`` completes it, and ``discard()`` aborts
    it; a killed process leaves only an incomplete upload, never an object (a bucket lifecycle rule
    for incomplete multipart uploads reclaims the space). A rename there would copy the whole file."""
    if is_s3(fs):
        f = fs.open(path, "wb", autocommit=False)
        try:
            yield f
            f.close()
            f.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                f.close()
                f.discard()
            raise
        return
    tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex[:8]}"
    try:
        with fs.open(tmp, "wb") as f:
            yield f
        if is_local(fs):
            os.replace(tmp, path)
        else:
            fs.mv(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp)
        raise


def free_bytes(fs, path: str) -> int | None:
    """Free bytes of the file system ``path`` is (or will be) on: a local disk's, from its nearest
    existing parent; None for an object store (it states no free space)."""
    if not is_local(fs):
        return None
    p = os.path.abspath(path)
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    return shutil.disk_usage(p).free


def written_bytes(fs, root: str) -> int:
    """Bytes of the shard files an unfinished build has written under ``.parts`` (``part_name``)."""
    return sum(int(fs.size(p) or 0) for p in fs.glob(join(root, PARTS_DIR, PART_GLOB)))


def write_bytes(fs, path: str, data: bytes) -> None:
    with atomic_open(fs, path) as f:
        f.write(data)


def clear_previous_output(fs, root: str, keep_parts: bool = False, keep_data: bool = False) -> None:
    """Remove what an earlier build left (only our own files), so shards never mix across runs.
    ``keep_parts``: keep this build's finished parts (used when the new dataset replaces the old);
    ``keep_data``: leave data/ to the caller (finalize removes the previous files it does not keep)."""
    kept = {DATA_DIR} if keep_data else set()
    kept |= {PARTS_DIR} if keep_parts else set()
    for sub in [s for s in (DATA_DIR, ARROW_DIR, PARTS_DIR) if s not in kept]:
        p = join(root, sub)
        if fs.exists(p):
            fs.rm(p, recursive=True)
    for name in OUR_FILES:
        p = join(root, name)
        if fs.exists(p):
            fs.rm(p)


def clear_parts(fs, root: str) -> None:
    """Remove parts a failed earlier build left; the previous dataset itself stays until replaced.
    ``logs/`` stays: the running cluster writes into it."""
    p = join(root, PARTS_DIR)
    if fs.exists(p):
        for child in fs.ls(p, detail=False):
            if child.rstrip("/").rsplit("/", 1)[-1] != LOGS_DIR:
                fs.rm(child, recursive=True)


def row_groups_that_may_hold(pf, column: str, may_hold) -> list[int]:
    """The row groups of the ``pyarrow.parquet.ParquetFile`` ``pf`` whose statistics of ``column``
    may hold a wanted value (``may_hold(min, max)``), and every one without statistics: the rest
    need not be read."""
    col = pf.schema_arrow.get_field_index(column)
    out = []
    for g in range(pf.num_row_groups):
        st = pf.metadata.row_group(g).column(col).statistics
        if st is None or not st.has_min_max or may_hold(st.min, st.max):
            out.append(g)
    return out


def remove_tree(fs, path: str, attempts: int = 5) -> None:
    """Remove ``path`` and all in it, while another thread may be removing files of it too (the
    session's log files, as the cluster closes): a file already gone is not an error."""
    for _ in range(attempts):
        if not fs.exists(path):
            return
        try:
            fs.rm(path, recursive=True)
            return
        except FileNotFoundError:
            continue
    fs.rm(path, recursive=True)


def logs_dir(out: str) -> str | None:
    """``OUT/.parts/logs/``, the Dask logs of a build's cluster: on a local disk only (None else)."""
    fs, root = fs_and_path(out)
    return join(root, PARTS_DIR, LOGS_DIR) if is_local(fs) else None
