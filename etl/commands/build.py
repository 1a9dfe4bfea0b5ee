"""`etl build`: plan on the cluster, cut the shards, finalize. Orchestration only.

Data flows one way. The table is read, checked and placed by ``planning`` on the workers, each
shard of recordings becomes one task on the cluster that writes its own files, and ``finalize``
names them and writes the report.
"""

from __future__ import annotations

import concurrent.futures
import sys
import time
import uuid
from dataclasses import replace
from typing import NamedTuple

import pandas as pd

from ..audio.decoders import decoder_identity
from ..audio.media import split_channel
from ..cluster.lease import Lease
from ..cluster.session import ClusterSession
from ..config import ClusterConfig, Config
from ..curate.splits import RESERVE, promote_reserve
from ..errors import UserError
from ..ingest.recordings import identities_of
from ..ingest.resolved import ResolvedInput, check_speakers, resolve_input
from ..output import resume, storage
from ..output.previous import (
    current_audio_identity,
    previous_dev_ids,
    previous_files,
    previous_report,
)
from ..output.space import check_space
from ..planning import store as plan_store
from ..planning.client import known_pairs, plan_table
from ..records import PlotCounts, Report, ShardResult
from ..shards.pack import files_of, pack_files
from ..shards.task import ShardTask, resplit_reserve, run_shard_filed
from .finalize import finalize, finish, plot_counts


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


MIN_SHARDS = 16


def make_tasks(client, cfg: Config, planned, reuse: bool = True) -> list[ShardTask]:
    """Shards from the per-recording aggregates; the workers write their placed rows by shard
    (``plan_store``), so a task carries no rows. ``reuse``: each task may take the clips the dataset
    already in output.path holds of its unchanged files (``--force``: it decodes everything)."""
    recs = planned.counts.recordings
    shards = []
    if not recs.empty:
        # At most shard_hours per shard, and at least MIN_SHARDS shards when recordings allow, so every
        # worker stays busy to the end. Depends on the data only, never on the worker count.
        target = min(cfg.output.shard_hours * 3600, float(recs["seconds"].sum()) / MIN_SHARDS)
        shards = pack_files(recs, target)
    [shard_of] = client.scatter(
        [{r: i for i, shard in enumerate(shards) for r in shard}], broadcast=True, hash=False
    )
    out = cfg.output.path
    client.gather(
        client.map(
            plan_store.write_partition,
            planned.parts,
            [out] * len(planned.parts),
            range(len(planned.parts)),
            shard_of=shard_of,
            shape=planned.shape,
            buckets=max(1, len(planned.parts)),
        )
    )
    url_of = dict(zip(recs["recording"], recs["url"]))
    sec_of = dict(zip(recs["recording"], recs["seconds"]))
    # a file's identity is its channels' too (``sw02001.sph#channel=2``)
    identities = planned.identities or identities_of({split_channel(u)[0] for u in recs["url"]})
    # the clips the dataset there lends (its files, their identities then)
    prev = previous_files(cfg, previous_report(cfg)) if reuse else {}
    a = cfg.audio
    tasks = []
    for i, shard in enumerate(shards):
        named = [(r, url_of[r]) for r in shard]
        urls = {u for _, u in named}
        tasks.append(
            ShardTask(
                index=i,
                recordings=named,
                rows=None,  # read by the task from OUT/.parts/plan/shard-i/
                seconds=float(
                    sum(max(sec_of[r] for r in names) for names in files_of(named).values())
                ),  # a file once
                out=out,
                sampling_rate=a.sampling_rate,
                channels=a.channels,
                decoder=a.decoder,
                ffmpeg=a.ffmpeg,  # None: imageio-ffmpeg's bundled binary on every worker
                decoder_identity=decoder_identity(
                    a.decoder, a.ffmpeg
                ),  # a task on another one stops
                audio_format=cfg.output.audio_format,
                shape=planned.shape,
                filters=cfg.filters,
                identities={
                    u: identities[f] for u in urls if (f := split_channel(u)[0]) in identities
                },
                previous={u: prev[u] for u in urls if u in prev},
            )
        )
    return tasks


