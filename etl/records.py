"""What passes between the stages after planning, declared (see ``schema.py`` for the columns and
``planning.client.PlannedTable`` / ``PlanCounts`` for what planning hands on).

planning (planning.client) -> PlannedTable: futures of placed partitions + counts, per-recording aggregates
make_tasks (build)       -> ShardTask (shards.py): recordings and where to read their rows, never rows
run_shard (shards)       -> ShardResult: per split one SplitPart; the decode-time rejects as a file
finalize (build)         -> Report: report.json; PlotCounts: report.html's histograms, reduced on the workers
"""

from __future__ import annotations

from typing import TypedDict


class SplitPart(TypedDict, total=False):
    """One split's file of one shard, under OUT/.parts/ until finalize names it."""

    file: str
    rows: int
    seconds: float
    bytes: int  # audio bytes
    digest: str  # sum of row digests (resume.content_hash)
    ids: list  # only for the reserve split (its rows may move to dev)


class LateRejects(TypedDict):
    file: (
        str | None
    )  # OUT/.parts/plan/late/shard-i.parquet (plan_store.write_late_rejects), None: none
    count: int


class ShardResult(TypedDict, total=False):
    """What a shard task returns (and records in OUT/.parts/shard-i.done.json for resume)."""

    shard: int
    parts: dict  # split -> SplitPart
    rejects: LateRejects  # run_shard itself returns the list; run_shard_filed files it
    decoded_seconds: float
    wall_seconds: float
    recordings: dict  # recording -> measures.summarize(...) of its clips (suspects)


class SplitReport(TypedDict, total=False):
    rows: int
    hours: float
    files: int
    bytes: int
    speakers: int  # with a speaker column


class Report(TypedDict, total=False):
    """report.json: every input row is in ``splits`` or counted in ``rejects`` (rows_in = rows_out +
    rows_rejected)."""

    rows_in: int
    rows_out: int
    rows_rejected: int
    splits: dict  # split -> SplitReport
    rejects: dict  # reason (schema.REJECT_REASONS) -> rows
    hours_out: float
    hours_decoded: float
    shards: int
    ids_from_template: int
    invisible_characters: dict
    selection: dict  # what test_ids / exclude_ids / the previous dev matched
    listing: dict  # how table and audio folder fit
    fingerprint: str
    content_hash: str
    vocab: dict
    recordings: dict
    suspects: dict
    audio: dict
    config: dict
    timings: dict


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
