"""The one place the Dask cluster is driven: planned rows -> shards -> output.

Data flows one way. The table is read, checked and placed by ``planning`` (dask.dataframe threads,
while the cluster starts in the background), each shard of recordings becomes one task on the
cluster that writes its own files, and ``finalize`` names them and writes the report.
"""

from __future__ import annotations

import concurrent.futures
import json
import sys
import threading
import time
import uuid

import pandas as pd

from ..audio.decoders import decoder_identity
from ..config import ConfigError
from ..curate.splits import RESERVE, SPLITS, promote_reserve
from ..curate.suspects import SUSPECTS_FILE, find_suspects, report_section, suspects_text
from ..curate.vocab import build_vocab, missing_from_counts
from ..ingest.table import check_speakers, has_speaker
from ..ingest.text import invisible_characters
from ..output import card, report_html, resume, storage
from ..records import PlotCounts, Report
from ..schema import REJECT_REASONS
from . import plan_store
from .cluster import close_client, open_client
from .cluster_plan import plan_table
from .lease import Lease
from .planning import previous_dev_ids
from .shards import ShardTask, files_of, pack_files, resplit_reserve, run_shard_filed
from .stall import raise_if_stalled


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


MIN_SHARDS = 16


def make_tasks(client, cfg: dict, planned, with_source_id: bool) -> list[ShardTask]:
    """Shards from the per-recording aggregates; the workers write their placed rows by shard
    (``plan_store``), so a task carries no rows."""
    recs = planned.counts.recordings
    shards = []
    if not recs.empty:
        # At most shard_hours per shard, and at least MIN_SHARDS shards when recordings allow, so every
        # worker stays busy to the end. Depends on the data only, never on the worker count.
        target = min(cfg["output"]["shard_hours"] * 3600, float(recs["seconds"].sum()) / MIN_SHARDS)
        shards = pack_files(recs, target)
    [shard_of] = client.scatter(
        [{r: i for i, shard in enumerate(shards) for r in shard}], broadcast=True, hash=False
    )
    out = cfg["output"]["path"]
    client.gather(
        client.map(
            plan_store.write_partition,
            planned.parts,
            [out] * len(planned.parts),
            range(len(planned.parts)),
            shard_of=shard_of,
            with_speaker=has_speaker(cfg),
            buckets=max(1, len(planned.parts)),
        )
    )
    url_of = dict(zip(recs["recording"], recs["url"]))
    sec_of = dict(zip(recs["recording"], recs["seconds"]))
    a = cfg["audio"]
    tasks = []
    for i, shard in enumerate(shards):
        named = [(r, url_of[r]) for r in shard]
        tasks.append(
            ShardTask(
                index=i,
                recordings=named,
                rows=None,  # read by the task from OUT/.parts/plan/shard-i/
                seconds=float(
                    sum(max(sec_of[r] for r in names) for names in files_of(named).values())
                ),  # a file once
                out=out,
                sampling_rate=a["sampling_rate"],
                channels=a["channels"],
                decoder=a["decoder"],
                ffmpeg=a["ffmpeg"],  # None: imageio-ffmpeg's bundled binary on every worker
                decoder_identity=decoder_identity(
                    a["decoder"], a["ffmpeg"]
                ),  # a task on another one stops
                audio_format=cfg["output"]["audio_format"],
                with_source_id=with_source_id,
                filters=cfg["filters"],
                with_speaker=has_speaker(cfg),
                with_words=planned.counts.has_words,
            )
        )
    return tasks


def run_tasks(client, tasks: list[ShardTask], on_tail=None) -> list[dict]:
    """Submit shards longest first; progress bar with ETA in hours of audio. ``on_tail`` is called
    once when fewer shards are left than workers, i.e. when a core falls idle."""
    from distributed import as_completed
    from tqdm import tqdm

    run = uuid.uuid4().hex[:8]
    futures = {}
    for t in tasks:
        f = client.submit(
            run_shard_filed,
            t,
            key=f"etl-shard-{t.index:05d}-{run}",
            priority=len(tasks) - t.index,
            retries=1,
        )
        futures[f] = t
    results = []
    total_h = sum(t.seconds for t in tasks) / 3600
    with tqdm(
        total=total_h,
        unit="h",
        desc="decode+cut",
        file=sys.stderr,
        mininterval=1.0,
        bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} h audio [{elapsed}<{remaining}]",
    ) as bar:
        for f in as_completed(futures):
            t = futures[f]
            try:
                results.append(f.result())
            except Exception as e:
                raise RuntimeError(
                    f"shard {t.index} (recordings {', '.join(r for r, _ in t.recordings[:5])}{' ...' if len(t.recordings) > 5 else ''}) "
                    f"failed: {type(e).__name__}: {e}"
                ) from e
            finally:
                f.release()
            advance(bar, t.seconds / 3600)
            if on_tail is not None and len(tasks) - len(results) < len(
                client.scheduler_info()["workers"]
            ):
                on_tail()
                on_tail = None
    return sorted(results, key=lambda r: r["shard"])