def run_tasks(client, tasks: list[ShardTask]) -> list[ShardResult]:
    """Submit shards longest first; progress bar with ETA in hours of audio."""
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
    return sorted(results, key=lambda r: r.shard)


def advance(bar, step: float) -> None:
    """``bar.update(step)``, growing the total first when the work passes the estimate (no
    overshoot, no tqdm "clamping frac" warning)."""
    if bar.total is not None and bar.n + step > bar.total:
        bar.total = bar.n + step
    bar.update(step)


def check_decoders(client, cfg: Config) -> str:
    """The decoder identity of this build (the client's), after asking every worker for its own:
    one that differs (another PyAV, FFmpeg or ffmpeg binary) stops the build before it writes anything."""
    a = cfg.audio
    mine = decoder_identity(a.decoder, a.ffmpeg)
    theirs = client.run(decoder_identity, a.decoder, a.ffmpeg, on_error="return")
    differ = {
        w: v if isinstance(v, str) else f"{type(v).__name__}: {v}"
        for w, v in sorted(theirs.items())
        if v != mine
    }
    if differ:
        raise UserError(
            f"audio.decoder {a.decoder} is not the same on every node: client {mine}; "
            + "; ".join(f"{w} {v}" for w, v in differ.items())
            + " (install the same versions everywhere, or set audio.ffmpeg to one binary)"
        )
    return mine


def _settle_reserve(
    client, cfg: Config, results: list[ShardResult], recorded: ShardResult | None = None
) -> tuple[list[ShardResult], set]:
    """Fill dev back up to dev_size from the reserve rows that survived decoding; the rest -> train.
    ``recorded``: the re-split's completion record from an earlier run (then it is not redone)."""
    reserve_files = [r.parts[RESERVE].file for r in results if RESERVE in r.parts]
    if not reserve_files:
        return results, set()
    dev_hours = cfg.splits.dev_hours
    by_hours = dev_hours is not None
    unit = "seconds" if by_hours else "rows"
    dev_has = sum(getattr(r.parts["dev"], unit) for r in results if "dev" in r.parts)
    target = dev_hours * 3600 if dev_hours is not None else cfg.splits.dev_size
    written = [i for r in results if RESERVE in r.parts for i in r.parts[RESERVE].ids or []]
    planned = client.submit(plan_store.reserve_rows, cfg.output.path, RESERVE, pure=False).result()
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
            cfg.output.path,
            reserve_files,
            promoted,
            len(results),
            key=f"etl-reserve-{uuid.uuid4().hex[:8]}",
            pure=False,
        ).result()
    )
    without = [
        replace(r, parts={s: p for s, p in r.parts.items() if s != RESERVE}) for r in results
    ]
    return without + [extra], promoted


def _announce(cfg_cluster: ClusterConfig):
    def say(client) -> None:
        _say(
            f"Dask dashboard: {client.dashboard_link}"
            if cfg_cluster.dashboard_address or cfg_cluster.address
            else f"Dask cluster: {client.scheduler.address} (no dashboard)"
        )

    return say


def _up_to_date(fs, root: str, cfg: Config, fp: str) -> Report | None:
    """The report of a complete dataset built from the same fingerprint, if that is what is there."""
    if resume.read_manifest(fs, root) is not None:
        return None  # an unfinished build is in the way
    report = resume.read_json(fs, storage.join(root, storage.REPORT_JSON))
    if not report or report.get("fingerprint") != fp:
        return None
    if report.get("audio_identity") != current_audio_identity(cfg):
        return None  # an audio file replaced, added or removed: build again (reusing the rest)
    present = {
        p.rsplit("/", 1)[-1]
        for p in fs.glob(storage.join(root, storage.DATA_DIR, storage.DATA_GLOB))
    }
    expected = {
        storage.final_name(s, i, v["files"])
        for s, v in report["splits"].items()
        for i in range(v["files"])
    }
    return report if expected <= present else None  # a file removed by hand: build again


