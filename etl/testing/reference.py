"""The alignment table -> checked, placed rows (a pandas frame), before any audio is decoded.

The reference planner: the same rules as ``planning`` (which `etl build`, `etl plan` and `etl sample`
use) on one in-memory frame, for tests and small tables; the equality tests check both agree. The table is
read with dask.dataframe on local threads; checks that need the whole table (duplicates, the audio
listing, splits) run on the complete frame.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ..config import Config
from ..curate.duplicates import applied_pairs, decide
from ..curate.splits import SplitPolicy, listed, read_id_list, split_units
from ..errors import UserError
from ..ingest import rows as rowchecks
from ..ingest import table
from ..ingest.recordings import list_audio, listing_summary, missing_audio_where, resolve
from ..ingest.resolved import check_speakers, resolve_input
from ..schema import CHECKED_COLUMNS, PLACED_COLUMNS, check_frame_columns
from .reference_splits import assign


class CheckedTable(NamedTuple):
    """``read_checked_table``'s result: the frame (``row`` + ``schema.CHECKED_COLUMNS``) and whether
    the table had its own id column."""

    frame: pd.DataFrame
    has_id: bool

    @property
    def ids_from_template(self) -> int:
        """Rows of a table with ids whose own id was missing (null, NaN, empty): ids from the
        template (not a malformed line's row: its id names its file and line). ``unreadable_alignment``
        is the first reason, so no later check changes this count."""
        if not self.has_id:
            return 0
        df = self.frame
        blank = df["source_id"].map(lambda v: not isinstance(v, str) or not v.strip())
        return int((blank & df["reason"].ne("unreadable_alignment")).sum())


class PlannedRows(NamedTuple):
    """``plan_rows``'s result: the placed frame (``schema.PLACED_COLUMNS``), the listing summary
    (``recordings.listing_summary``) and what each id list matched (``place_rows``), as the
    cluster's ``PlannedTable`` holds them for report.json."""

    frame: pd.DataFrame
    listing: dict
    selection: dict


def read_checked_table(cfg: Config) -> CheckedTable:
    """The alignment table, canonical and row-checked, as one pandas frame in input order, and
    whether the table had its own id column."""
    import dask
    import dask.dataframe  # noqa: F401  (registers the dataframe config)

    inp = cfg.input
    resolved = resolve_input(inp)
    fmt, columns = resolved.format, resolved.columns
    check_speakers(cfg.splits, resolved)
    with dask.config.set({"dataframe.convert-string": False}):
        try:
            ddf = resolved.read_raw()
            present = [str(c) for c in ddf.columns]
        except (
            ValueError,
            TypeError,
            OSError,
            UnicodeDecodeError,
        ) as e:  # a malformed table: the user's input
            raise _unreadable_table(inp.alignment, fmt, e) from None
        table.check_columns(present, columns, fmt)
        has_id = resolved.own_ids(present)

        def per_partition(pdf: pd.DataFrame) -> pd.DataFrame:
            canon = table.canonical(
                pdf, columns, inp.id_template, reader_extras=resolved.reader_extras
            )
            return rowchecks.check_rows(
                canon,
                cfg.text,
                cfg.filters,
                inp.id_template,
                absolute_recordings=inp.audio is None,
            )

        try:
            (df,) = dask.compute(ddf.map_partitions(per_partition), scheduler="threads")
        except (ValueError, TypeError, OSError, UnicodeDecodeError) as e:
            raise _unreadable_table(inp.alignment, fmt, e) from None
    df = df.reset_index(drop=True)
    df.insert(0, "row", np.arange(len(df), dtype=np.int64))
    check_frame_columns(df.columns, ["row", *CHECKED_COLUMNS], "checked")
    return CheckedTable(df, has_id)


def _unreadable_table(path: str, fmt: str, e: Exception) -> UserError:
    text = str(e).replace("Original Message:", "").strip()
    lines = [
        ln.strip()
        for ln in text.splitlines()
        if ln.strip() and "error occurred while calling" not in ln
    ]
    return UserError(
        f"input.alignment {path}: cannot read it as {fmt}: {lines[0] if lines else type(e).__name__}"
    )


def plan_rows(
    cfg: Config, df: pd.DataFrame, previous_dev=frozenset(), audio_pairs=None
) -> PlannedRows:
    """Whole-table checks and split assignment of ``read_checked_table``'s frame (changed in place);
    adds ``url``, ``recording_key``, ``split`` (None when rejected), ``unit`` and ``order`` (see
    ``splits.assign``). ``audio_pairs``: recordings sharing audio (``audio_matches.MATCH_COLUMNS``)."""
    inp = cfg.input
    rowchecks.mark_duplicates(df)
    wav_scp = resolve_input(inp).wav_scp
    listing = None if inp.audio is None else list_audio(inp.audio, inp.recording_pattern)
    refs = df["recording"].where(
        df["reason"].ne("invalid_recording_id"), None
    )  # invalid: never looked up
    found = resolve(refs, listing, wav_scp)
    df["url"] = found["url"]
    df["recording_key"] = found[
        "key"
    ]  # one key per file, however the table spells it (split units)
    rowchecks.mark_unread_pipes(df, wav_scp)
    where = missing_audio_where(inp.audio, wav_scp)
    ambiguous = found["candidates"].notna()
    rowchecks.mark_missing_audio(
        df, found["url"].mask(ambiguous, ""), where
    )  # earlier reasons stay
    rowchecks.mark_ambiguous(df, found["candidates"])
    summary = listing_summary(listing, refs, found)
    selection = place_rows(cfg, df, previous_dev, audio_pairs)
    check_frame_columns(df.columns, PLACED_COLUMNS, "placed")
    return PlannedRows(df, summary, selection)


def place_rows(cfg: Config, df: pd.DataFrame, previous_dev=frozenset(), audio_pairs=None) -> dict:
    """Exclusions, duplicate audio, test ids, dev, reserve, train, budgets: fills ``split``,
    ``unit``, ``order``. Returns what each id list matched (report.json's ``selection``)."""
    s = cfg.splits
    selection: dict = {"exclude_ids": {}}  # what each list matched, for report.json and the plan
    for path in s.exclude_ids:
        ids = read_id_list(_read_text(path))
        hit = listed(df, ids, s.by)
        rowchecks.reject(df, hit, "excluded", f"listed in {path}")
        selection["exclude_ids"][path] = {"listed": len(ids), "rows_matched": int(hit.sum())}
    test_keys = read_id_list(_read_text(s.test_ids)) if s.test_ids else set()
    low_split = s.low_similarity == "split"
    eligible = df["reason"].isna() | (low_split & df["reason"].eq("low_similarity").fillna(False))
    cols = ["id", "recording", "duration", "reason"] + [
        c for c in ("recording_key", "speaker") if c in df
    ]
    merges = _shared_audio(cfg, df, eligible, audio_pairs)
    eligible &= ~df["reason"].eq("duplicate_audio")
    placed = assign(
        df.loc[eligible, cols],
        SplitPolicy.from_config(cfg),
        test_keys,
        previous_dev,
        low_split,
        merges,
    )
    df["split"] = pd.Series(None, index=df.index, dtype=object)
    df["unit"] = pd.Series(None, index=df.index, dtype=object)
    df["order"] = np.int64(-1)
    df.loc[eligible, ["split", "unit", "order"]] = placed[["split", "unit", "order"]]
    kept_low = df["split"].eq("low_similarity").fillna(False)
    df.loc[kept_low, ["reason", "detail"]] = None  # a split of its own, not a reject
    over = placed["over_budget"].reindex(df.index)
    rowchecks.reject(df, over.notna(), "over_budget", over)
    if s.test_ids:
        hit = listed(df, test_keys, s.by)
        selection["test_ids"] = {
            "listed": len(test_keys),
            "rows_matched": int(hit.sum()),
            "rows_in_test": int(df["split"].eq("test").sum()),
        }
    if previous_dev:
        selection["previous_dev"] = {
            "ids": len(previous_dev),
            "still_in_dev": int((df["id"].isin(previous_dev) & df["split"].eq("dev")).sum()),
        }
    if s.by == "speaker":  # rows without a speaker were placed by their recording
        selection["by_speaker"] = {
            "rows_without_speaker": int((df["split"].notna() & df["speaker"].isna()).sum())
        }
    return selection


def _shared_audio(cfg: Config, df: pd.DataFrame, eligible: pd.Series, pairs) -> dict:
    """``curate.duplicates.decide`` on the eligible rows of the recordings in ``pairs``: marks
    their ``duplicate_audio`` rows, returns the units that merge."""
    if pairs is None or pairs.empty:
        return {}
    sharing = set(pairs["recording_a"]) | set(pairs["recording_b"])
    rows = df.loc[eligible & df["recording"].isin(sharing)]
    rows = rows.assign(unit=split_units(rows, cfg.splits.by))
    rejects, merges = decide(
        rows[["id", "recording", "start", "end", "row", "reason", "unit"]],
        applied_pairs(pairs, set(rows["recording"])),
        cfg.filters.duplicate_audio,
    )
    hit = df["row"].isin(list(rejects))
    rowchecks.reject(df, hit, "duplicate_audio", df["row"].map(rejects))
    return merges


def _read_text(path: str) -> str:
    import fsspec

    with fsspec.open(path, "rt", encoding="utf-8-sig") as f:
        return f.read()
