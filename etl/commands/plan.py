"""`etl plan`: a dry run. Reads and checks the table, resolves recordings and assigns splits exactly as
`etl build` does, decodes nothing, and estimates rows, hours and gigabytes per split."""

from __future__ import annotations

import json

import pandas as pd

from ..audio.media import estimated_clip_bytes
from ..config import Config
from ..curate import duplicates
from ..curate.splits import RESERVE, SPLITS
from ..ingest.recordings import format_listing_summary, identities_of
from ..ingest.resolved import check_speakers, resolve_input
from ..output.previous import audio_settings, previous_dev_ids, previous_files, previous_report
from ..planning.client import plan_table
from ..schema import REJECT_REASONS, reasons_where

DECODE_TIME_REASONS = reasons_where(before_decoding=False)


def plan(cfg: Config, client=None) -> dict:
    """The dry run, on the cluster (``client``, else one opened from ``cfg.cluster``): the client
    receives counts and per-recording aggregates only."""
    from ..cluster.session import ClusterSession

    resolved = resolve_input(cfg.input)
    check_speakers(cfg.splits, resolved)  # a config mistake is told before the cluster starts
    with ClusterSession(cfg.cluster, client=client) as s:
        planned = plan_table(s.client, cfg, previous_dev_ids(cfg), resolved)
    p = plan_summary(cfg, planned)
    report = previous_report(cfg)
    if report is not None:
        p["reuse"] = reuse_summary(cfg, planned, report, p)
    return p


def reuse_summary(cfg: Config, planned, report: dict, p: dict) -> dict:
    """What a build into the folder that holds a dataset (``report``: its report.json) would take from
    it: the files unchanged since (their clips are copied; only spans it lacks are decoded), the
    audio at most to decode (the new or changed files), and the extra disk while the new dataset is
    written beside the old one (removed once the new one is finalized)."""
    recs = planned.counts.recordings
    identities = planned.identities or identities_of(recs["url"])
    prev = previous_files(cfg, report)
    by_file = recs.groupby("url")["seconds"].max()
    same = [u for u in by_file.index if u in prev and prev[u].identity == identities.get(u)]
    fmt = "gb_flac" if cfg.output.audio_format == "flac" else "gb_wav"
    return {
        "settings_match": report.get("audio") == audio_settings(cfg),
        "files_unchanged": len(same),
        "hours_of_unchanged_files": float(by_file[same].sum() / 3600),
        "files_to_decode": int(len(by_file) - len(same)),
        "hours_to_decode_at_most": float(by_file.drop(same).sum() / 3600),
        "extra_gb_while_writing": float(sum(v[fmt] for v in p["splits"].values())),
        "previous_gb": float(sum(v["bytes"] for v in report.get("splits", {}).values()) / 1e9),
    }


def _reuse_lines(r: dict) -> list[str]:
    if not r["settings_match"]:
        head = "the dataset there has other audio settings (rate, channels, format, decoder): nothing reused"
    else:
        head = (
            f"the dataset there: {r['files_unchanged']:,} files unchanged "
            f"({r['hours_of_unchanged_files']:.2f} h; their clips are copied, only spans it lacks decoded)"
        )
    return [
        head,
        f"to decode: {r['files_to_decode']:,} new or changed files "
        f"(at most {r['hours_to_decode_at_most']:.2f} h)",
        f"extra disk while the new dataset is written: ~{r['extra_gb_while_writing']:.3f} GB "
        f"(the old one, {r['previous_gb']:.3f} GB, is removed when the new one is finalized)",
    ]


def plan_summary(cfg: Config, planned) -> dict:
    c = planned.counts
    sr, ch = cfg.audio.sampling_rate, cfg.audio.channels
    merged: dict = {}
    for name, (n, sec) in c.splits.items():  # before decoding, reserve rows count as train
        key = "train" if name == RESERVE else name
        a = merged.get(key, (0, 0.0, set()))
        merged[key] = (a[0] + n, a[1] + sec, a[2] | c.speakers.get(name, set()))
    splits = {}
    for name in [s for s in SPLITS if s in merged]:
        n, sec, speakers = merged[name]
        gb = {f: float(estimated_clip_bytes(sec, n, sr, ch, f)) / 1e9 for f in ("flac", "wav")}
        splits[name] = {
            "rows": int(n),
            "hours": float(sec / 3600),
            "gb_flac": gb["flac"],
            "gb_wav": gb["wav"],
        }
        if planned.shape.speaker:
            splits[name]["speakers"] = len(speakers)
    rejects = {r: int(c.reasons.get(r, 0)) for r in REJECT_REASONS if r not in DECODE_TIME_REASONS}
    return {
        "rows_in": int(planned.rows_in),
        "splits": splits,
        "rejects": rejects,
        "recordings": int(len(c.recordings)),
        "hours_to_decode": float(c.recordings["seconds"].sum() / 3600),
        "not_knowable_before_decoding": list(DECODE_TIME_REASONS),
        "selection": planned.selection,
        "listing": planned.listing,
        "ids_from_template": planned.ids_from_template,
        "alignment_encodings": planned.encodings,
        "duplicate_audio": duplicates.said(planned.audio_pairs),
    }