def _unfinished(fs, root: str, cfg: Config, fp: str, force: bool) -> dict | None:
    """The manifest of an unfinished build to resume; refuses one of another fingerprint."""
    manifest = resume.read_manifest(fs, root)
    if manifest is not None and manifest.get("fingerprint") != fp and not force:
        raise UserError(
            f"output.path {cfg.output.path} holds an unfinished build of another config or "
            f"table; rerun with that config to resume it, or add --force to discard it"
        )
    return None if force or manifest is None or manifest.get("fingerprint") != fp else manifest


def _start_or_resume(cfg: Config, fp: str, manifest: dict | None) -> dict:
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


def plan_build(
    client,
    cfg: Config,
    fp: str,
    unfinished: dict | None,
    resolved: ResolvedInput | None = None,
    audio_pairs: pd.DataFrame | None = None,
    manifest: dict | None = None,
):
    """The table read, checked and placed on the cluster: (planned table, manifest). ``audio_pairs``:
    the recordings sharing audio (None: those of an earlier build's fingerprints, if any);
    ``manifest``: a new build's, given (else the unfinished one's, or a new one)."""
    manifest = manifest or _start_or_resume(cfg, fp, unfinished)
    planned = plan_table(client, cfg, set(manifest["previous_dev"]), resolved, audio_pairs)
    return planned, manifest


def prepare(cfg: Config, client) -> list[ShardTask]:
    """A new build set up on ``client`` (benchmarks, profiling): its tasks, for ``run_shard``, which
    decode everything (they take no clip from a dataset already there)."""
    fs, root = storage.fs_and_path(cfg.output.path)
    planned, manifest = plan_build(client, cfg, resume.fingerprint(cfg), None)
    _write_start(fs, root, manifest, new=True)
    return make_tasks(client, cfg, planned, reuse=False)


def build(cfg: Config, client=None, force: bool = False) -> Report:
    """Run a whole build, or resume an unfinished one with the same config and table. With ``client``
    given, use it; else open one from ``cfg.cluster``. ``force``: discard unfinished work.
    One build per output folder: another one running there stops this one at once (``lease``)."""
    with Lease(cfg.output.path, _say) as lease:
        return _build(cfg, client, force, lease)


def _cut_shards(
    client, cfg: Config, tasks: list[ShardTask], what: str
) -> tuple[list[ShardResult], set]:
    """Run the shards an earlier run left undone (none if it was killed while finalizing) and settle
    the reserve: every shard's result in shard order, and the promoted ids."""
    fs, root = storage.fs_and_path(cfg.output.path)
    if resume.read_journal(fs, root) is not None:  # killed while finalizing: only that is left
        _say("resuming: every shard is done; finishing the dataset")
        return [], set()
    done = resume.finished(fs, root, len(tasks))
    todo = [t for t in tasks if t.index not in done]
    _say(
        f"{what} {sum(len(t.recordings) for t in tasks)} recordings in {len(tasks)} shards"
        + (f" ({len(tasks) - len(todo)} done by an earlier run)" if len(todo) < len(tasks) else "")
    )
    new = run_tasks(client, todo) if todo else []
    results = sorted([done[t.index] for t in tasks if t.index in done] + new, key=lambda r: r.shard)
    return _settle_reserve(client, cfg, results, done.get(len(tasks)))