def advance(bar, step: float) -> None:
    """``bar.update(step)``, growing the total first when the work passes the estimate (no
    overshoot, no tqdm "clamping frac" warning)."""
    if bar.total is not None and bar.n + step > bar.total:
        bar.total = bar.n + step
    bar.update(step)


def check_decoders(client, cfg: dict) -> str:
    """The decoder identity of this build (the client's), after asking every worker for its own:
    one that differs (another PyAV, FFmpeg or ffmpeg binary) stops the build before it writes anything."""
    a = cfg["audio"]
    mine = decoder_identity(a["decoder"], a["ffmpeg"])
    theirs = client.run(decoder_identity, a["decoder"], a["ffmpeg"], on_error="return")
    differ = {
        w: v if isinstance(v, str) else f"{type(v).__name__}: {v}"
        for w, v in sorted(theirs.items())
        if v != mine
    }
    if differ:
        raise ConfigError(
            f"audio.decoder {a['decoder']} is not the same on every node: client {mine}; "
            + "; ".join(f"{w} {v}" for w, v in differ.items())
            + " (install the same versions everywhere, or set audio.ffmpeg to one binary)"
        )
    return mine


def _settle_reserve(
    client, cfg: dict, results: list[dict], recorded: dict | None = None
) -> tuple[list[dict], set]:
    """Fill dev back up to dev_size from the reserve rows that survived decoding; the rest -> train.
    ``recorded``: the re-split's completion record from an earlier run (then it is not redone)."""
    reserve_files = [r["parts"][RESERVE]["file"] for r in results if RESERVE in r["parts"]]
    if not reserve_files:
        return results, set()
    by_hours = cfg["splits"]["dev_hours"] is not None
    unit = "seconds" if by_hours else "rows"
    dev_has = sum(r["parts"]["dev"][unit] for r in results if "dev" in r["parts"])
    target = cfg["splits"]["dev_hours"] * 3600 if by_hours else cfg["splits"]["dev_size"]
    written = [i for r in results if RESERVE in r["parts"] for i in r["parts"][RESERVE]["ids"]]
    planned = client.submit(
        plan_store.reserve_rows, cfg["output"]["path"], RESERVE, pure=False
    ).result()
    rows = planned.set_index("id").loc[written]  # kept ids are unique
    rows = pd.DataFrame(
        {
            "id": written,
            "unit": rows["unit"].to_numpy(),
            "order": rows["order"].to_numpy(),
            "measure": rows["duration"].to_numpy() if by_hours else 1.0,
        }
    )
    promoted = promote_reserve(rows, target - dev_has)
    # on a worker too: audio never passes through the client
    extra = (
        recorded
        or client.submit(
            resplit_reserve,
            cfg["output"]["path"],
            reserve_files,
            promoted,
            len(results),
            key=f"etl-reserve-{uuid.uuid4().hex[:8]}",
            pure=False,
        ).result()
    )
    for r in results:
        r["parts"].pop(RESERVE, None)
    return results + [extra], promoted


