"""`etl sample`: a seeded sample of rows cut into playable clips, with a spreadsheet for human review.

The rows come from the same table checks and split assignment as `etl build` (``planning``), the
clips from the same decoder and cutter, so a reviewer hears exactly what the dataset would hold.
Output folder: ``clips/{id}.wav``, ``sampled_ids.txt`` (one id per line, for ``splits.exclude_ids``)
and ``review.xlsx``, written last so its presence means the sample is complete.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys

import pandas as pd
from tqdm import tqdm

from ..config import Config, FiltersConfig
from ..curate.splits import hash_rank, id_list_line, read_id_list
from ..errors import UserError
from ..output import storage
from ..output.storage import CLIPS_DIR, IDS_FILE, REVIEW_FILE, SUSPECTS_FILE, clip_name
from ..review.sample import EXAMPLE_ROW, SPARE, cut_recording, select


def sample(
    cfg: Config, n: int, seed: int, out: str, where: str | None = None, force: bool = False
) -> dict:
    """Select, cut and write a review sample into ``out``. Returns a summary for the CLI."""
    from ..review.spreadsheet import write_review_xlsx

    fs, root = storage.fs_and_path(out)
    xlsx = storage.join(root, REVIEW_FILE)
    if fs.exists(xlsx) and not force:
        raise UserError(
            f"{xlsx} exists and may hold verdicts; import it first, then use another --out "
            f"or --force to replace that sample"
        )
    names = {"suspects": _suspects(cfg)} if where and "@suspects" in where else None
    ranked = _rank_on_cluster(cfg, n, seed, where, names)  # the build's own placement
    if ranked.empty:
        raise UserError("no rows to sample" + (f" match --where {where!r}" if where else ""))
    clips_dir = storage.join(root, CLIPS_DIR)
    fs.makedirs(clips_dir, exist_ok=True)
    picked, problems, replaced = _cut_replacing(
        cfg, ranked, n, clips_dir, cfg.filters if where is None else None
    )
    _remove_stale_clips(fs, clips_dir, {clip_name(i) for i in picked["id"]})
    storage.write_bytes(
        fs, storage.join(root, IDS_FILE), "".join(id_list_line(i) for i in picked["id"]).encode()
    )
    about = {
        "alignment": cfg.input.alignment,
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
    cfg: Config, n: int, seed: int, where: str | None, names: dict | None
) -> pd.DataFrame:
    """The candidates in sample order, as ``select(..., None, ...)`` on the whole table gives them, up to
    ``SPARE``·n + 100 (the replacements of clips that fail): each placed partition's smallest on the
    workers, then ranked once more on the client over those few rows."""
    from ..cluster.session import ClusterSession
    from ..ingest.resolved import check_speakers, resolve_input
    from ..output.previous import previous_dev_ids
    from ..planning.client import plan_table

    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    keep = SPARE * n + 100
    if where is not None:  # a mistake in the expression: one line at once, before the table is read
        select(pd.DataFrame([EXAMPLE_ROW]), 1, seed, where, names)
    resolved = resolve_input(cfg.input)
    check_speakers(cfg.splits, resolved)  # a config mistake is told before the cluster starts
    with ClusterSession(cfg.cluster) as s:
        planned = plan_table(s.client, cfg, previous_dev_ids(cfg), resolved)
        parts = s.client.gather(
            s.client.map(select, planned.parts, n=keep, seed=seed, where=where, names=names)
        )
    best = pd.concat(parts).drop(columns="sample_rank")
    rank = hash_rank(best["id"], f"sample:{seed}")
    return best.assign(sample_rank=rank)[rank < keep].sort_values("sample_rank")


def _suspects(cfg: Config) -> list:
    """The recording ids in output.path/suspect_recordings.txt (written by `etl build`)."""
    fs, root = storage.fs_and_path(cfg.output.path)
    path = storage.join(root, SUSPECTS_FILE)
    if not fs.exists(path):
        raise UserError(f"--where uses @suspects but {path} does not exist: run etl build first")
    with fs.open(path, "rb") as f:
        return sorted(read_id_list(f.read().decode("utf-8")))


def _cut_replacing(
    cfg: Config, ranked: pd.DataFrame, n: int, clips_dir: str, filters: FiltersConfig | None
):
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
    cfg: Config, picked: pd.DataFrame, clips_dir: str, filters: FiltersConfig | None = None
) -> dict[str, str | None]:
    """One task per recording on a thread pool: the decoding runs in ffmpeg child processes, so threads
    run as many ffmpegs at once as processes would, without start-up or pickling costs."""
    groups = [
        (str(url), g.sort_values(["start", "end"]).to_dict("records"))
        for url, g in picked.groupby("url")
    ]
    workers = max(1, min(cfg.cluster.n_workers or os.cpu_count() or 1, len(groups)))
    problems: dict[str, str | None] = {}
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [
            pool.submit(cut_recording, url, rows, clips_dir, cfg.audio, filters)
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
