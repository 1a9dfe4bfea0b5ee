"""What passes between the stages after planning, declared (see ``schema.py`` for the columns).

planning (planning.client) -> PlannedTable: futures of placed partitions + PlanCounts; each pass's
                              result a NamedTuple (planning.worker: CheckedPart ... LabelledPart;
                              planning.client: CheckedTable, JoinedTable, Pool, Placement)
make_tasks (build)       -> ShardTask (shards.task): recordings and where to read their rows, never rows
run_shard (shards.task)  -> ShardCut: per split one SplitPart, the decode-time rejects as rows
run_shard_filed          -> ShardResult: the same with its rejects filed (LateRejects), recorded in
                              OUT/.parts/shard-i.done.json (to_json / from_json) for resume
finalize (build)         -> Report: report.json; PlotCounts: report.html's histograms, reduced on the workers
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict


@dataclass(frozen=True)
class SplitPart:
    """One split's file of one shard, under OUT/.parts/ until finalize names it."""

    file: str
    rows: int
    seconds: float
    bytes: int  # audio bytes
    digest: str  # sum of row digests (resume.content_hash)
    ids: list[str] | None = None  # only for the reserve split (its rows may move to dev)

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "file": self.file,
            "rows": self.rows,
            "seconds": self.seconds,
            "bytes": self.bytes,
            "digest": self.digest,
        }
        if self.ids is not None:
            out["ids"] = self.ids
        return out

    @classmethod
    def from_json(cls, d: dict) -> SplitPart:
        return cls(d["file"], d["rows"], d["seconds"], d["bytes"], d["digest"], d.get("ids"))


@dataclass(frozen=True)
class LateRejects:
    """The rejects a shard found while decoding, filed by ``plan_store.write_late_rejects`` under
    OUT/.parts/plan/late/shard-i.parquet; ``file`` None: the shard found none."""

    file: str | None
    count: int

    def to_json(self) -> dict:
        return {"file": self.file, "count": self.count}


@dataclass(frozen=True)
class RecordingIdentity:
    """One recording as a dataset records it (a row of its ``recordings.parquet``, the columns of
    ``schema.DATASET_RECORDING_COLUMNS``): the file it was cut from and that file's identity then
    (``ingest.recordings.file_identity``; None: unknown, never reused). ``length``: the samples the
    file decodes to at the build's rate, when the decode reached its end (else None). ``files``: the
    dataset's data/ files that hold its clips (filled in by finalize)."""

    url: str
    identity: str | None
    length: int | None = None
    files: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"url": self.url, "identity": self.identity, "length": self.length}

    @classmethod
    def from_json(cls, d: dict) -> RecordingIdentity:
        return cls(d["url"], d.get("identity"), d.get("length"), tuple(d.get("files") or ()))


@dataclass(frozen=True)
class PreviousFile:
    """What the dataset already in output.path holds of one audio file, for a build that may take its
    clips instead of decoding them (``output.previous.previous_files``; ``shards.task`` reads them):
    its identity then, the recording names its rows carry, the data/ files holding them, its length."""

    identity: str
    names: tuple[str, ...]
    files: tuple[str, ...]
    length: int | None = None


@dataclass(frozen=True)
class ShardResult:
    """What a shard task returns once its rejects are filed (``shards.task.run_shard_filed``, or the
    reserve re-split), and records in OUT/.parts/shard-i.done.json for resume (``to_json``)."""

    shard: int
    parts: dict[str, SplitPart]  # split -> its file of this shard
    rejects: LateRejects
    decoded_seconds: float
    wall_seconds: float
    # recording -> measures.summarize(...) of its clips (suspects); None: the reserve re-split's
    recordings: dict[str, Any] | None = field(default=None)
    reused_seconds: float = 0.0  # clips taken from the previous dataset instead of decoded
    # recording -> the file it was cut from (the dataset's recordings.parquet); None: the re-split's
    identities: dict[str, RecordingIdentity] | None = field(default=None)

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "shard": self.shard,
            "parts": {s: p.to_json() for s, p in self.parts.items()},
            "rejects": self.rejects.to_json(),
            "decoded_seconds": self.decoded_seconds,
            "wall_seconds": self.wall_seconds,
        }
        if self.recordings is not None:
            out["recordings"] = self.recordings
        if self.identities is not None:  # a shard task's (the re-split reuses and names no file)
            out["reused_seconds"] = self.reused_seconds
            out["identities"] = {r: v.to_json() for r, v in self.identities.items()}
        return out

    @classmethod
    def from_json(cls, d: dict) -> ShardResult:
        """The result a record holds (``unfiled`` ones excepted)."""
        late = d["rejects"]
        if isinstance(late, list):  # an earlier version's reserve re-split: it rejects nothing
            assert not late, "unfiled rejects"
            late = {"file": None, "count": 0}
        return cls(
            shard=d["shard"],
            parts={s: SplitPart.from_json(p) for s, p in d["parts"].items()},
            rejects=LateRejects(late["file"], late["count"]),
            decoded_seconds=d["decoded_seconds"],
            wall_seconds=d["wall_seconds"],
            recordings=d.get("recordings"),
            reused_seconds=d.get("reused_seconds", 0.0),
            identities=None
            if d.get("identities") is None
            else {r: RecordingIdentity.from_json(v) for r, v in d["identities"].items()},
        )

    @staticmethod
    def unfiled(d: dict) -> bool:
        """A record whose rejects are rows, never filed: an earlier version recorded a shard before
        filing them. Resume cuts that shard again."""
        return isinstance(d["rejects"], list) and bool(d["rejects"])


