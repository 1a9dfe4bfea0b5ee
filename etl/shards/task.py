"""The shard task: decode, cut, encode, write one shard on a worker, return stats.

A task runs on a worker: it decodes each of its recordings once, streams the clips into one Parquet
file per split (temporary name, then rename) and returns only small statistics and the rejects it
found (``unreadable_audio``, ``beyond_end``), so no audio passes through the scheduler or the client.
``run_shard`` returns a ``ShardCut`` (its rejects as rows); ``run_shard_filed``, the build's task,
files them and returns and records a ``records.ShardResult``.
"""

from __future__ import annotations

import contextlib
import errno
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..audio import decoders, measures
from ..audio import media as audio
from ..audio.fingerprint import Fingerprinter
from ..audio.spans import Unreadable, decode_spans
from ..config import FiltersConfig
from ..curate.splits import RESERVE
from ..output import fingerprints, previous, resume, storage
from ..planning import store as plan_store
from ..records import LateRejects, RecordingIdentity, ShardResult, SplitPart
from ..schema import QUALITY_COLUMNS, DatasetShape
from .pack import files_of

ROW_GROUP_BYTES = (
    8 << 20
)  # row groups of ~25-50 clips: well under 100 MB, and a worker buffers little (flat memory)
ROW_GROUP_ROWS = 2000


@dataclass
class ShardTask:
    index: int
    recordings: list  # [(recording id, file url)] in decode order
    rows: (
        pd.DataFrame | None
    )  # the kept rows of those recordings, with "split"; None: read from plan_store
    seconds: float  # estimated audio to decode (max segment end per recording)
    out: str
    sampling_rate: int = 16000
    channels: int = 1
    decoder: str = "av"
    ffmpeg: str | None = None
    audio_format: str = "flac"
    shape: DatasetShape = DatasetShape()  # the optional output columns (source_id, speaker, words)
    decoder_identity: str | None = (
        None  # the build's (build.check_decoders); a worker with another refuses
    )
    # the config's filters: those on the cut samples apply here (None: none)
    filters: FiltersConfig | None = None
    # the decoded audio's fingerprints under OUT/.parts/fingerprints/ (16 kHz builds only)
    fingerprint: bool = True
    identities: dict | None = None  # url -> its file_identity now (None or missing: unknown)
    # url -> what the dataset already in ``out`` holds of that file (output.previous.previous_files):
    # its clips are taken, not decoded, while the file's identity is the same
    previous: dict | None = None


class _SplitWriter:
    """One split's Parquet file of a shard, opened on its first row (no empty file is ever written)."""

    def __init__(self, fs, path: str, schema: pa.Schema, split: str):
        self.fs, self.path, self.schema, self.split = fs, path, schema, split
        self.digest = 0  # sum of row digests (see resume.content_hash)
        self.rows: list[dict] = []
        self.pending_bytes = 0
        self.count, self.seconds, self.audio_bytes = 0, 0.0, 0
        self.ids: list[str] = []
        self._ctx: Any = None
        self._file: Any = None
        self._writer: Any = None

    def add(self, row: dict) -> None:
        self.rows.append(row)
        size = len(row["audio"]["bytes"])
        self.pending_bytes += size
        self.count += 1
        self.seconds += row["duration"]
        self.audio_bytes += size
        self.ids.append(row["id"])
        self.digest = (self.digest + resume.row_digest(self.split, row)) % resume.ROW_HASH_MOD
        if self.pending_bytes >= ROW_GROUP_BYTES or len(self.rows) >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self._writer is None:
            self._ctx = storage.atomic_open(self.fs, self.path)
            self._file = self._ctx.__enter__()
            self._writer = pq.ParquetWriter(
                self._file,
                self.schema,
                compression=_compression(self.schema, self.rows[0]),
                use_dictionary=[c for c in self.schema.names if c != "audio"],
            )
        table = pa.Table.from_pylist(self.rows, schema=self.schema)
        self._writer.write_table(table, row_group_size=len(self.rows))
        self.rows, self.pending_bytes = [], 0

    def close(self) -> None:
        try:
            self.flush()
            if self._writer is not None:
                self._writer.close()
        except BaseException as e:  # a full disk, most often: the file is not left half-written
            self.abort(e)
            raise
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            ctx.__exit__(None, None, None)

    def abort(self, exc) -> None:
        """Remove the temporary file (atomic_open does); an error while doing so (a disk still full)
        is not raised: ``exc`` is the one that matters."""
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            with contextlib.suppress(Exception):
                self._writer.close()
            with contextlib.suppress(Exception):
                ctx.__exit__(type(exc), exc, exc.__traceback__)