def finalize(
    client,
    cfg: dict,
    planned,
    results: list[dict],
    promoted: set,
    with_source_id: bool,
    timings: dict,
    t0: float,
    fp: str,
) -> Report:
    """Name the shard files, write rejects.parquet, report.json and the dataset card.
    Restartable: the renames are journaled first, so a killed finalize is completed by a rerun."""
    fs, root = storage.fs_and_path(cfg["output"]["path"])
    journal = resume.read_journal(fs, root) or _start_journal(fs, root, results, promoted)
    splits, results, promoted = journal["splits"], journal["results"], set(journal["promoted"])
    _move_into_place(fs, root, journal["moves"])
    if cfg["output"]["arrow"]:  # zero-copy copy for load_from_disk, converted on the workers
        from ..output.arrow_export import export

        export(client, cfg["output"]["path"], {s: len(v["files"]) for s, v in splits.items()})
    late = _late_files(cfg, results)
    reasons, stats = _reduce_rows(client, cfg, late, promoted)
    vocab = build_vocab(stats["chars"].get("train", {}))
    if "train" in stats["chars"]:
        storage.write_bytes(
            fs,
            storage.join(root, "vocab.json"),
            json.dumps(vocab, ensure_ascii=False, indent=1).encode(),
        )
    report = _report(cfg, planned, splits, results, reasons, stats, vocab, fp)
    report.update(_suspect_recordings(client, cfg, late, results))
    report["timings"] = {**timings, "total_s": round(time.perf_counter() - t0, 3)}
    if (
        report["rows_in"] != report["rows_out"] + report["rows_rejected"]
    ):  # the contract; never expected to fire
        raise RuntimeError(
            f"row accounting broken: {report['rows_in']} in, {report['rows_out']} kept, "
            f"{report['rows_rejected']} rejected"
        )
    storage.write_bytes(fs, storage.join(root, "report.json"), card.report_json(report).encode())
    storage.write_bytes(
        fs,
        storage.join(root, "README.md"),
        card.dataset_card(
            report,
            cfg["audio"]["sampling_rate"],
            with_source_id,
            has_speaker(cfg),
            planned.counts.has_words,
        ).encode(),
    )
    return report


def _start_journal(fs, root: str, results: list[dict], promoted: set) -> dict:
    """The splits' files in shard order (deterministic names) and their final names, journaled before
    anything moves; then the previous dataset is removed (every shard of this one is done)."""
    parts_dir = storage.join(root, storage.PARTS_DIR)
    data_dir = storage.join(root, storage.DATA_DIR)
    splits: dict[str, dict] = {}
    for res in results:
        for split, p in sorted(res["parts"].items()):
            sp = splits.setdefault(
                split, {"files": [], "rows": 0, "seconds": 0.0, "bytes": 0, "digests": []}
            )
            sp["files"].append(p["file"])
            sp["rows"] += p["rows"]
            sp["seconds"] += p["seconds"]
            sp["bytes"] += p["bytes"]
            sp["digests"].append(p["digest"])
    order = [s for s in SPLITS if s in splits] + sorted(set(splits) - set(SPLITS))
    moves = [
        (
            storage.join(parts_dir, name),
            storage.join(data_dir, storage.final_name(split, i, len(f))),
        )
        for split in order
        for f in [splits[split]["files"]]
        for i, name in enumerate(f)
    ]
    journal = {
        "splits": {s: splits[s] for s in order},
        "moves": moves,
        "results": results,
        "promoted": sorted(promoted),
    }
    resume.write_journal(fs, root, journal)
    storage.clear_previous_output(fs, root, keep_parts=True)
    return journal


def _move_into_place(fs, root: str, moves: list) -> None:
    fs.makedirs(storage.join(root, storage.DATA_DIR), exist_ok=True)
    for src, dst in moves:
        if fs.exists(src):  # else moved by the run that was killed
            fs.mv(src, dst)


def _reduce_rows(client, cfg: dict, late: list[str], promoted: set) -> tuple[dict, dict]:
    """rejects.parquet (rows per reason) and the final splits' character counts and speakers:
    streamed on a worker from the placed rows, so no row reaches the client."""
    out, with_speaker = cfg["output"]["path"], has_speaker(cfg)
    late_f, promoted_f = client.scatter([late, promoted], broadcast=True, hash=False)
    reasons = client.submit(plan_store.merge_rejects_if_any, out, late_f, with_speaker, pure=False)
    chunks = _chunks(client, plan_store.shard_dirs(out))
    stats = client.map(
        plan_store.text_stats,
        [out] * len(chunks),
        chunks,
        late_files=late_f,
        promoted=promoted_f,
        reserve=RESERVE,
        with_speaker=with_speaker,
        pure=False,
    )
    return reasons.result(), plan_store.combine_text_stats(client.gather(stats))


def _chunks(client, items: list) -> list[list]:
    """``items`` dealt round-robin into 4 tasks per worker (none empty)."""
    n = max(1, len(client.scheduler_info()["workers"]) * 4)
    return [items[i::n] for i in range(n) if items[i::n]]