def _plan_cut_finalize(
    client,
    cfg: Config,
    fp: str,
    unfinished,
    lease: Lease,
    t0: float,
    resolved: ResolvedInput,
    reuse: bool = True,
    audio_pairs: pd.DataFrame | None = None,
    manifest: dict | None = None,
    earlier: Report | None = None,
) -> Pass:
    """Plan, cut the shards and finalize on ``client``: the report and report.html's counts.
    ``reuse``: take the clips the dataset there holds of unchanged files instead of decoding them."""
    fs, root = storage.fs_and_path(cfg.output.path)
    planned, manifest = plan_build(client, cfg, fp, unfinished, resolved, audio_pairs, manifest)
    check_decoders(client, cfg)  # before anything is written
    check_space(cfg, planned.counts.splits)  # a dataset that cannot fit is told before decoding
    _write_start(fs, root, manifest, new=unfinished is None)  # a kill from here on: resumed
    tasks = make_tasks(client, cfg, planned, reuse)
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
        {"table_s": round(t_table, 3), "decode_cut_write_s": round(t_cut, 3)},
        t0,
        fp,
        None if earlier is None else (earlier["hours_decoded"], earlier["hours_reused"]),
    )
    kept = set(planned.counts.recordings["recording"])
    return Pass(report, plot_counts(client, cfg), planned.audio_pairs, kept, manifest)


class Pass(NamedTuple):
    """What one plan + cut + finalize left: the report and report.html's counts, the pairs of
    recordings sharing audio its plan applied (None: none known), the recordings with kept rows,
    and the build's manifest."""

    report: Report
    plots: PlotCounts
    audio_pairs: pd.DataFrame | None
    kept: set
    manifest: dict


def _pair_keys(pairs: pd.DataFrame | None, recordings: set) -> set:
    if pairs is None:
        return set()
    both = pairs["recording_a"].isin(recordings) & pairs["recording_b"].isin(recordings)
    return set(zip(pairs.loc[both, "recording_a"], pairs.loc[both, "recording_b"]))


def _found_while_decoding(client, cfg: Config, done: Pass) -> pd.DataFrame | None:
    """The pairs of recordings sharing audio that this build's fingerprints show among its kept
    recordings and its plan did not apply (None: none). The build's state stays in ``OUT/.parts``
    until ``finish``, so a kill before then is resumed, and this is asked again."""
    if done.audio_pairs is not None and not done.report["hours_decoded"]:
        return None  # nothing decoded: the fingerprints are the ones the plan matched
    pairs = known_pairs(client, cfg)
    if pairs is None or not (
        _pair_keys(pairs, done.kept) - _pair_keys(done.audio_pairs, done.kept)
    ):
        return None
    return pairs


def _build(cfg: Config, client, force: bool, lease: Lease) -> Report:
    t0 = time.perf_counter()
    fs, root = storage.fs_and_path(cfg.output.path)
    fp = resume.fingerprint(cfg)
    if not force:
        done = _up_to_date(fs, root, cfg, fp)
        if done is not None:
            _say(
                f"{cfg.output.path} is already built from this config and table "
                f"(fingerprint {fp[:12]}): nothing to do (--force rebuilds it)"
            )
            return {**done, "up_to_date": True}
    unfinished = _unfinished(fs, root, cfg, fp, force)  # before starting anything
    resolved = resolve_input(cfg.input)  # the format, columns, speakers: once
    check_speakers(cfg.splits, resolved)  # a config mistake is told before the cluster starts
    finisher = concurrent.futures.ThreadPoolExecutor(1)
    # the cluster starts while the table is read and checked
    session = ClusterSession(
        cfg.cluster, client=client, log_dir=storage.logs_dir(cfg.output.path)
    ).start(_announce(cfg.cluster))
    with session as s:
        ran = _plan_cut_finalize(s.client, cfg, fp, unfinished, lease, t0, resolved, not force)
        found = _found_while_decoding(s.client, cfg, ran)
        if found is not None:  # copies the plan did not know: placed again, every clip reused
            _say(
                f"{len(found)} pairs of recordings share audio, found while decoding: placing "
                "their rows again (their clips are copied, not decoded)"
            )
            # a new build of the same inputs, with the first one's previous dev (none was there)
            ran = _plan_cut_finalize(
                s.client, cfg, fp, None, lease, t0, resolved, True, found, ran.manifest, ran.report
            )
        report, plots = ran.report, ran.plots
        finishing = finisher.submit(finish, cfg, dict(report), plots)
    finishing.result()  # its errors are the build's
    finisher.shutdown()
    return report
