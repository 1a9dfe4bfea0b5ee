"""The end of a build: the shard files named into place (journaled, so a killed finalize is completed
by a rerun), rejects.parquet, vocab.json, report.json, the dataset card, the suspect recordings and
report.html's counts, all reduced on the workers: no row reaches the client.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import Config
from ..curate import duplicates
from ..curate.splits import RESERVE, SPLITS
from ..curate.suspects import find_suspects, report_section, suspects_text
from ..curate.vocab import build_vocab, missing_from_counts
from ..ingest.recordings import identities_digest
from ..ingest.text import invisible_characters
from ..output import card, fingerprints, report_html, resume, storage
from ..output.previous import audio_settings
from ..planning import store as plan_store
from ..records import PlotCounts, Report, ShardResult, SplitReport
from ..schema import DATASET_RECORDINGS_SCHEMA, REJECT_REASONS, DatasetShape


def finalize(
    client,
    cfg: Config,
    planned,
    results: list[ShardResult],
    promoted: set,
    timings: dict,
    t0: float,
    fp: str,
    earlier: tuple[float, float] | None = None,
) -> Report:
    """Name the shard files, write rejects.parquet, report.json and the dataset card.
    Restartable: the renames are journaled first, so a killed finalize is completed by a rerun.
    ``earlier``: (hours decoded, hours reused) of this build's first pass, when this is its second
    (copies found while decoding placed again: its clips come from the first)."""
    fs, root = storage.fs_and_path(cfg.output.path)
    journal = resume.read_journal(fs, root) or _start_journal(fs, root, results, promoted)
    splits, promoted = journal["splits"], set(journal["promoted"])
    results = _journaled_results(cfg, journal["results"], planned.shape)
    _replace_previous(fs, root, journal)
    _move_into_place(fs, root, journal["moves"])
    write_recordings(fs, root, results, journal["moves"])
    if cfg.output.arrow:  # zero-copy copy for load_from_disk, converted on the workers
        from ..output.arrow_export import export

        export(client, cfg.output.path, {s: len(v["files"]) for s, v in splits.items()})
    late = [r.rejects.file for r in results if r.rejects.file]
    merged = client.submit(fingerprints.merge_parts, cfg.output.path, pure=False)  # on a worker
    reasons, stats = _reduce_rows(client, cfg, late, promoted, planned.shape)
    vocab = build_vocab(stats["chars"].get("train", {}))
    if "train" in stats["chars"]:
        storage.write_bytes(
            fs,
            storage.join(root, storage.VOCAB_FILE),
            json.dumps(vocab, ensure_ascii=False, indent=1).encode(),
        )
    suspects = _suspect_recordings(client, cfg, late, results)
    merged.result()  # OUT/fingerprints.parquet
    timings = {**timings, "total_s": round(time.perf_counter() - t0, 3)}
    report = _report(cfg, planned, splits, results, (reasons, stats, vocab), fp, suspects, timings)
    if earlier is not None:
        report["hours_decoded"] += earlier[0]
        report["hours_reused"] = earlier[1]
    if (
        report["rows_in"] != report["rows_out"] + report["rows_rejected"]
    ):  # the contract; never expected to fire
        raise RuntimeError(
            f"row accounting broken: {report['rows_in']} in, {report['rows_out']} kept, "
            f"{report['rows_rejected']} rejected"
        )
    storage.write_bytes(
        fs, storage.join(root, storage.REPORT_JSON), card.report_json(report).encode()
    )
    storage.write_bytes(
        fs,
        storage.join(root, storage.README_FILE),
        card.dataset_card(report, cfg.audio.sampling_rate, planned.shape).encode(),
    )
    return report


def _start_journal(fs, root: str, results: list[ShardResult], promoted: set) -> dict:
    """The splits' files in shard order (deterministic names) and their final names, journaled before
    anything moves, with the files of the previous dataset whose content a new file has (``keeps``:
    that file is kept, renamed, instead of the new copy)."""
    parts_dir = storage.join(root, storage.PARTS_DIR)
    data_dir = storage.join(root, storage.DATA_DIR)
    splits: dict[str, dict] = {}
    for res in results:
        for split, part in sorted(res.parts.items()):
            p = part.to_json()
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
        "keeps": _identical_files(fs, root, splits),
        "results": [r.to_json() for r in results],
        "promoted": sorted(promoted),
    }
    resume.write_journal(fs, root, journal)
    return journal


def _identical_files(fs, root: str, splits: dict) -> list:
    """(previous data/ file, new part) pairs of the same split and content digest (report.json's
    ``digests`` of the dataset there): the previous file replaces the new copy, no byte rewritten."""
    old = resume.read_json(fs, storage.join(root, storage.REPORT_JSON)) or {}
    keeps = []
    for split, sp in splits.items():
        before = (old.get("splits") or {}).get(split) or {}
        by_digest = {
            d: storage.final_name(split, i, before.get("files", 0))
            for i, d in enumerate(before.get("digests") or [])
        }
        for name, digest in zip(sp["files"], sp["digests"]):
            if digest in by_digest:
                keeps.append(
                    (
                        storage.join(root, storage.DATA_DIR, by_digest.pop(digest)),
                        storage.join(root, storage.PARTS_DIR, name),
                    )
                )
    return keeps


def _replace_previous(fs, root: str, journal: dict) -> None:
    """Before the first rename: the previous files the journal keeps take their new copies' place
    under .parts/; then the previous dataset's other files are removed. Redone by a rerun of a
    killed finalize: a file already renamed into data/ is never removed."""
    moves = journal["moves"]
    if all(fs.exists(src) for src, _ in moves):  # no rename done yet
        for old, part in journal.get("keeps", []):
            if fs.exists(old):
                fs.mv(old, part)
    placed = {dst for src, dst in moves if not fs.exists(src)}
    data_dir = storage.join(root, storage.DATA_DIR)
    if fs.exists(data_dir):
        for p in fs.ls(data_dir, detail=False):
            if storage.join(data_dir, p.rsplit("/", 1)[-1]) not in placed:
                fs.rm(p, recursive=True)
    storage.clear_previous_output(fs, root, keep_parts=True, keep_data=True)


def _move_into_place(fs, root: str, moves: list) -> None:
    fs.makedirs(storage.join(root, storage.DATA_DIR), exist_ok=True)
    for src, dst in moves:
        if fs.exists(src):  # else moved by the run that was killed
            fs.mv(src, dst)


def _reduce_rows(
    client, cfg: Config, late: list[str], promoted: set, shape: DatasetShape
) -> tuple[dict, dict]:
    """rejects.parquet (rows per reason) and the final splits' character counts and speakers:
    streamed on a worker from the placed rows, so no row reaches the client."""
    out = cfg.output.path
    late_f, promoted_f = client.scatter([late, promoted], broadcast=True, hash=False)
    reasons = plan_store.submit_merge_rejects(client, out, late_f, shape)
    chunks = _chunks(client, plan_store.shard_dirs(out))
    stats = client.map(
        plan_store.text_stats,
        [out] * len(chunks),
        chunks,
        late_files=late_f,
        promoted=promoted_f,
        reserve=RESERVE,
        shape=shape,
        pure=False,
    )
    return reasons.result(), plan_store.combine_text_stats(client.gather(stats))


def _chunks(client, items: list) -> list[list]:
    """``items`` dealt round-robin into 4 tasks per worker (none empty)."""
    n = max(1, len(client.scheduler_info()["workers"]) * 4)
    return [items[i::n] for i in range(n) if items[i::n]]


def plot_counts(client, cfg: Config) -> PlotCounts:
    """report.html's histograms, counted on the workers from the final files and rejects.parquet, one
    record batch at a time: the client adds up counts, never rows."""
    out = cfg.output.path
    fs, root = storage.fs_and_path(out)
    chunks = _chunks(client, report_html.plot_pieces(fs, root))
    longest = (
        []  # no kept row is longer than filters.max_duration, which sets duration's range then
        if cfg.filters.max_duration is not None
        else [
            m
            for m in client.gather(
                client.map(report_html.kept_max_duration, [out] * len(chunks), chunks, pure=False)
            )
            if m is not None
        ]
    )
    ranges = report_html.plot_ranges(asdict(cfg.filters), max(longest) if longest else None)
    parts = client.gather(
        client.map(report_html.count_pieces, [out] * len(chunks), chunks, ranges=ranges, pure=False)
    )
    return report_html.combine_plot_counts(parts, ranges)


def _report(
    cfg: Config,
    planned,
    splits: dict,
    results: list[ShardResult],
    counted: tuple[dict, dict, dict],
    fp: str,
    suspects: dict,
    timings: dict,
) -> Report:
    """report.json's content (see ``records.Report``) from the counts the stages returned
    (``counted``: rows per reason, the final splits' characters and speakers, the vocabulary)."""
    reasons, stats, vocab = counted
    order = list(splits)
    split_report: dict[str, SplitReport] = {
        s: {
            "rows": splits[s]["rows"],
            "hours": splits[s]["seconds"] / 3600,
            "files": len(splits[s]["files"]),
            "bytes": splits[s]["bytes"],
            "digests": list(splits[s]["digests"]),
        }
        for s in order
    }
    if planned.shape.speaker:  # distinct speakers per split
        for s in order:
            split_report[s]["speakers"] = len(stats["speakers"].get(s, ()))
    return {
        "rows_in": int(planned.rows_in),
        "rows_out": sum(v["rows"] for v in split_report.values()),
        "rows_rejected": int(sum(reasons.values())),
        "splits": split_report,
        "rejects": {r: int(reasons.get(r, 0)) for r in REJECT_REASONS},
        "hours_out": sum(v["hours"] for v in split_report.values()),
        "hours_decoded": sum(r.decoded_seconds for r in results) / 3600,
        "hours_reused": sum(r.reused_seconds for r in results) / 3600,
        "shards": len(results),
        "ids_from_template": planned.ids_from_template,  # a table id missing: the id template's
        "invisible_characters": {
            s: _invisible(stats["chars"].get(s, {})) for s in order
        },  # expected {}
        "selection": planned.selection,  # what test_ids / exclude_ids / the previous dev matched
        "listing": planned.listing,  # how table and audio folder fit: unused files, unmatched, ambiguous
        "alignment_encodings": planned.encodings,  # subtitle files read per encoding: {"utf-8": n, ...}
        "duplicate_audio": duplicates.said(  # recordings sharing audio
            planned.audio_pairs, fingerprints.exists(cfg.output.path)
        ),
        "fingerprint": fp,  # of the config and table this dataset was built from (resume, no-op reruns)
        "audio_identity": identities_digest(
            planned.identities
            or {
                i.url: i.identity
                for r in results
                for i in (r.identities or {}).values()
                if i.identity is not None
            }
        ),  # of the audio files it was cut from (a replaced file: not up to date)
        "content_hash": resume.content_hash(d for s in order for d in splits[s]["digests"]),
        "vocab": {
            "size": len(vocab),
            "missing_characters": {
                s: missing_from_counts(stats["chars"].get(s, {}), vocab)
                for s in order
                if s != "train"
            },
        },
        "audio": audio_settings(cfg),
        "config": cfg.to_dict(),  # the resolved config, for reproducing the build
        "recordings": suspects["recordings"],
        "suspects": suspects["suspects"],
        "timings": timings,
    }


def write_recordings(fs, root: str, results: list[ShardResult], moves: list) -> None:
    """recordings.parquet: each recording's file, its identity and the data/ files holding its clips
    (its shard's files, and the reserve re-split's, which may hold any recording's)."""
    final = {src.rsplit("/", 1)[-1]: dst.rsplit("/", 1)[-1] for src, dst in moves}
    shared = [final[p.file] for r in results if r.identities is None for p in r.parts.values()]
    rows = [
        {
            "recording": name,
            "url": ident.url,
            "identity": ident.identity,
            "length": ident.length,
            "files": sorted({final[p.file] for p in r.parts.values()} | set(shared)),
        }
        for r in results
        for name, ident in sorted((r.identities or {}).items())
    ]
    table = pa.Table.from_pylist(rows, schema=DATASET_RECORDINGS_SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    storage.write_bytes(
        fs, storage.join(root, storage.RECORDINGS_FILE), sink.getvalue().to_pybytes()
    )


def _suspect_recordings(client, cfg: Config, late: list[str], results: list[ShardResult]) -> dict:
    """Per-recording statistics and suspects (etl/curate/suspects.py) for report.json; writes suspect_recordings.txt.
    The statistics are computed by the workers, one bucket of recordings each; the client ranks them."""
    fs, root = storage.fs_and_path(cfg.output.path)
    measured = {k: v for r in results for k, v in (r.recordings or {}).items()}
    buckets = plan_store.recording_buckets(cfg.output.path)
    parts = client.gather(
        client.map(
            plan_store.recording_stats_of_bucket,
            [cfg.output.path] * len(buckets),
            buckets,
            late_files=client.scatter([late], broadcast=True, hash=False)[0],
            measured=client.scatter([measured], broadcast=True, hash=False)[0],
            pure=False,
        )
    )
    stats = find_suspects(
        pd.concat(parts).sort_index() if parts else plan_store.empty_recording_stats()
    )
    storage.write_bytes(
        fs, storage.join(root, storage.SUSPECTS_FILE), suspects_text(stats).encode()
    )
    return {
        "recordings": report_section(stats),
        "suspects": stats.loc[stats["suspect"] != "", "suspect"].to_dict(),
    }


def _journaled_results(cfg: Config, results: list[dict], shape: DatasetShape) -> list[ShardResult]:
    """The shards' results as the journal holds them; one whose rejects an earlier version journaled
    unfiled (a list of rows) has them filed now."""
    out = []
    for d in results:
        late = d.get("rejects") or []
        if isinstance(late, list):
            path = plan_store.write_late_rejects(cfg.output.path, d["shard"], late, shape)
            d = {**d, "rejects": {"file": path, "count": len(late)}}
        out.append(ShardResult.from_json(d))
    return out


def _invisible(counts: dict) -> dict:
    """``text.invisible_characters`` from a split's character counts."""
    from ..ingest.text import is_invisible

    return invisible_characters([c * n for c, n in counts.items() if is_invisible(c)])


def finish(cfg: Config, report: dict, plots: PlotCounts) -> None:
    """report.html, then the end of the build's own state (runs while the cluster closes)."""
    report_html.write_report_html(cfg.output.path, report, plots)
    fs, root = storage.fs_and_path(cfg.output.path)
    parts_dir = storage.join(root, storage.PARTS_DIR)
    # last: until here a rerun completes this build instead of starting over
    storage.remove_tree(fs, parts_dir)