def _compression(schema: pa.Schema, first_row: dict):
    """zstd for every column except FLAC bytes: zstd buys nothing on FLAC speech (+0.01% on 28 MB of
    speech-like clips) and costs CPU (0.09 s per 200 clips). WAV (PCM) keeps zstd."""
    if not first_row["audio"]["path"].endswith(".flac"):
        return "zstd"
    leaves = []
    for f in schema:
        leaves += [f"{f.name}.{c.name}" for c in f.type] if pa.types.is_struct(f.type) else [f.name]
    return {leaf: ("none" if leaf == "audio.bytes" else "zstd") for leaf in leaves}


class _ShardWriters:
    """The split files of one shard: created on a split's first row, all closed (renamed into place)
    together, or all aborted (temporary files removed) if anything fails."""

    def __init__(self, fs, parts_dir: str, index: int, schema: pa.Schema):
        self.fs, self.parts_dir, self.index, self.schema = fs, parts_dir, index, schema
        self.by_split: dict[str, _SplitWriter] = {}

    def add(self, split: str, row: dict) -> None:
        if split not in self.by_split:
            path = storage.join(self.parts_dir, storage.part_name(split, self.index))
            self.by_split[split] = _SplitWriter(self.fs, path, self.schema, split)
        self.by_split[split].add(row)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            try:
                for w in self.by_split.values():
                    w.close()
                return False
            except BaseException as e:  # one split's file failed: none of the shard's stays
                for w in self.by_split.values():
                    w.abort(e)
                raise
        for w in self.by_split.values():
            w.abort(exc)
        return False

    def stats(self) -> dict[str, SplitPart]:
        """Per split: file name, rows, seconds, audio bytes (and the ids, for the small reserve split)."""
        return {
            s: SplitPart(
                file=w.path.rsplit("/", 1)[-1],
                rows=w.count,
                seconds=w.seconds,
                bytes=w.audio_bytes,
                digest=f"{w.digest:064x}",
                ids=w.ids if s == RESERVE else None,
            )
            for s, w in self.by_split.items()
            if w.count
        }


class ShardCut(NamedTuple):
    """What ``run_shard`` returns: a shard's files and statistics, and the rows it rejected while
    decoding (``_reject``'s dicts), not yet filed (``run_shard_filed`` files them)."""

    shard: int
    parts: dict[str, SplitPart]
    rejects: list[dict]
    decoded_seconds: float
    wall_seconds: float
    recordings: dict[str, Any]  # recording -> measures.summarize(...) of its clips
    reused_seconds: float = 0.0  # clips taken from the previous dataset
    identities: dict[str, RecordingIdentity] | None = None  # recording -> its file's identity