def plot_counts(client, cfg: dict) -> PlotCounts:
    """report.html's histograms, counted on the workers from the final files and rejects.parquet, one
    record batch at a time: the client adds up counts, never rows."""
    out = cfg["output"]["path"]
    fs, root = storage.fs_and_path(out)
    chunks = _chunks(client, report_html.plot_pieces(fs, root))
    longest = [
        m
        for m in client.gather(
            client.map(report_html.kept_max_duration, [out] * len(chunks), chunks, pure=False)
        )
        if m is not None
    ]
    ranges = report_html.plot_ranges(cfg["filters"], max(longest) if longest else None)
    parts = client.gather(
        client.map(report_html.count_pieces, [out] * len(chunks), chunks, ranges=ranges, pure=False)
    )
    return report_html.combine_plot_counts(parts, ranges)


def _report(
    cfg: dict,
    planned,
    splits: dict,
    results: list[dict],
    reasons: dict,
    stats: dict,
    vocab: dict,
    fp: str,
) -> Report:
    """report.json's content (see ``records.Report``) from the counts the stages returned."""
    order = list(splits)
    split_report = {
        s: {
            "rows": splits[s]["rows"],
            "hours": splits[s]["seconds"] / 3600,
            "files": len(splits[s]["files"]),
            "bytes": splits[s]["bytes"],
        }
        for s in order
    }
    if has_speaker(cfg):  # distinct speakers per split
        for s in order:
            split_report[s]["speakers"] = len(stats["speakers"].get(s, ()))
    return {
        "rows_in": int(planned.rows_in),
        "rows_out": sum(v["rows"] for v in split_report.values()),
        "rows_rejected": int(sum(reasons.values())),
        "splits": split_report,
        "rejects": {r: int(reasons.get(r, 0)) for r in REJECT_REASONS},
        "hours_out": sum(v["hours"] for v in split_report.values()),
        "hours_decoded": sum(r["decoded_seconds"] for r in results) / 3600,
        "shards": len(results),
        "ids_from_template": planned.ids_from_template,  # a table id missing: the id template's
        "invisible_characters": {
            s: _invisible(stats["chars"].get(s, {})) for s in order
        },  # expected {}
        "selection": planned.selection,  # what test_ids / exclude_ids / the previous dev matched
        "listing": planned.listing,  # how table and audio folder fit: unused files, unmatched, ambiguous
        "fingerprint": fp,  # of the config and table this dataset was built from (resume, no-op reruns)
        "content_hash": resume.content_hash(d for s in order for d in splits[s]["digests"]),
        "vocab": {
            "size": len(vocab),
            "missing_characters": {
                s: missing_from_counts(stats["chars"].get(s, {}), vocab)
                for s in order
                if s != "train"
            },
        },
        "audio": {
            "sampling_rate": cfg["audio"]["sampling_rate"],
            "channels": cfg["audio"]["channels"],
            "format": cfg["output"]["audio_format"],
            "decoder": cfg["audio"]["decoder"],
            "decoder_identity": decoder_identity(cfg["audio"]["decoder"], cfg["audio"]["ffmpeg"]),
        },
        "config": cfg,  # the resolved config, for reproducing the build
    }


def _suspect_recordings(client, cfg: dict, late: list[str], results: list[dict]) -> dict:
    """Per-recording statistics and suspects (etl/curate/suspects.py) for report.json; writes suspect_recordings.txt.
    The statistics are computed by the workers, one bucket of recordings each; the client ranks them."""
    fs, root = storage.fs_and_path(cfg["output"]["path"])
    measured = {k: v for r in results for k, v in r.get("recordings", {}).items()}
    buckets = plan_store.recording_buckets(cfg["output"]["path"])
    parts = client.gather(
        client.map(
            plan_store.recording_stats_of_bucket,
            [cfg["output"]["path"]] * len(buckets),
            buckets,
            late_files=client.scatter([late], broadcast=True, hash=False)[0],
            measured=client.scatter([measured], broadcast=True, hash=False)[0],
            pure=False,
        )
    )
    stats = find_suspects(
        pd.concat(parts).sort_index() if parts else plan_store.empty_recording_stats()
    )
    storage.write_bytes(fs, storage.join(root, SUSPECTS_FILE), suspects_text(stats).encode())
    return {
        "recordings": report_section(stats),
        "suspects": stats.loc[stats["suspect"] != "", "suspect"].to_dict(),
    }


