"""Row checks and filters on pandas frames (pure: no Dask, no I/O).

A row gets exactly one ``reason`` (``None`` = kept so far): the first reason, in the order of
``schema.REJECT_REASONS``, that applies. ``check_rows`` does what one row can tell about itself and
runs per partition; ``mark_duplicates`` and ``mark_missing_audio`` need the whole table.
"""

from __future__ import annotations

import string
from dataclasses import asdict

import numpy as np
import pandas as pd

from ..audio.measures import chars_per_second
from ..audio.media import channel_id
from ..config import FiltersConfig, TextConfig
from ..schema import REJECT_REASONS, SPEAKER_IN_ID
from .recordings import reference_problem
from .text import normalize_many, similarities
from .wav_scp import UnreadPipe

_PRIORITY = {r: i for i, r in enumerate(REJECT_REASONS)}


def reject(df: pd.DataFrame, mask, reason: str, detail) -> None:
    """Give ``reason`` to rows in ``mask`` unless they already hold a reason checked earlier.
    ``detail`` is a string, a Series, or a function of the newly rejected rows' frame (so details
    are only formatted for rejected rows)."""
    mask = pd.Series(mask, index=df.index).fillna(False).astype(bool)
    if not mask.any():
        return
    current = df["reason"].map(_PRIORITY).fillna(len(_PRIORITY))
    take = mask & (current > _PRIORITY[reason])
    if take.any():
        df.loc[take, "reason"] = reason
        if callable(detail):
            detail = detail(df[take])
        df.loc[take, "detail"] = (
            detail[take] if isinstance(detail, pd.Series) and len(detail) == len(df) else detail
        )


def check_rows(
    df: pd.DataFrame,
    text_cfg: TextConfig,
    filters: FiltersConfig,
    id_template: str,
    absolute_recordings: bool = False,
) -> pd.DataFrame:
    """Parse, normalize and filter one partition of the canonical table. ``absolute_recordings``
    (``input.audio: null``): recordings may be absolute paths or URLs."""
    df = df.copy()
    df["reason"] = pd.Series([None] * len(df), index=df.index, dtype=object)
    df["detail"] = pd.Series([None] * len(df), index=df.index, dtype=object)
    if (
        "alignment_error" in df.columns
    ):  # a malformed alignment file (etl.ingest.formats): file and line
        reject(df, df["alignment_error"].notna(), "unreadable_alignment", df["alignment_error"])
        df = df.drop(columns="alignment_error")

    rec = _check_recordings(df, absolute_recordings)
    if "speaker" in df.columns:  # stripped; empty -> no speaker
        df["speaker"] = df["speaker"].map(
            lambda s: s.strip() or None if isinstance(s, str) else None
        )
    start, end = _check_timestamps(df)
    _fill_ids(df, rec, start, end, id_template)

    df["text"] = normalize_many(df["text_raw"], **asdict(text_cfg))
    reject(df, df["text"] == "", "empty_text", lambda d: "text_raw=" + d["text_raw"].map(repr))

    _length_filters(df, filters)

    has_hyp = df["hypothesis"].notna()
    hyp_norm = [
        h if ok else None
        for h, ok in zip(normalize_many(df["hypothesis"], **asdict(text_cfg)), has_hyp)
    ]
    df["similarity"] = pd.Series(
        similarities(df["text"], hyp_norm), index=df.index, dtype="float64"
    )
    if filters.min_similarity is not None:
        lo = float(filters.min_similarity)
        reject(
            df,
            has_hyp & (df["similarity"] < lo),
            "low_similarity",
            lambda d: d["similarity"].map(lambda x: f"similarity {x:.3f} < {lo}"),
        )
    return df