def run_shard(task: ShardTask) -> ShardCut:
    """Decode, cut, encode and write one shard. Returns stats and decode-time rejects (records
    nothing: the shard is done once ``run_shard_filed`` has filed its rejects)."""
    t0 = time.perf_counter()
    _check_decoder(task)
    fs, root = storage.fs_and_path(task.out)
    schema = task.shape.schema(task.sampling_rate)
    columns = task.shape.columns()
    ext = "flac" if task.audio_format == "flac" else "wav"
    rejects: list[dict] = []
    decoded = reused = 0.0
    per_recording: dict = {}  # measures.summarize of each recording's clips (a recording is in one shard)
    prints: dict = {}  # each file's hashes, under its first spelling
    identities: dict[str, RecordingIdentity] = {}
    with _ShardWriters(fs, storage.join(root, storage.PARTS_DIR), task.index, schema) as writers:
        rows_of = (
            task.rows
            if isinstance(task.rows, pd.DataFrame)
            else plan_store.read_shard(task.out, task.index)
        )
        by_recording = dict(tuple(rows_of.groupby("recording", sort=False)))
        for url, names in files_of(
            task.recordings
        ).items():  # a file spelled two ways: decoded once
            rows = (
                pd.concat([by_recording[r] for r in names])
                if len(names) > 1
                else by_recording[names[0]]
            )
            cut = _cut_file(task, url, rows, columns, ext, writers, rejects)
            decoded += cut.decoded_seconds
            reused += cut.reused_seconds
            if cut.prints is not None:
                prints[names[0]] = cut.prints
            for name in names:  # each spelling's own clips
                per_recording[name] = measures.summarize(
                    [m for r, m in cut.measured if r == name and m is not None]
                )
                identities[name] = RecordingIdentity(url, cut.identity, cut.length)
    fingerprints.write_part(task.out, task.index, prints)
    return ShardCut(
        task.index,
        writers.stats(),
        rejects,
        decoded,
        time.perf_counter() - t0,
        per_recording,
        reused,
        identities,
    )


class _FileCut(NamedTuple):
    """What ``_cut_file`` did with one file."""

    decoded_seconds: float
    reused_seconds: float
    measured: list  # each clip's (recording, measures or None)
    identity: str | None  # the file's identity now
    length: int | None  # samples it decodes to, when known (its end was reached, now or before)
    # its fingerprint's hashes (an np.ndarray), when decoded whole (``task.fingerprint``)
    prints: object | None


class _Reuse(NamedTuple):
    """The clips of one file a shard takes from the previous dataset: span index -> the old clip
    (``previous.previous_clips``), the spans known to lie past the file's end, and that length."""

    clips: dict
    beyond: set
    length: int | None


def _reusable(task: ShardTask, url: str, spans: list, tolerance: int) -> _Reuse:
    """The spans of ``url`` this shard need not decode: an old clip of the same span of the same
    file (identity unchanged; settings were compared by the client) whose bytes are there, or whose
    measures the filters still reject; and, the file's length known, the spans past its end."""
    identity = (task.identities or {}).get(url)
    prev = (task.previous or {}).get(url)
    if identity is None or prev is None or prev.identity != identity:
        return _Reuse({}, set(), None)
    old = previous.previous_clips(task.out, prev, task.sampling_rate)
    clips = {}
    for i, span in enumerate(spans):
        c = old.get(span)
        if c is not None and (
            c["audio"] is not None
            or (task.filters is not None and measures.judge(c, task.filters) is not None)
        ):
            clips[i] = c
    n = prev.length
    beyond = (
        set()
        if n is None
        else {
            i
            for i, (first, stop) in enumerate(spans)
            if i not in clips and stop > n and not (stop - n <= tolerance and first < n)
        }
    )
    return _Reuse(clips, beyond, n)


def _cut_file(
    task: ShardTask, url: str, rows: pd.DataFrame, columns, ext: str, writers, rejects: list
) -> _FileCut:
    """Write the clips of ``rows`` (of every spelling that names one file): those the previous
    dataset holds are taken from it, the others cut from one decode of only the spans they need (none:
    the file is not opened). Clips are written in the order a full decode yields them. A file
    decoded whole (no clip taken) is fingerprinted as it streams; one partly taken keeps the
    fingerprint the earlier build made of it (``output.fingerprints.merge_parts``)."""
    rows = rows.sort_values(["end", "start", "id"], kind="stable").reset_index(drop=True)
    sr = task.sampling_rate
    spans = [
        (audio.sample_index(s, sr), audio.sample_index(e, sr))
        for s, e in zip(rows["start"], rows["end"])
    ]
    records = rows.to_dict("records")
    tolerance = int(round(audio.END_TOLERANCE_S * sr))
    reuse = _reusable(task, url, spans, tolerance)
    missing = [i for i in range(len(spans)) if i not in reuse.clips and i not in reuse.beyond]
    stats = {"skipped_seconds": 0.0}
    tap = Fingerprinter(sr) if task.fingerprint and not reuse.clips and missing else None
    stream = _Decoded(task, url, spans, missing, tolerance, stats, tap)
    measured: list = []
    reused = 0.0
    for i in sorted(range(len(spans)), key=lambda i: (spans[i][1], i)):  # a full decode's order
        r = records[i]
        if i in reuse.clips:
            m = _reused(task, r, reuse.clips[i], columns, ext, writers, rejects)
            reused += (spans[i][1] - spans[i][0]) / sr
        elif i in reuse.beyond:
            m = _emit(task, r, None, reuse.length or 0, columns, ext, writers, rejects)
        else:
            got = stream.take(i)
            if got is None:  # the file failed before this span
                rejects.append(_reject(r, "unreadable_audio", stream.failed or "not decoded"))
                continue
            m = _emit(task, r, got[0], got[1], columns, ext, writers, rejects)
        measured.append((r["recording"], m))
    decoded = max(0.0, stream.total / sr - stats["skipped_seconds"])
    ends = stream.total if stream.reached_end() else reuse.length
    prints = tap.finish() if tap is not None and tap.usable else None
    return _FileCut(decoded, reused, measured, (task.identities or {}).get(url), ends, prints)


