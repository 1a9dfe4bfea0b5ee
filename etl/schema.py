"""The data contract: canonical table columns, output Arrow schemas (with HF features) and reject reasons.

Everything that names a column or a reason lives here, so readers, row checks, shard writers,
the dataset card and the report agree by construction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

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

# Reject reasons, in the order rows are checked: a row gets the first reason that applies.
REJECT_REASONS = {
    "unreadable_alignment": "a malformed alignment file (TextGrid, CTM, subtitles), manifest or jsonl line: one row per "
    "file or recording, file and line in the detail",
    "invalid_recording_id": "recording is empty or would leave the audio folder ('..' escaping it, absolute path, URL)",
    "bad_timestamps": "start/end missing, not a number, negative, or end <= start",
    "duplicate_id": "the same id appears earlier in the table (the first is kept)",
    "excluded": "id or recording listed in a splits.exclude_ids file (e.g. sent for human review)",
    "missing_audio": "no audio file for this recording id in the audio folder",
    "ambiguous_recording": "the recording's name (stem, file name or pattern id) names files in several folders; give its path",
    "empty_text": "transcript is empty after normalization",
    "too_short": "duration below filters.min_duration",
    "too_long": "duration above filters.max_duration",
    "bad_char_rate": "chars_per_second (normalized text without spaces / duration) outside filters.chars_per_second",
    "low_similarity": "similarity of text and hypothesis below filters.min_similarity",
    "over_budget": "beyond budget.train_hours / budget.total_gb in seeded hash order",
    "unreadable_audio": "ffmpeg (or pydub) could not decode the recording",
    "beyond_end": "segment ends past the end of the decoded recording",
    "silent": "clip RMS level (rms_db, dBFS) below filters.min_rms_db",
    "clipped": "share of samples at full scale (clipped_fraction) above filters.max_clipped_fraction",
    "mostly_silence": "share of 10 ms frames 40 dB below the clip's loudest (silence_fraction) above "
    "filters.max_silence_fraction",
}

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