def _length_filters(df: pd.DataFrame, filters: FiltersConfig) -> None:
    """``too_short``, ``too_long`` and ``bad_char_rate``; adds ``chars_per_second``."""
    dur = df["duration"]
    if filters.min_duration is not None:
        lo = float(filters.min_duration)
        reject(
            df,
            dur < lo,
            "too_short",
            lambda d: d["duration"].map(lambda x: f"duration {x:.3f} s < {lo}"),
        )
    if filters.max_duration is not None:
        hi = float(filters.max_duration)
        reject(
            df,
            dur > hi,
            "too_long",
            lambda d: d["duration"].map(lambda x: f"duration {x:.3f} s > {hi}"),
        )
    df["chars_per_second"] = chars_per_second(df["text"], dur)
    if filters.chars_per_second is not None:
        lo, hi = (
            bound if v is None else float(v)
            for v, bound in zip(filters.chars_per_second, (float("-inf"), float("inf")))
        )
        cps = df["chars_per_second"]
        reject(
            df,
            (cps < lo) | (cps > hi),
            "bad_char_rate",
            lambda d: d["chars_per_second"].map(
                lambda x: f"{x:.1f} chars/s outside [{lo:g}, {hi:g}]"
            ),
        )


def to_seconds(values: pd.Series) -> pd.Series:
    """Seconds as float: numbers, numeric strings, or clock times "HH:MM:SS.mmm" / "MM:SS,mmm"
    (subtitle style); anything else is NaN (and so ``bad_timestamps``)."""
    if values.dtype == object:  # JSON/Parquet cells of any type: only numbers and text can be times
        values = values.map(_number_or_text)
    elif values.dtype == bool:
        values = pd.Series(np.nan, index=values.index)
    out = pd.to_numeric(values, errors="coerce").astype("float64")
    clock = out.isna() & values.map(lambda v: isinstance(v, str) and ":" in v).astype(bool)
    if clock.any():
        out[clock] = values[clock].map(_clock_seconds)
    return out


def _number_or_text(v):
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)):
        try:
            return float(v)
        except OverflowError:  # an integer beyond float: not a time
            return np.nan
    return np.nan  # None, booleans, lists, objects


def _check_recordings(df: pd.DataFrame, absolute_recordings: bool) -> pd.Series:
    """Recording ids stripped; ``invalid_recording_id`` for the unusable ones (checked once per
    recording). Returns the stripped ids."""
    rec = df["recording"].map(lambda r: r.strip() if isinstance(r, str) else r)
    df["recording"] = rec
    cache = {
        r: reference_problem(r, absolute_recordings) for r in rec.unique() if isinstance(r, str)
    }
    problem = rec.map(lambda r: cache[r] if isinstance(r, str) else "is empty")
    reject(
        df,
        problem.notna(),
        "invalid_recording_id",
        lambda d: "recording id " + d["recording"].map(repr) + " " + problem[d.index],
    )
    return rec


