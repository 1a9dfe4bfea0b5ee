"""The data contract: canonical table columns, output Arrow schemas (with HF features) and reject reasons.

Everything that names a column or a reason lives here, so readers, row checks, shard writers,
the dataset card and the report agree by construction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

# Columns every reader produces (``table.py``), in this order. ``row`` is the 0-based position in
# the input table: it decides which duplicate is "first" and orders everything deterministically.
TABLE_COLUMNS = [
    "row",
    "id",
    "source_id",
    "recording",
    "start",
    "end",
    "text_raw",
    "hypothesis",
    "speaker",
]
# Columns the alignment readers (``etl/ingest/formats/``) add when their input has them: ``words`` (a list of
# {word, start, end}, seconds from the segment's start), ``alignment_error`` (the detail of an
# ``unreadable_alignment`` row: file and line). ``speaker`` comes from lhotse or MFA per-speaker tiers.
EXTRA_TABLE_COLUMNS = ["words", "alignment_error"]
# A Kaldi data dir as its reader gives it (``ingest.table._read_kaldi``: segments, text, utt2spk),
# before ``canonical`` maps it like any table.
KALDI_COLUMNS = ["id", "recording", "start", "end", "text", "speaker"]

# The frames that cross a module, in the order the rows flow (table -> checked -> joined -> placed).
# Each names its producer and its consumers; ``tests/test_schema.py`` checks a real build's frames.
#
# Checked: one partition after ``ingest.rows.check_rows`` (``canonical`` + the row checks: reason,
# detail, parsed times, normalized text, the measures known before decoding). Producers:
# ``planning.worker.check_part``, ``testing.reference.read_checked_table``; consumers: the planning
# passes (duplicates, file join, splits). Readers with word timings add ``words`` (OPTIONAL_COLUMNS).
CHECKED_COLUMNS = [
    *[c for c in TABLE_COLUMNS if c != "row"],
    "reason",
    "detail",
    "duration",
    "text",
    "chars_per_second",
    "similarity",
]
OPTIONAL_COLUMNS = ["words"]  # in every frame from here on when the reader gives it
# What ``ingest.recordings.resolve`` returns per reference: the file's ``url`` (None: no file), the
# ``key`` naming the recording whatever its spelling, the ``candidates`` of an ambiguous name.
# Consumers: the file join (planning.worker, testing.reference) and ``recordings.listing_summary``.
RESOLVED_COLUMNS = ["url", "key", "candidates"]
# What the file join adds to the checked rows (with ``row``, their input position): ``url`` and
# ``recording_key`` (resolve's ``key``: the split unit of ``splits.by: recording``).
JOINED_COLUMNS = ["row", *CHECKED_COLUMNS, "url", "recording_key"]
# Placed: one partition after planning (every row, kept or rejected). Producers:
# ``planning.worker.label_part`` (``planning.client.PlannedTable.parts``) and
# ``testing.reference.plan_rows``; consumers: ``planning.store.write_partition`` (which keeps
# ``PLANNED_COLUMNS`` of the kept rows and ``schema.rejects_schema`` of the rejects) and
# ``review.sample.select`` (`etl sample`).
PLACED_COLUMNS = [*JOINED_COLUMNS, "unit", "split", "order"]
# What a ``--where`` expression of `etl sample` sees of a placed row (``review.sample.select``).
QUERY_COLUMNS = [
    "id",
    "recording",
    "start",
    "end",
    "duration",
    "similarity",
    "chars_per_second",
    "text",
    "text_raw",
    "hypothesis",
    "split",
    "reason",
]
# Every row's inputs to the per-recording statistics, by recording bucket under OUT/.parts/plan/
# recordings/: written by ``planning.store.write_partition``, read by
# ``planning.store.recording_stats_of_bucket`` for ``curate.suspects.recording_stats``.
RECORDING_ROW_COLUMNS = ["recording", "id", "similarity", "chars_per_second", "reason", "kept"]
# The kept rows' per-recording aggregates planning hands on (``PlanCounts.recordings``, from
# ``planning.worker.summary_part``): what ``commands.build`` packs into shards (``shards.pack``)
# and ``commands.plan`` counts (seconds = the last segment's end: the audio to decode).
RECORDING_COLUMNS = ["recording", "seconds", "url", "rows"]
# The dataset's own record of its recordings (``storage.RECORDINGS_FILE``, ``records.RecordingIdentity``):
# one row per recording name its kept rows or decode-time rejects come from, with the file it was cut
# from and that file's identity. Written by ``commands.finalize``, read by ``output.previous`` so a
# later build takes the clips of unchanged files instead of decoding them again.
DATASET_RECORDING_COLUMNS = ["recording", "url", "identity", "length", "files"]
# Per split unit of the pool, as ``planning.worker.unit_partials`` sums it for the client
# (``planning.client``: the dev head, the budget cuts; ``curate.splits.unit_roles``).
UNIT_COLUMNS = ["unit", "hash", "rows", "seconds", "bytes", "prev"]

# Scratch columns: a stage's own working columns, all under one prefix, dropped before the frame
# leaves the stage (no writer selects them: outputs hold declared columns only).
SCRATCH = "_scratch_"
JSON_KEY = SCRATCH + "key"  # a JSON document keyed by id: the key (``ingest.table``)
# a malformed jsonl line: its ``unreadable_alignment`` detail and its id (``ingest.table``)
BAD_LINE = SCRATCH + "alignment_error"
BAD_LINE_ID = SCRATCH + "alignment_error_id"
# an alignment reader's row: the encoding its file was decoded from, on the file's first row only
# (``ingest.formats``); ``planning.worker.check_part`` counts them (report.json's
# ``alignment_encodings``) and ``ingest.table.canonical`` leaves the column behind
ENCODING = SCRATCH + "encoding"
# an alignment reader's row: True when its speaker belongs in a template id (a TextGrid with several
# speaker tiers: ``ingest.formats.textgrid``); ``ingest.table.canonical`` keeps it and
# ``ingest.rows.check_rows`` reads it (``rows.speaker_template``) and drops it
SPEAKER_IN_ID = SCRATCH + "speaker_in_id"
# planning.worker, from the units pass to the labels: the unit's seeded hash, eligible for a split,
# a listed test row, in the pool dev / reserve / train are drawn from
HASH = SCRATCH + "hash"
ELIGIBLE = SCRATCH + "eligible"
TEST = SCRATCH + "test"
POOL = SCRATCH + "pool"
PLANNING_SCRATCH = [HASH, ELIGIBLE, TEST, POOL]


def check_frame_columns(columns, declared: list[str], what: str) -> None:
    """A frame that crosses a module holds exactly its declared columns (``OPTIONAL_COLUMNS`` aside):
    its producer calls this before handing it on (a programming error, never the user's)."""
    have = set(columns) - set(OPTIONAL_COLUMNS)
    if have != set(declared):
        raise AssertionError(
            f"{what} frame: missing {sorted(set(declared) - have)}, "
            f"undeclared {sorted(have - set(declared))} (see etl/schema.py)"
        )


# The placed table, as the workers write it under OUT/.parts/plan/ and each shard task reads its own
# rows back (an allow-list: nothing else reaches a worker). ``split`` is train/dev/test/low_similarity
# or the reserve; ``unit`` and ``order`` (the split key and its place in hash order) let decoding
# losses in dev be refilled from the reserve; ``row`` orders the rejects found while decoding.
PLANNED_COLUMNS = [
    "row",
    "id",
    "source_id",
    "recording",
    "speaker",
    "start",
    "end",
    "duration",
    "text",
    "text_raw",
    "hypothesis",
    "similarity",
    "chars_per_second",
    "words",
    "split",
    "unit",
    "order",
]

# Where a reason is found, in the order of the build.
Stage = Literal["read", "check", "plan", "decode", "quality"]
STAGES: dict[str, str] = {
    "read": "the alignment readers (etl/ingest/formats/), told to the row checks by alignment_error",
    "check": "the row checks of one partition (etl/ingest/rows.py, check_rows)",
    "plan": "the planning passes over the whole table on the cluster (etl/planning/worker.py: "
    "duplicates, the audio file join, exclusion lists, budgets)",
    "decode": "the shard task decoding a recording (etl/shards/task.py)",
    "quality": "the measures of a cut clip (etl/audio/measures.py, judge), in the shard task",
}


@dataclass(frozen=True)
class Reason:
    """One reject reason and what the stages need to know of it.

    ``name``: the value of the ``reason`` column. ``description``: one line for the dataset card,
    report.html and the README. ``stage``: where it is found (``STAGES``). ``recording_fault``: it
    tells something about the recording or its alignment (counted in a recording's ``fault_share``,
    etl/curate/suspects.py); False for choices and absent files. ``replaceable``: a row with it can
    be a review sample's candidate, its clip cut and replaced by the next if cutting fails
    (etl/review/sample.py); False when there is no usable file or span, or the row was set aside.
    ``measure`` / ``filter``: the quality column it tests and its key under ``filters:`` (None for
    reasons no measure decides)."""

    name: str
    description: str
    stage: Stage
    recording_fault: bool = True
    replaceable: bool = True
    measure: str | None = None
    filter: str | None = None

    @property
    def before_decoding(self) -> bool:
        """Known to `etl plan`, which decodes nothing."""
        return self.stage not in ("decode", "quality")


# Reject reasons, in the order rows are checked: a row gets the first reason that applies.
#
# Adding a reason is one entry here, at its place in check order, plus its check (a call of
# ``etl.ingest.rows.reject`` with its name, or a verdict of ``etl.audio.measures.judge``). The
# deny-lists (``reasons_where``), the card, report.html and report.json follow.
REASONS: tuple[Reason, ...] = (
    Reason(
        "unreadable_alignment",
        "a malformed alignment file (TextGrid, CTM, subtitles), manifest or jsonl line: one row per "
        "file or recording, file and line in the detail",
        stage="read",
    ),
    Reason(
        "invalid_recording_id",
        "recording is empty or would leave the audio folder ('..' escaping it, absolute path, URL)",
        stage="check",
        recording_fault=False,
        replaceable=False,
    ),
    Reason(
        "bad_timestamps",
        "start/end missing, not a number, negative, or end <= start",
        stage="check",
        replaceable=False,
    ),
    Reason(
        "duplicate_id",
        "the same id appears earlier in the table (the first is kept)",
        stage="plan",
        recording_fault=False,
        replaceable=False,
    ),
    Reason(
        "excluded",
        "id or recording listed in a splits.exclude_ids file (e.g. sent for human review)",
        stage="plan",
        recording_fault=False,
        replaceable=False,
    ),
    Reason(
        "missing_audio",
        "no audio file for this recording id in the audio folder",
        stage="plan",
        recording_fault=False,
        replaceable=False,
    ),
    Reason(
        "ambiguous_recording",
        "the recording's name (stem, file name or pattern id) names files in several folders; "
        "give its path",
        stage="plan",
    ),
    Reason("empty_text", "transcript is empty after normalization", stage="check"),
    Reason(
        "too_short",
        "duration below filters.min_duration",
        stage="check",
        measure="duration",
        filter="min_duration",
    ),
    Reason(
        "too_long",
        "duration above filters.max_duration",
        stage="check",
        measure="duration",
        filter="max_duration",
    ),
    Reason(
        "bad_char_rate",
        "chars_per_second (normalized text without spaces / duration) outside "
        "filters.chars_per_second",
        stage="check",
        measure="chars_per_second",
        filter="chars_per_second",
    ),
    Reason(
        "low_similarity",
        "similarity of text and hypothesis below filters.min_similarity",
        stage="check",
        measure="similarity",
        filter="min_similarity",
    ),
    Reason(
        "duplicate_audio",
        "at least filters.duplicate_audio of the clip is audio a kept row of an earlier recording "
        "(in input order) already holds: a re-upload, excerpt or repeat (etl/curate/duplicates.py)",
        stage="plan",
        recording_fault=False,
    ),
    Reason(
        "over_budget",
        "beyond budget.train_hours / budget.total_gb in seeded hash order",
        stage="plan",
        recording_fault=False,
    ),
    Reason("unreadable_audio", "ffmpeg (or pydub) could not decode the recording", stage="decode"),
    Reason("beyond_end", "segment ends past the end of the decoded recording", stage="decode"),
    Reason(
        "silent",
        "clip RMS level (rms_db, dBFS) below filters.min_rms_db",
        stage="quality",
        measure="rms_db",
        filter="min_rms_db",
    ),
    Reason(
        "clipped",
        "share of samples at full scale (clipped_fraction) above filters.max_clipped_fraction",
        stage="quality",
        measure="clipped_fraction",
        filter="max_clipped_fraction",
    ),
    Reason(
        "mostly_silence",
        "share of 10 ms frames 40 dB below the clip's loudest (silence_fraction) above "
        "filters.max_silence_fraction",
        stage="quality",
        measure="silence_fraction",
        filter="max_silence_fraction",
    ),
)
REASON = {r.name: r for r in REASONS}
# name -> description, in check order (report.json's ``rejects`` keys, the card's table).
REJECT_REASONS: dict[str, str] = {r.name: r.description for r in REASONS}


def reasons_where(**props) -> tuple[str, ...]:
    """The names of the reasons whose properties equal ``props``, in check order, e.g.
    ``reasons_where(before_decoding=False)`` or ``reasons_where(stage="quality")``."""
    for key in props:
        if not hasattr(REASONS[0], key):
            raise TypeError(f"Reason has no property {key!r}")
    return tuple(r.name for r in REASONS if all(getattr(r, k) == v for k, v in props.items()))


# Per-clip quality measures (etl/audio/measures.py): chars_per_second is known before decoding, the others are
# taken on the cut samples (null in rejects for rows never cut).
QUALITY_COLUMNS = ("chars_per_second", "rms_db", "peak_db", "clipped_fraction", "silence_fraction")

REJECTS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("recording", pa.string()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("duration", pa.float64()),
        ("similarity", pa.float64()),
        ("text_raw", pa.string()),
        ("hypothesis", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        *[(name, pa.float64()) for name in QUALITY_COLUMNS],
    ]
)
REJECT_COLUMNS = REJECTS_SCHEMA.names
# ``input.columns.speaker`` mapped: the speaker column follows ``recording`` in the outputs and rejects.
SPEAKER = "speaker"


def rejects_schema(with_speaker: bool = False) -> pa.Schema:
    if not with_speaker:
        return REJECTS_SCHEMA
    return REJECTS_SCHEMA.insert(
        REJECT_COLUMNS.index("recording") + 1, pa.field(SPEAKER, pa.string())
    )


DATASET_RECORDINGS_SCHEMA = pa.schema(
    [
        ("recording", pa.string()),
        ("url", pa.string()),
        ("identity", pa.string()),
        ("length", pa.int64()),
        ("files", pa.list_(pa.string())),
    ]
)
assert DATASET_RECORDINGS_SCHEMA.names == DATASET_RECORDING_COLUMNS

AUDIO_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
# Word timings of word-level inputs (CTM, TextGrid tiers, timed subtitles, lhotse alignments): seconds
# from the clip's start. HF writes a list of dicts as `[{...}]` (datasets 4.x "List" of a dict).
WORDS_TYPE = pa.list_(
    pa.struct([("word", pa.string()), ("start", pa.float64()), ("end", pa.float64())])
)
WORDS_FEATURE = [
    {
        "word": {"dtype": "string", "_type": "Value"},
        "start": {"dtype": "float64", "_type": "Value"},
        "end": {"dtype": "float64", "_type": "Value"},
    }
]

# Output columns: (name, arrow type, HF feature dict). Types must match the HF feature's own
# arrow type exactly, or `datasets` silently ignores the metadata and the Audio feature is lost.
_OUTPUT = [
    ("id", pa.string(), {"dtype": "string", "_type": "Value"}),
    ("recording", pa.string(), {"dtype": "string", "_type": "Value"}),
    (SPEAKER, pa.string(), {"dtype": "string", "_type": "Value"}),
    ("start", pa.float64(), {"dtype": "float64", "_type": "Value"}),
    ("end", pa.float64(), {"dtype": "float64", "_type": "Value"}),
    ("duration", pa.float64(), {"dtype": "float64", "_type": "Value"}),
    ("audio", AUDIO_TYPE, None),  # filled with the sampling rate by output_schema()
    ("text", pa.string(), {"dtype": "string", "_type": "Value"}),
    ("text_raw", pa.string(), {"dtype": "string", "_type": "Value"}),
    ("hypothesis", pa.string(), {"dtype": "string", "_type": "Value"}),
    ("similarity", pa.float64(), {"dtype": "float64", "_type": "Value"}),
    *[(name, pa.float64(), {"dtype": "float64", "_type": "Value"}) for name in QUALITY_COLUMNS],
    ("source_id", pa.string(), {"dtype": "string", "_type": "Value"}),
]


@dataclass(frozen=True)
class DatasetShape:
    """Which optional columns a dataset has, decided once per build by planning
    (``PlannedTable.shape``) and handed to every writer, the card and the report:

    - ``source_id``: the table holds its own segment ids (``ResolvedInput.own_ids``);
    - ``speaker``: the input names speakers (``ResolvedInput.speaker``): the rejects carry it too;
    - ``words``: word timings (word-level inputs whose rows have them: ``PlanCounts.has_words``).
    """

    source_id: bool = False
    speaker: bool = False
    words: bool = False

    def _fields(self) -> list[tuple]:
        out = [
            f
            for f in _OUTPUT
            if (self.source_id or f[0] != "source_id") and (self.speaker or f[0] != SPEAKER)
        ]
        return out + ([("words", WORDS_TYPE, WORDS_FEATURE)] if self.words else [])

    def columns(self) -> list[str]:
        """The output columns, in file order."""
        return [name for name, _, _ in self._fields()]

    def features(self, sampling_rate: int) -> dict:
        """The `datasets.Features.to_dict()` form of the output columns."""
        return {
            name: feat
            if feat is not None
            else {"sampling_rate": int(sampling_rate), "_type": "Audio"}
            for name, _, feat in self._fields()
        }

    def schema(self, sampling_rate: int) -> pa.Schema:
        """Arrow schema of a split shard, with the `huggingface` metadata `datasets` reads back."""
        fields = [pa.field(name, typ) for name, typ, _ in self._fields()]
        meta = {"info": {"features": self.features(sampling_rate)}}
        return pa.schema(fields).with_metadata({"huggingface": json.dumps(meta)})

    def card_features(self, sampling_rate: int) -> list[dict]:
        """The `dataset_info.features` list of a dataset card (as `Features._to_yaml_list()`
        writes it)."""
        out = []
        for name, feat in self.features(sampling_rate).items():
            if isinstance(feat, list):  # a list of structs
                out.append(
                    {
                        "name": name,
                        "list": [{"name": k, "dtype": v["dtype"]} for k, v in feat[0].items()],
                    }
                )
            elif feat["_type"] == "Audio":
                out.append(
                    {"name": name, "dtype": {"audio": {"sampling_rate": feat["sampling_rate"]}}}
                )
            else:
                out.append({"name": name, "dtype": feat["dtype"]})
        return out

    def rejects_schema(self) -> pa.Schema:
        """The schema of rejects.parquet (and of every rejects part)."""
        return rejects_schema(self.speaker)
