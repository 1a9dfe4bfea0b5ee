"""`etl sample`: a seeded sample of rows cut into playable clips, with a spreadsheet for human review.

The rows come from the same table checks and split assignment as `etl build` (``cluster_plan``), the
clips from the same decoder and cutter, so a reviewer hears exactly what the dataset would hold.
Output folder: ``clips/{id}.wav``, ``sampled_ids.txt`` (one id per line, for ``splits.exclude_ids``)
and ``review.xlsx``, written last so its presence means the sample is complete.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
from urllib.parse import quote

import pandas as pd
from tqdm import tqdm

from ..audio import media as audio
from ..audio.measures import judge, measure
from ..config import ConfigError
from ..curate.splits import RESERVE, hash_rank, id_list_line, read_id_list
from ..curate.suspects import SUSPECTS_FILE
from ..output import storage

# Rows whose clip cannot be cut (no usable file or span) or that were already set aside.
UNCUTTABLE = ("invalid_recording_id", "bad_timestamps", "duplicate_id", "excluded", "missing_audio")
# What a --where expression sees.
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
CLIPS_DIR = "clips"
REVIEW_FILE = "review.xlsx"
IDS_FILE = "sampled_ids.txt"
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
        raise ConfigError(f"--n must be >= 1, got {n}")
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
            raise ConfigError(
                f"--where {where!r}: {msg} (columns: {', '.join(QUERY_COLUMNS)})"
            ) from None
        cand = cand[keep.fillna(False).astype(bool)]
    rank = hash_rank(cand["id"], f"sample:{seed}")
    return cand.assign(sample_rank=rank)[rank < (len(rank) if n is None else n)].sort_values(
        "sample_rank"
    )


def clip_name(row_id: str) -> str:
    """A file name for an id that stays inside ``clips/`` and is a valid relative link:
    letters, digits, '-', '_', '.' kept (any script), everything else %-escaped, no leading dot."""
    name = "".join(c if (c.isalnum() or c in "-_.") else quote(c, safe="") for c in str(row_id))
    return ("%2E" + name[1:] if name.startswith(".") else name) + ".wav"


def cut_recording(
    url: str, rows: list[dict], clips_dir: str, a: dict, filters: dict | None = None
) -> dict[str, str | None]:
    """Decode one recording once, write each row's clip (WAV PCM16, atomically) as the stream passes it.
    Returns {id: None when written, else why not}. The decode stops after the last needed clip.
    Decoding goes through the build's own loop (``shards.decode_spans``): the same retries of transient
    read errors, the same ``unreadable_audio`` for corrupt data. With ``filters``, a clip the build would
    reject on its measures (``silent``, ``clipped``, ``mostly_silence``) is not written either."""
    from ..run.shards import Unreadable, decode_spans

    fs, _ = storage.fs_and_path(clips_dir)
    sr = a["sampling_rate"]
    spans = [(audio.sample_index(r["start"], sr), audio.sample_index(r["end"], sr)) for r in rows]
    problems: dict[str, str | None] = {}
    segments = decode_spans(
        url,
        spans,
        a["decoder"],
        a["ffmpeg"],
        sr,
        a["channels"],
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


def sample(
    cfg: dict, n: int, seed: int, out: str, where: str | None = None, force: bool = False
) -> dict:
    """Select, cut and write a review sample into ``out``. Returns a summary for the CLI."""
    from .spreadsheet import write_review_xlsx

    fs, root = storage.fs_and_path(out)
    xlsx = storage.join(root, REVIEW_FILE)
    if fs.exists(xlsx) and not force:
        raise ConfigError(
            f"{xlsx} exists and may hold verdicts; import it first, then use another --out "
            f"or --force to replace that sample"
        )
    names = {"suspects": _suspects(cfg)} if where and "@suspects" in where else None
    ranked = _rank_on_cluster(cfg, n, seed, where, names)  # the build's own placement
    if ranked.empty:
        raise ConfigError("no rows to sample" + (f" match --where {where!r}" if where else ""))
    clips_dir = storage.join(root, CLIPS_DIR)
    fs.makedirs(clips_dir, exist_ok=True)
    picked, problems, replaced = _cut_replacing(
        cfg, ranked, n, clips_dir, cfg["filters"] if where is None else None
    )
    _remove_stale_clips(fs, clips_dir, {clip_name(i) for i in picked["id"]})
    storage.write_bytes(
        fs, storage.join(root, IDS_FILE), "".join(id_list_line(i) for i in picked["id"]).encode()
    )
    about = {
        "alignment": cfg["input"]["alignment"],
        "seed": seed,
        "n": n,
        "where": where or "",
        "rows": len(picked),
        "candidates": "rows kept by the build" if where is None else "cuttable rows matching where",
    }
    with storage.atomic_open(fs, xlsx) as f:
        write_review_xlsx(f, picked, {i: clip_name(i) for i in picked["id"]}, problems, about)
    return {
        "out": out,
        "rows": len(picked),
        "clips": sum(problems[i] is None for i in picked["id"]),
        "not_cut": {i: problems[i] for i in picked["id"] if problems[i] is not None},
        "replaced": replaced,
    }


def _rank_on_cluster(
    cfg: dict, n: int, seed: int, where: str | None, names: dict | None
) -> pd.DataFrame:
    """The candidates in sample order, as ``select(..., None, ...)`` on the whole table gives them, up to
    ``SPARE``·n + 100 (the replacements of clips that fail): each placed partition's smallest on the
    workers, then ranked once more on the client over those few rows."""
    from ..ingest.table import check_speakers
    from ..run.cluster import close_client, open_client
    from ..run.cluster_plan import plan_table
    from ..run.planning import previous_dev_ids
    from ..run.stall import raise_if_stalled

    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    keep = SPARE * n + 100
    if where is not None:  # a mistake in the expression: one line at once, before the table is read
        select(pd.DataFrame([EXAMPLE_ROW]), 1, seed, where, names)
    check_speakers(cfg)  # a config mistake is told before the cluster starts
    client = open_client(cfg["cluster"])
    try:
        planned = plan_table(client, cfg, previous_dev_ids(cfg))
        parts = client.gather(
            client.map(select, planned.parts, n=keep, seed=seed, where=where, names=names)
        )
    except Exception:
        raise_if_stalled(client)  # every worker paused for memory: one line, not the wait's error
        raise
    finally:
        close_client(client)
    best = pd.concat(parts).drop(columns="sample_rank")
    rank = hash_rank(best["id"], f"sample:{seed}")
    return best.assign(sample_rank=rank)[rank < keep].sort_values("sample_rank")


def _suspects(cfg: dict) -> list:
    """The recording ids in output.path/suspect_recordings.txt (written by `etl build`)."""
    fs, root = storage.fs_and_path(cfg["output"]["path"])
    path = storage.join(root, SUSPECTS_FILE)
    if not fs.exists(path):
        raise ConfigError(f"--where uses @suspects but {path} does not exist: run etl build first")
    with fs.open(path, "rb") as f:
        return sorted(read_id_list(f.read().decode("utf-8")))


def _cut_replacing(cfg: dict, ranked: pd.DataFrame, n: int, clips_dir: str, filters: dict | None):
    """Cut the first ``n`` ranked rows; each that fails (or, with ``filters``, would be rejected on its
    measures) is replaced by the next in hash order, until n clips exist or no candidate is left.
    The result is the n smallest-ranked rows that cut (deterministic), topped up with failures only
    when too few cut. Returns (rows in rank order, {id: problem or None}, {replaced id: why})."""
    problems: dict[str, str | None] = {}
    pos, need = 0, n
    while need > 0 and pos < len(ranked):
        batch = ranked.iloc[pos : pos + need]
        pos += len(batch)
        problems.update(_cut_all(cfg, batch, clips_dir, filters))
        need = n - sum(p is None for p in problems.values())
    tried = ranked.iloc[:pos]
    ok = tried["id"].map(lambda i: problems[i] is None)
    picked = pd.concat([tried[ok], tried[~ok].iloc[: max(0, n - int(ok.sum()))]]).sort_values(
        "sample_rank"
    )
    replaced = {i: problems[i] for i in tried.loc[~ok, "id"] if i not in set(picked["id"])}
    return picked, problems, replaced


def _cut_all(
    cfg: dict, picked: pd.DataFrame, clips_dir: str, filters: dict | None = None
) -> dict[str, str | None]:
    """One task per recording on a thread pool: the decoding runs in ffmpeg child processes, so threads
    run as many ffmpegs at once as processes would, without start-up or pickling costs."""
    groups = [
        (url, g.sort_values(["start", "end"]).to_dict("records"))
        for url, g in picked.groupby("url")
    ]
    workers = max(1, min(cfg["cluster"]["n_workers"] or os.cpu_count() or 1, len(groups)))
    problems: dict[str, str | None] = {}
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [
            pool.submit(cut_recording, url, rows, clips_dir, cfg["audio"], filters)
            for url, rows in groups
        ]
        for f in tqdm(
            concurrent.futures.as_completed(futures),
            total=len(futures),
            desc="cut clips",
            unit="recording",
            file=sys.stderr,
            mininterval=1.0,
        ):
            problems.update(f.result())
    return problems


def _remove_stale_clips(fs, clips_dir: str, keep: set) -> None:
    """Clips of an earlier sample in the same folder (``--force``) would mislead a reviewer."""
    for path in fs.ls(clips_dir, detail=False):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if name.endswith(".wav") and name not in keep:
            fs.rm(path)


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