def format_plan(p: dict) -> str:
    rows = [["split", "rows", "hours", "GB flac", "GB wav"]]
    for s, v in p["splits"].items():
        rows.append(
            [s, f"{v['rows']:,}", f"{v['hours']:.2f}", f"{v['gb_flac']:.3f}", f"{v['gb_wav']:.3f}"]
        )
    tot = pd.DataFrame(p["splits"]).T if p["splits"] else None
    if tot is not None:
        rows.append(
            [
                "total",
                f"{int(tot['rows'].sum()):,}",
                f"{tot['hours'].sum():.2f}",
                f"{tot['gb_flac'].sum():.3f}",
                f"{tot['gb_wav'].sum():.3f}",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [
        "",
        f"rows in: {p['rows_in']:,}   recordings to decode: {p['recordings']:,} "
        f"({p['hours_to_decode']:.2f} h)",
        "rejected before decoding:",
    ]
    lines += [f"  {r:<22}{n:>10,}" for r, n in p["rejects"].items()]
    lines.append(f"  (found only while decoding: {', '.join(p['not_knowable_before_decoding'])})")
    if p.get("ids_from_template"):
        lines.append(
            f"rows without an id (null or empty): {p['ids_from_template']:,}, given ids from input.id_template"
        )
    sel = p.get("selection", {})
    for path, v in sel.get("exclude_ids", {}).items():
        lines.append(
            f"exclude_ids {path}: {v['listed']:,} listed, {v['rows_matched']:,} rows matched"
        )
    if "test_ids" in sel:
        t = sel["test_ids"]
        lines.append(
            f"test_ids: {t['listed']:,} listed, {t['rows_matched']:,} rows matched, {t['rows_in_test']:,} in test"
        )
    if "previous_dev" in sel:
        lines.append(
            f"previous dev: {sel['previous_dev']['still_in_dev']:,} of {sel['previous_dev']['ids']:,} "
            "ids stay in dev"
        )
    if any("speakers" in v for v in p["splits"].values()):
        lines.append(
            "speakers: " + ", ".join(f"{s} {v['speakers']:,}" for s, v in p["splits"].items())
        )
    if "by_speaker" in sel:
        lines.append(
            f"rows without a speaker, placed by recording: {sel['by_speaker']['rows_without_speaker']:,}"
        )
    if set(p.get("alignment_encodings") or {}) - {"utf-8"}:
        lines.append(format_encodings(p["alignment_encodings"]))
    if p.get("listing"):
        lines += format_listing_summary(p["listing"])
    if p.get("reuse"):
        lines += _reuse_lines(p["reuse"])
    lines += format_shared_audio(p["duplicate_audio"])
    return "\n".join(lines)


def format_shared_audio(d: dict) -> list[str]:
    """The pairs of recordings sharing audio, or where they are found."""
    if not d["fingerprints"]:
        return [
            "recordings sharing audio: no fingerprints of an earlier build here; copies are "
            "found while decoding (docs/duplicates.md)"
        ]
    lines = [
        f"recordings sharing audio (fingerprints of an earlier build): {len(d['pairs'])} pairs"
    ]
    lines += [
        f"  {x['recording_a']} ~ {x['recording_b']}: offset {x['offset']:+.2f} s, "
        f"{x['shared_hours']:.3f} h shared ({x['start_a']:.0f}-{x['end_a']:.0f} s of the first), "
        f"{x['hits']} hits"
        for x in d["pairs"]
    ]
    return lines


def format_encodings(encodings: dict) -> str:
    """One line: the alignment files read per encoding."""
    return "alignment files by encoding: " + ", ".join(f"{e} {n:,}" for e, n in encodings.items())


def plan_json(p: dict) -> str:
    return json.dumps(p, indent=2)