class SplitReport(TypedDict):
    rows: int
    hours: float
    files: int
    bytes: int
    speakers: NotRequired[int]  # with a speaker column
    # each file's content digest (sum of its row digests), in file order: a rebuild keeps a file
    # whose new content is the same (commands/finalize); absent in datasets of earlier versions
    digests: NotRequired[list[str]]


class SharedAudioPair(TypedDict):
    """Two recordings that share audio (``planning/audio_matches.MATCH_COLUMNS``, rounded)."""

    recording_a: str
    recording_b: str
    offset: float  # seconds: audio at t in a is at t + offset in b
    start_a: float  # the shared audio in a, seconds
    end_a: float
    shared_hours: float
    hits: int  # the score: hashes shared at the offset


class DuplicateAudio(TypedDict):
    """report.json's and `etl plan`'s ``duplicate_audio``: whether fingerprints of an earlier build
    were known before decoding (else copies are only found while decoding), and the pairs of
    recordings sharing audio that planning applied (``curate.duplicates``); the rows it rejected
    are counted in ``rejects``."""

    fingerprints: bool
    pairs: list[SharedAudioPair]


class Report(TypedDict):
    """report.json: every input row is in ``splits`` or counted in ``rejects`` (rows_in = rows_out +
    rows_rejected). Its keys in this order (``commands.finalize._report`` builds it in one go).

    A TypedDict rather than a dataclass: report.json is this dict as ``json.dumps`` writes it, the
    no-op rerun reads it back as JSON, and the CLI, the card, report.html and the tests read its keys;
    every key is required, so it has one shape (``up_to_date`` apart: only in what ``build`` returns
    for a folder already built, never in the file)."""

    rows_in: int
    rows_out: int
    rows_rejected: int
    splits: dict[str, SplitReport]
    rejects: dict[str, int]  # reason (schema.REJECT_REASONS) -> rows
    hours_out: float
    hours_decoded: float  # audio decoded by this build
    hours_reused: float  # clips taken from the dataset already there instead of decoded
    shards: int
    ids_from_template: int
    invisible_characters: dict
    selection: dict  # what test_ids / exclude_ids / the previous dev matched
    listing: dict  # how table and audio folder fit
    alignment_encodings: dict  # alignment files read per encoding they were decoded from
    duplicate_audio: DuplicateAudio  # recordings sharing audio, known before decoding
    fingerprint: str
    audio_identity: str  # identities_digest of the audio files (a replaced one: built again)
    content_hash: str
    vocab: dict
    audio: dict
    config: dict
    recordings: dict
    suspects: dict
    timings: dict
    up_to_date: NotRequired[bool]  # build(): True when the folder was already built (no-op rerun)


class ColumnHistogram(TypedDict):
    """One plotted column of report.html, counted over fixed bin edges (``report_html.BINS`` equal bins
    on [lo, hi]); partial counts of files or row groups add up (``report_html.combine_plot_counts``)."""

    lo: float
    hi: float
    counts: (
        dict  # group -> list of BINS ints, values clipped into [lo, hi] (outliers in the end bins)
    )
    values: dict  # group -> its rows with a value in this column
    outside: int  # values outside [lo, hi], counted in the end bins


class PlotCounts(TypedDict):
    """What report.html plots, as counts: never rows. A group is a split name or 'rejected'."""

    groups: dict  # group -> rows
    columns: dict  # column (report_html.PLOTTED) -> ColumnHistogram