def _check_timestamps(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """``start``/``end`` in seconds and ``duration``; ``bad_timestamps`` for the unusable ones.
    Returns (start, end)."""
    raw_start, raw_end = df["start"], df["end"]
    start, end = to_seconds(raw_start), to_seconds(raw_end)
    df["start"], df["end"] = start, end
    bad_ts = (
        start.isna()
        | end.isna()
        | ~np.isfinite(start)
        | ~np.isfinite(end)
        | (start < 0)
        | (end <= start)
    )
    reject(
        df,
        bad_ts,
        "bad_timestamps",
        lambda d: "start=" + raw_start[d.index].map(repr) + " end=" + raw_end[d.index].map(repr),
    )
    df["duration"] = (end - start).where(~bad_ts)
    return start, end


def _fill_ids(df: pd.DataFrame, rec, start, end, id_template: str) -> None:
    """Ids: the table's own (stripped), else the seed's nomenclature from the template.
    A missing id (null, NaN, empty or blank cell) is repaired from the template, as for a table
    without an id column; ``source_id`` stays null for that row. A row of one of a TextGrid's
    several speaker tiers (``SPEAKER_IN_ID``, dropped here) names its speaker even when the template
    does not (``speaker_template``): two speakers at the same times keep two ids."""
    df["id"] = df["id"].map(lambda v: v.strip() if isinstance(v, str) else None)
    missing_id = df["id"].isna() | df["id"].eq("")
    speaker = df["speaker"] if "speaker" in df.columns else pd.Series(None, index=df.index)
    in_id = (
        df.pop(SPEAKER_IN_ID).fillna(False).astype(bool) & speaker.notna()
        if SPEAKER_IN_ID in df.columns
        else pd.Series(False, index=df.index)
    )
    if not missing_id.any():
        return
    templates = {False: id_template, True: speaker_template(id_template)}
    df.loc[missing_id, "id"] = [
        _make_id(templates[k], r, s, e, spk)
        for r, s, e, spk, k in zip(
            rec[missing_id],
            start[missing_id],
            end[missing_id],
            speaker[missing_id],
            in_id[missing_id],
        )
    ]


def _clock_seconds(v: str) -> float:
    parts = v.strip().replace(",", ".").split(":")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        return float("nan")
    if len(nums) > 3 or any(n < 0 for n in nums) or any(n >= 60 for n in nums[1:]):
        return float("nan")
    total = 0.0
    for n in nums:
        total = total * 60 + n
    return total


def _make_id(template: str, recording, start, end, speaker=None) -> str:
    """A template id. ``{speaker}`` is the row's speaker as given (stripped), like ``{recording}``:
    ids are text, spaces and '/' included (``storage.clip_name`` escapes them where an id names a
    file); a row without a speaker formats it as ''."""
    if isinstance(recording, str):  # one channel of a file: sw02001#channel=2 -> sw02001_ch2
        recording = channel_id(recording)
    speaker = speaker if isinstance(speaker, str) else ""
    try:
        return template.format(recording=recording, start=start, end=end, speaker=speaker)
    except (
        TypeError,
        ValueError,
    ):  # NaN timestamps or no recording: still a readable, unique-ish id
        named = f"_{speaker}" if speaker and "{speaker" in template else ""
        return f"{recording}{named}_{start}-{end}"


def speaker_template(template: str) -> str:
    """The id template of a row from one of a file's several speaker tiers: ``template`` itself if it
    names ``{speaker}``, else ``template`` with ``_{speaker}`` after its ``{recording}`` field (before
    it all when it has none). The default gives ``{recording}_{speaker}_{start:.1f}-{end:.1f}``."""
    fields = list(string.Formatter().parse(template))
    if any(name == "speaker" for _, name, _, _ in fields):
        return template
    out, placed = [], False
    for literal, name, spec, conversion in fields:
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        out.append(
            "{"
            + name
            + (f"!{conversion}" if conversion else "")
            + (f":{spec}" if spec else "")
            + "}"
        )
        if name == "recording" and not placed:
            out.append("_{speaker}")
            placed = True
    return "".join(out) if placed else "{speaker}_" + "".join(out)


def mark_duplicates(df: pd.DataFrame) -> None:
    """``duplicate_id`` for every repeat of an id; the first in table order is kept. ``df`` sorted by row."""
    dup = df["id"].duplicated(keep="first")
    if dup.any():
        first_row = df.drop_duplicates("id", keep="first").set_index("id")["row"]
        reject(
            df, dup, "duplicate_id", lambda d: "first at row " + d["id"].map(first_row).astype(str)
        )


def mark_ambiguous(df: pd.DataFrame, candidates: pd.Series) -> None:
    """``ambiguous_recording`` for rows whose recording names several files (``candidates``, else None)."""
    reject(
        df,
        candidates.notna(),
        "ambiguous_recording",
        lambda d: (
            "'"
            + d["recording"].astype(str)
            + "' names "
            + candidates[d.index].map(lambda c: f"{len(c)} files: {', '.join(c)}")
            + "; give its path relative to the audio folder"
        ),
    )


def mark_missing_audio(df: pd.DataFrame, audio_url: pd.Series, where: str) -> None:
    """``missing_audio`` for rows whose recording resolved to no file (``audio_url`` is None)."""
    reject(
        df,
        audio_url.isna(),
        "missing_audio",
        lambda d: "no audio file for '" + d["recording"].astype(str) + f".*' in {where}",
    )


def mark_unread_pipes(df: pd.DataFrame, wav_scp: dict | None) -> None:
    """``missing_audio`` for rows whose wav.scp entry is a command pipe of no known form
    (``wav_scp.UnreadPipe``): never run, the detail names the command."""
    pipes = {r: p.detail for r, p in (wav_scp or {}).items() if isinstance(p, UnreadPipe)}
    if pipes:
        reject(
            df, df["recording"].isin(pipes), "missing_audio", lambda d: d["recording"].map(pipes)
        )