def _late_files(cfg: dict, results: list[dict]) -> list[str]:
    """The files of the rejects found while decoding; a record of a run killed before its rejects
    were filed (a list) is filed now."""
    files = []
    for res in results:
        late = res.get("rejects") or []
        if isinstance(late, list):
            late = {
                "file": plan_store.write_late_rejects(
                    cfg["output"]["path"], res["shard"], late, has_speaker(cfg)
                )
            }
        if late.get("file"):
            files.append(late["file"])
    return files


def _invisible(counts: dict) -> dict:
    """``text.invisible_characters`` from a split's character counts."""
    from ..ingest.text import is_invisible

    return invisible_characters([c * n for c, n in counts.items() if is_invisible(c)])


def _finish(cfg: dict, report: dict, plots: PlotCounts) -> None:
    """report.html, then the end of the build's own state (runs while the cluster closes)."""
    report_html.write_report_html(
        cfg["output"]["path"], report, plots
    )  # matplotlib: imported only here
    fs, root = storage.fs_and_path(cfg["output"]["path"])
    parts_dir = storage.join(root, storage.PARTS_DIR)
    if fs.exists(
        parts_dir
    ):  # last: until here a rerun completes this build instead of starting over
        fs.rm(parts_dir, recursive=True)


def _warm_report_imports() -> None:
    threading.Thread(target=_import_report_modules, daemon=True).start()


def _import_report_modules() -> None:
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401

        from ..output import report_html  # noqa: F401
    except Exception:  # the real import in finalize reports any problem
        pass


def _open_and_announce(cfg_cluster: dict):
    client = open_client(cfg_cluster)
    _say(
        f"Dask dashboard: {client.dashboard_link}"
        if cfg_cluster.get("dashboard_address") or cfg_cluster.get("address")
        else f"Dask cluster: {client.scheduler.address} (no dashboard)"
    )
    return client


def _up_to_date(fs, root: str, fp: str) -> dict | None:
    """The report of a complete dataset built from the same fingerprint, if that is what is there."""
    if resume.read_manifest(fs, root) is not None:
        return None  # an unfinished build is in the way
    report = resume.read_json(fs, storage.join(root, "report.json"))
    if not report or report.get("fingerprint") != fp:
        return None
    present = {
        p.rsplit("/", 1)[-1] for p in fs.glob(storage.join(root, storage.DATA_DIR, "*.parquet"))
    }
    expected = {
        storage.final_name(s, i, v["files"])
        for s, v in report["splits"].items()
        for i in range(v["files"])
    }
    return report if expected <= present else None  # a file removed by hand: build again


def _unfinished(fs, root: str, cfg: dict, fp: str, force: bool) -> dict | None:
    """The manifest of an unfinished build to resume; refuses one of another fingerprint."""
    manifest = resume.read_manifest(fs, root)
    if manifest is not None and manifest.get("fingerprint") != fp and not force:
        raise ConfigError(
            f"output.path {cfg['output']['path']} holds an unfinished build of another config or "
            f"table; rerun with that config to resume it, or add --force to discard it"
        )
    return None if force or manifest is None or manifest.get("fingerprint") != fp else manifest


def _start_or_resume(cfg: dict, fp: str, manifest: dict | None) -> dict:
    """The manifest of this build: the unfinished one with the same fingerprint, or a new one (not yet
    written: ``_write_start`` does that once the cluster has been checked)."""
    return (
        manifest
        if manifest is not None
        else {"fingerprint": fp, "previous_dev": sorted(previous_dev_ids(cfg))}
    )


def _write_start(fs, root: str, manifest: dict, new: bool) -> None:
    fs.makedirs(root, exist_ok=True)
    if new:
        storage.clear_parts(fs, root)  # the previous dataset stays until this build has succeeded
        resume.write_manifest(fs, root, manifest)
    else:
        resume.remove_temporaries(fs, root)


def plan_build(client, cfg: dict, fp: str, unfinished: dict | None):
    """The table read, checked and placed on the cluster: (planned table, manifest)."""
    manifest = _start_or_resume(cfg, fp, unfinished)
    return plan_table(client, cfg, set(manifest["previous_dev"])), manifest


def prepare(cfg: dict, client) -> list[ShardTask]:
    """A new build set up on ``client`` (benchmarks, profiling): its tasks, for ``run_shard``."""
    fs, root = storage.fs_and_path(cfg["output"]["path"])
    planned, manifest = plan_build(client, cfg, resume.fingerprint(cfg), None)
    _write_start(fs, root, manifest, new=True)
    return make_tasks(client, cfg, planned, planned.has_id)