class _Decoded:
    """One decode of the spans ``missing`` of a file, taken span by span in the order it yields them
    (started on the first ``take``: a file nothing is decoded from is never opened)."""

    def __init__(
        self,
        task: ShardTask,
        url: str,
        spans: list,
        missing: list,
        tolerance: int,
        stats,
        tap=None,
    ):
        self.spans, self.missing = spans, missing
        self._it = (
            decode_spans(
                url,
                [spans[i] for i in missing],
                task.decoder,
                task.ffmpeg,
                task.sampling_rate,
                task.channels,
                tolerance,
                stats,
                tap,
            )
            if missing
            else iter(())
        )
        self.pending: dict = {}
        self.failed: str | None = None
        self.total = 0
        self.yielded = 0
        self.done = not missing

    def take(self, i: int):
        """(samples or None, total) of span ``i``; None if the file failed before it."""
        while i not in self.pending and not self.done:
            try:
                j, samples, self.total = next(self._it)
                self.pending[self.missing[j]] = (samples, self.total)
                self.yielded += 1
            except StopIteration:
                self.done = True
            except Unreadable as e:
                self.failed, self.done = str(e), True
        return self.pending.pop(i, None)

    def reached_end(self) -> bool:
        """The decode ran to the file's end (a span lay past it): ``total`` is its length."""
        return (
            self.failed is None
            and self.yielded == len(self.missing) > 0
            and max(self.spans[i][1] for i in self.missing) > self.total
        )


class OutputFull(OSError):
    """The output's file system filled up while a shard was written (ENOSPC). Its files were
    removed; the shards already finished are kept, so the same command resumes once there is space."""

    def __init__(self, out: str, *_):
        super().__init__(
            errno.ENOSPC,
            f"No space left on device: output.path {out} is full; free some space (or build into "
            "another output.path) and run the same command again: the finished shards are kept",
        )
        self.out = out

    def __reduce__(self):
        return (OutputFull, (self.out,))


def run_shard_filed(task: ShardTask) -> ShardResult:
    """``run_shard``, its decode-time rejects then filed under OUT/.parts/plan/late/ (the result and
    its record keep the file, not the rows: a table of rejects never crosses the scheduler)."""
    try:
        cut = run_shard(task)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise OutputFull(task.out) from None  # one line: the traceback says nothing more
        raise
    path = plan_store.write_late_rejects(task.out, task.index, cut.rejects, task.shape)
    result = ShardResult(
        shard=cut.shard,
        parts=cut.parts,
        rejects=LateRejects(path, len(cut.rejects)),
        decoded_seconds=cut.decoded_seconds,
        wall_seconds=cut.wall_seconds,
        recordings=cut.recordings,
        reused_seconds=cut.reused_seconds,
        identities=cut.identities,
    )
    fs, root = storage.fs_and_path(task.out)
    resume.write_record(fs, root, task.index, result)  # after the files: the shard is whole
    return result


