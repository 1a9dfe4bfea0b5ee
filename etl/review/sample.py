"""`etl sample`: a seeded sample of rows cut into playable clips, with a spreadsheet for human review.

The rows come from the same table checks and split assignment as `etl build` (``planning``), the
clips from the same decoder and cutter, so a reviewer hears exactly what the dataset would hold.
Output folder: ``clips/{id}.wav``, ``sampled_ids.txt`` (one id per line, for ``splits.exclude_ids``)
and ``review.xlsx``, written last so its presence means the sample is complete.
"""

from __future__ import annotations

import pandas as pd

from ..audio import media as audio
from ..audio.measures import judge, measure
from ..config import AudioConfig, FiltersConfig
from ..curate.splits import RESERVE, hash_rank
from ..errors import UserError
from ..output import storage
from ..output.storage import CLIPS_DIR, IDS_FILE, REVIEW_FILE, clip_name
from ..schema import QUERY_COLUMNS, reasons_where

# Rows whose clip cannot be cut (no usable file or span) or that were already set aside.
UNCUTTABLE = reasons_where(replaceable=False)
# A placed row of every query column (and ``url``): a --where expression is tried on it first.
EXAMPLE_ROW = {
    "id": "x",
    "recording": "x",
    "start": 0.0,
    "end": 1.0,
    "duration": 1.0,
    "similarity": 1.0,
    "chars_per_second": 10.0,
    "text": "x",
    "text_raw": "x",
    "hypothesis": "x",
    "split": "train",
    "reason": None,
    "url": "x",
}
SPARE = 4  # candidates brought to the client per sampled row: replacements for clips that fail


def select(
    df: pd.DataFrame, n: int, seed: int, where: str | None = None, names: dict | None = None
) -> pd.DataFrame:
    """The ``n`` candidate rows with the smallest seeded hash of their id, in hash order (pure).
    ``n=None``: every candidate, in that order (the rows after the first n replace those that fail).
    ``names``: what ``@name`` in ``where`` refers to (``@suspects``: the build's suspect recordings).

    Candidates: rows whose clip can be cut; without ``where`` only the rows the build keeps, with it
    the rows (kept or filtered out) the pandas query selects. The hash is salted with ``sample:`` so
    the sample is independent of dev (the smallest unsalted hash with the split seed: the same seed
    would otherwise sample exactly the dev rows), and a smaller n gives a prefix of the larger sample.
    """
    if n is not None and n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    view = df.assign(
        split=df["split"].where(df["split"] != RESERVE, "train")
    )  # before decoding: as `etl plan`
    cand = view[~view["reason"].isin(UNCUTTABLE) & view["url"].notna()]
    if where is None:
        cand = cand[cand["reason"].isna()]
    elif cand.empty:
        return cand.assign(sample_rank=pd.Series(dtype="int64"))
    else:
        try:
            keep = cand[QUERY_COLUMNS].eval(where, engine="python", local_dict=dict(names or {}))
            if not (isinstance(keep, pd.Series) and pd.api.types.is_bool_dtype(keep)):
                raise TypeError(
                    "the expression must give true/false per row, e.g. 'similarity < 0.8'"
                )
        except Exception as e:  # any mistake in the user's expression is one line
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserError(
                f"--where {where!r}: {msg} (columns: {', '.join(QUERY_COLUMNS)})"
            ) from None
        cand = cand[keep.fillna(False).astype(bool)]
    rank = hash_rank(cand["id"], f"sample:{seed}")
    return cand.assign(sample_rank=rank)[rank < (len(rank) if n is None else n)].sort_values(
        "sample_rank"
    )


def cut_recording(
    url: str, rows: list[dict], clips_dir: str, a: AudioConfig, filters: FiltersConfig | None = None
) -> dict[str, str | None]:
    """Decode one recording once, write each row's clip (WAV PCM16, atomically) as the stream passes it.
    Returns {id: None when written, else why not}. The decode stops after the last needed clip.
    Decoding goes through the build's own loop (``shards.decode_spans``): the same retries of transient
    read errors, the same ``unreadable_audio`` for corrupt data. With ``filters``, a clip the build would
    reject on its measures (``silent``, ``clipped``, ``mostly_silence``) is not written either."""
    from ..shards.task import Unreadable, decode_spans

    fs, _ = storage.fs_and_path(clips_dir)
    sr = a.sampling_rate
    spans = [(audio.sample_index(r["start"], sr), audio.sample_index(r["end"], sr)) for r in rows]
    problems: dict[str, str | None] = {}
    segments = decode_spans(
        url,
        spans,
        a.decoder,
        a.ffmpeg,
        sr,
        a.channels,
        int(round(audio.END_TOLERANCE_S * sr)),
    )
    try:
        for i, samples, total in segments:
            r = rows[i]
            verdict = (
                None if samples is None or filters is None else judge(measure(samples, sr), filters)
            )
            if samples is None:
                problems[r["id"]] = f"beyond_end: recording decodes to {total / sr:.3f} s"
            elif verdict is not None:
                problems[r["id"]] = f"{verdict[0]}: {verdict[1]}"
            else:
                clip = audio.encode(samples, sr, "wav")
                storage.write_bytes(fs, storage.join(clips_dir, clip_name(r["id"])), clip)
                problems[r["id"]] = None
            if len(problems) == len(rows):
                break
    except Unreadable as e:  # every clip not yet cut says why
        problems.update(
            {r["id"]: f"unreadable_audio: {e}" for r in rows if r["id"] not in problems}
        )
    finally:
        segments.close()  # stops ffmpeg when the last clip came before the end of the recording
    return problems


def format_sample(s: dict) -> str:
    lines = [
        f"sampled {s['rows']} rows, {s['clips']} clips cut into {storage.join(s['out'], CLIPS_DIR)}/"
    ]
    if s.get("replaced"):
        why = pd.Series([p.split(":", 1)[0] for p in s["replaced"].values()]).value_counts()
        lines.append(
            f"  replaced {len(s['replaced'])} row(s) that could not be cut by the next in hash order: "
            + ", ".join(f"{r} {k}" for r, k in why.items())
        )
        lines += [f"  replaced: {i}: {p}" for i, p in list(s["replaced"].items())[:10]]
    for i, why in list(s["not_cut"].items())[:10]:
        lines.append(f"  not cut: {i}: {why}")
    if len(s["not_cut"]) > 10:
        lines.append(f"  ... {len(s['not_cut']) - 10} more rows not cut (see the clip column)")
    lines.append(
        f"review: {storage.join(s['out'], REVIEW_FILE)}   ids: {storage.join(s['out'], IDS_FILE)}"
    )
    return "\n".join(lines)