def build(cfg: dict, client=None, force: bool = False) -> dict:
    """Run a whole build, or resume an unfinished one with the same config and table. With ``client``
    given, use it; else open one from ``cfg['cluster']``. ``force``: discard unfinished work.
    One build per output folder: another one running there stops this one at once (``lease``)."""
    with Lease(cfg["output"]["path"], _say) as lease:
        return _build(cfg, client, force, lease)


def _cut_shards(client, cfg: dict, tasks: list[ShardTask], what: str) -> tuple[list[dict], set]:
    """Run the shards an earlier run left undone (none if it was killed while finalizing) and settle
    the reserve: every shard's result in shard order, and the promoted ids."""
    fs, root = storage.fs_and_path(cfg["output"]["path"])
    if resume.read_journal(fs, root) is not None:  # killed while finalizing: only that is left
        _say("resuming: every shard is done; finishing the dataset")
        return [], set()
    done = resume.finished(fs, root, len(tasks))
    todo = [t for t in tasks if t.index not in done]
    _say(
        f"{what} {sum(len(t.recordings) for t in tasks)} recordings in {len(tasks)} shards"
        + (f" ({len(tasks) - len(todo)} done by an earlier run)" if len(todo) < len(tasks) else "")
    )
    # matplotlib for report.html: imported on the core the last shards leave idle
    new = run_tasks(client, todo, on_tail=_warm_report_imports) if todo else []
    results = sorted(
        [done[t.index] for t in tasks if t.index in done] + new, key=lambda r: r["shard"]
    )
    return _settle_reserve(client, cfg, results, done.get(len(tasks)))


def _build(cfg: dict, client, force: bool, lease: Lease) -> dict:
    t0 = time.perf_counter()
    fs, root = storage.fs_and_path(cfg["output"]["path"])
    fp = resume.fingerprint(cfg)
    if not force:
        done = _up_to_date(fs, root, fp)
        if done is not None:
            _say(
                f"{cfg['output']['path']} is already built from this config and table "
                f"(fingerprint {fp[:12]}): nothing to do (--force rebuilds it)"
            )
            return {**done, "up_to_date": True}
    unfinished = _unfinished(fs, root, cfg, fp, force)  # before starting anything
    check_speakers(cfg)  # a config mistake is told before the cluster starts
    pool = concurrent.futures.ThreadPoolExecutor(1)
    finisher = concurrent.futures.ThreadPoolExecutor(1)
    client_future = None
    if client is None:  # start the cluster while the table is read and checked
        client_future = pool.submit(_open_and_announce, cfg["cluster"])
        import dask.dataframe  # noqa: F401  (planning builds on it: imported here while the cluster starts)
    try:
        if client_future is not None:
            client = client_future.result()
        planned, manifest = plan_build(client, cfg, fp, unfinished)
        with_source_id = planned.has_id
        check_decoders(client, cfg)  # before anything is written
        _write_start(fs, root, manifest, new=unfinished is None)
        tasks = make_tasks(client, cfg, planned, with_source_id)
        n_rows, n_cut = planned.rows_in, sum(n for s, (n, _) in planned.counts.splits.items())
        planned.parts = []  # the placed rows are on storage now: free the workers' memory
        t_table = time.perf_counter() - t0
        t1 = time.perf_counter()
        results, promoted = _cut_shards(client, cfg, tasks, f"{n_rows} rows, {n_cut} to cut from")
        t_cut = time.perf_counter() - t1
        lease.ensure_held()  # never replace the dataset under a build that took the folder over
        report = finalize(
            client,
            cfg,
            planned,
            results,
            promoted,
            with_source_id,
            {"table_s": round(t_table, 3), "decode_cut_write_s": round(t_cut, 3)},
            t0,
            fp,
        )
        finishing = finisher.submit(_finish, cfg, report, plot_counts(client, cfg))
    except Exception:
        if client is not None:
            raise_if_stalled(
                client
            )  # every worker paused for memory: one line, not the wait's error
        raise
    finally:
        if client_future is not None:
            try:
                close_client(client_future.result())
            except Exception:
                pass
        pool.shutdown(wait=False)
    finishing.result()  # its errors are the build's
    finisher.shutdown()
    return report