def _check_decoder(task: ShardTask) -> None:
    """A worker that joined after the build checked the cluster, with another decoder, decodes nothing."""
    mine = decoders.decoder_identity(task.decoder, task.ffmpeg)
    if task.decoder_identity is not None and mine != task.decoder_identity:
        raise audio.DecoderUnavailable(
            f"this worker decodes with {mine}, the build with {task.decoder_identity}"
        )


def _emit(task: ShardTask, r: dict, samples, total: int, columns, ext: str, writers, rejects: list):
    """One cut segment: a row of its split's file, or a ``beyond_end`` reject, or a reject of the
    filters on its measures (``measures.REASONS``). Returns the clip's measures (None: not cut)."""
    if samples is None:
        rejects.append(
            _reject(
                r,
                "beyond_end",
                f"ends at {r['end']:.3f} s; recording decodes "
                f"to {total / task.sampling_rate:.3f} s",
            )
        )
        return None
    m = measures.measure(samples, task.sampling_rate)
    return _place(
        task,
        r,
        m,
        lambda: audio.encode(samples, task.sampling_rate, task.audio_format),
        (columns, ext, writers, rejects),
    )


def _reused(task: ShardTask, r: dict, clip: dict, columns, ext: str, writers, rejects: list):
    """A clip the previous dataset holds: its measures judged by this build's filters, its bytes
    copied (never decoded; read only if it is kept). Returns its measures."""
    m = {k: clip[k] for k in measures.MEASURE_COLUMNS}
    return _place(task, r, m, clip["audio"], (columns, ext, writers, rejects))


def _place(task: ShardTask, r: dict, m: dict, audio_bytes, into: tuple):
    """A measured clip: a reject of the filters on its measures (``measures.REASONS``), or a row of
    its split's file with ``audio_bytes()``. Returns the measures."""
    columns, ext, writers, rejects = into
    verdict = None if task.filters is None else measures.judge(m, task.filters)
    if verdict is not None:
        rejects.append(_reject({**r, **m}, *verdict))
        return m
    row = {c: _clean({**r, **m}.get(c)) for c in columns if c != "audio"}
    row["audio"] = {"bytes": audio_bytes(), "path": f"{r['id']}.{ext}"}
    writers.add(r["split"], row)
    return m


def _reject(r: dict, reason: str, detail: str) -> dict:
    out = {
        "id": r["id"],
        "recording": r["recording"],
        "start": r["start"],
        "end": r["end"],
        "duration": r["duration"],
        "similarity": _clean(r.get("similarity")),
        "text_raw": r.get("text_raw"),
        "hypothesis": _clean(r.get("hypothesis")),
        "reason": reason,
        "detail": detail,
        **{c: _clean(r.get(c)) for c in QUALITY_COLUMNS},
    }
    for extra in ("row", "speaker"):  # the input row (rejects are in input order) and the speaker
        if extra in r:
            out[extra] = _clean(r[extra]) if extra == "speaker" else int(r[extra])
    return out


def _clean(v):
    if v is None:
        return None
    if isinstance(v, float) and v != v:
        return None
    return v


def resplit_reserve(out: str, files: list[str], promoted: set, index: int) -> ShardResult:
    """Stream the reserve files of all shards into one dev and one train part (shard ``index``):
    rows in ``promoted`` go to dev, the others to train. Copies bytes; decodes nothing."""
    fs, root = storage.fs_and_path(out)
    parts = storage.join(root, storage.PARTS_DIR)
    with fs.open(storage.join(parts, files[0]), "rb") as f:
        schema = pq.read_schema(f)
    with _ShardWriters(fs, parts, index, schema) as writers:
        for name in files:
            with fs.open(storage.join(parts, name), "rb") as f:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=256):
                    for row in batch.to_pylist():
                        writers.add("dev" if row["id"] in promoted else "train", row)
    result = ShardResult(index, writers.stats(), LateRejects(None, 0), 0.0, 0.0)
    resume.write_record(fs, root, index, result)
    for name in files:  # only after the record: a rerun either redoes all of this or none of it
        fs.rm(storage.join(parts, name))
    return result
