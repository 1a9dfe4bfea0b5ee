"""Planning on the cluster: the alignment table -> placed rows, without the table ever on the client.

The workers read the table (dask.dataframe over fsspec) and check each partition with the pure
functions of ``rows``; the checked partitions stay on the workers (futures). The whole-table steps are
small reductions the client combines:

- duplicates: each partition's id hashes, merged pairwise on the workers; only the ids that repeat
  come to the client, which keeps the first by input order;
- the file join: the audio listing is broadcast and ``recordings.resolve`` runs per partition;
- splits: units (rows, recordings or speakers) are ordered by their seeded hash. Per-partition
  histograms of the hash's top bits tell the client which buckets hold dev and the reserve (the k
  smallest) and where a budget's cumulative hours or bytes cross its limit; only the units of those
  buckets come to the client, where the same rules as ``splits.assign`` place them exactly;
- per-recording aggregates of the kept rows give the shards.

The client holds counts, per-recording aggregates and a few thousand units, never rows.

Each pass over the partitions is one task per partition and one round trip (``plan_table``):
read + check + id hashes; number + duplicates + file join + units; pool + histogram; then the units
of a few buckets (dev, budget cuts); label + counts.
"""

from __future__ import annotations

import operator
import sys
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..config import Config
from ..curate.duplicates import applied_pairs, decide
from ..curate.splits import (
    SplitPolicy,
    dev_target,
    read_id_list,
    unit_roles,
)
from ..errors import UserError
from ..ingest import table
from ..ingest.recordings import list_audio, listing_summary, missing_audio_where
from ..ingest.resolved import ResolvedInput, check_speakers, resolve_input
from ..output import fingerprints
from ..schema import RECORDING_COLUMNS, DatasetShape
from .audio_matches import MATCH_COLUMNS, match_recordings, parquet_pieces
from .worker import (
    TableLayout,
    check_part,
    duplicate_audio_part,
    label_part,
    merge_hashes,
    pool_histogram,
    pool_part,
    prepare_part,
    read_partition,
    rows_with_hashes,
    table_layout,
    unit_partials,
)


@dataclass
class PlannedTable:
    """What the client holds after planning: futures of the placed partitions (on the workers) and
    the small things the whole-table steps produced."""

    parts: (
        list  # futures of pandas frames, in input order, with split / reason / detail / url / unit
    )
    rows_in: int
    has_id: bool
    selection: dict = field(default_factory=dict)
    listing: dict = field(default_factory=dict)
    head: pd.DataFrame | None = None  # dev and reserve units in order: unit, role, order
    counts: PlanCounts | None = None
    ids_from_template: int = (
        0  # rows of a table with ids whose own id was missing (null, NaN, empty)
    )
    encodings: dict = field(default_factory=dict)  # alignment files decoded per encoding
    input: ResolvedInput | None = None  # the input as planning read it
    shape: DatasetShape = DatasetShape()  # the dataset's optional columns
    # url -> file_identity of every file of the audio listing ({} without one: input.audio null)
    identities: dict = field(default_factory=dict)
    # the pairs of recordings sharing audio the policy applied (None: no fingerprints were known)
    audio_pairs: pd.DataFrame | None = None


# ---- client side: what each pass hands the next ----


class CheckedTable(NamedTuple):
    parts: list  # futures of the checked partitions, in input order, not yet numbered
    lengths: list[int]  # rows of each
    has_id: bool
    repeated: np.ndarray  # the hashes of the ids that repeat
    encodings: dict  # alignment files decoded per encoding (report.json's alignment_encodings)


class JoinedTable(NamedTuple):
    parts: list  # futures: numbered, duplicates marked, joined with the audio, units hashed
    listing: dict  # listing_summary: how table and audio folder fit
    selection: dict  # what the exclusion lists matched
    test_units: set  # units with a row in splits.test_ids
    audio_pairs: pd.DataFrame  # the pairs of recordings sharing audio the policy applied
    identities: dict  # url -> file_identity of the listing's files ({} without a listing)


class Pool(NamedTuple):
    parts: list  # futures: test and low_similarity placed, the pool marked
    prev_units: set  # pool units holding a previous dev id
    fixed_bytes: float  # estimated bytes of the rows already placed
    histogram: np.ndarray  # the pool's (rows, seconds) per hash bucket


class Placement(NamedTuple):
    parts: list  # futures of the placed partitions
    head: pd.DataFrame  # dev and reserve units in order: unit, role, order
    sums: list[dict]  # ``worker.summary_part`` of each partition


def read_checked(client, cfg: Config, resolved: ResolvedInput) -> CheckedTable:
    """The checked partitions and what the duplicates search needs. Two round trips: the table's
    layout (worked out on a worker), then read + check + id hashes."""
    inp, fmt = cfg.input, resolved.format
    layout = client.submit(table_layout, resolved, pure=False)
    try:
        present, n = client.submit(_columns_and_count, layout).result()
    except (ValueError, TypeError, OSError, UnicodeDecodeError) as e:
        raise unreadable_table(inp.alignment, fmt, e) from None
    table.check_columns(present, resolved.columns, fmt)
    has_id = resolved.own_ids(present)
    checked = client.map(
        check_part,
        client.map(read_partition, [layout] * n, range(n)),
        columns=resolved.columns,
        inp=inp,
        text=cfg.text,
        filters=cfg.filters,
        reader_extras=resolved.reader_extras,
    )
    parts, lengths = _field(client, checked, "rows"), _field(client, checked, "n")
    root = _tree(client, merge_hashes, _field(client, checked, "id_hashes"))
    encodings = client.submit(_add_counts, *_field(client, checked, "encodings"))
    try:
        *lengths, dup, encodings = client.gather(
            lengths + [client.submit(operator.attrgetter("repeated"), root), encodings]
        )
    except (ValueError, TypeError, OSError, UnicodeDecodeError) as e:
        raise unreadable_table(inp.alignment, fmt, e) from None
    return CheckedTable(parts, lengths, has_id, dup, encodings)


def _add_counts(*counts: dict) -> dict:
    """Counts of the partitions, added: {key: total}, sorted by key."""
    total: dict = {}
    for c in counts:
        for k, n in c.items():
            total[k] = total.get(k, 0) + n
    return dict(sorted(total.items()))


def _columns_and_count(layout: TableLayout) -> tuple[list[str], int]:
    return layout.columns, layout.partitions


def _no_pairs() -> pd.DataFrame:
    return pd.DataFrame(columns=MATCH_COLUMNS)


def _offsets(lengths: list) -> list:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist()


def unreadable_table(path: str, fmt: str, e: Exception) -> UserError:
    text = str(e).replace("Original Message:", "").strip()
    lines = [
        ln.strip()
        for ln in text.splitlines()
        if ln.strip() and "error occurred while calling" not in ln
    ]
    return UserError(
        f"input.alignment {path}: cannot read it as {fmt}: {lines[0] if lines else type(e).__name__}"
    )


def _shared(client, *objs) -> list:
    """Each of ``objs`` on every worker once, as futures, in one round trip: task arguments that
    never travel inline in the graph (where a large dict or set could be taken apart into tasks of
    its own)."""
    return client.scatter(list(objs), broadcast=True, hash=False)


def _field(client, futures: list, name: str) -> list:
    """Futures of one field of each of ``futures``' results (a pass's NamedTuple), left on the
    workers."""
    return client.map(operator.attrgetter(name), futures)


def _tree(client, fn, futures: list):
    while len(futures) > 1:
        nxt = [client.submit(fn, a, b) for a, b in zip(futures[::2], futures[1::2])]
        futures = nxt + ([futures[-1]] if len(futures) % 2 else [])
    return futures[0]


def first_rows(client, parts: list, offsets: list, dup: np.ndarray) -> dict:
    """Each repeated id's first row by input order (its other rows become ``duplicate_id``): only the
    rows whose id hash repeats come to the client."""
    if not len(dup):
        return {}
    [hashes] = _shared(client, dup)
    got = client.gather(client.map(rows_with_hashes, parts, hashes=hashes))
    rows = pd.concat([g.assign(row=g["at"] + off) for g, off in zip(got, offsets)])
    rows = rows[rows["id"].duplicated(keep=False)].sort_values("row")
    return rows.drop_duplicates("id").set_index("id")["row"].astype(int).to_dict()


def _read_text(path: str) -> str:
    import fsspec

    with fsspec.open(path, "rt", encoding="utf-8-sig") as f:
        return f.read()


def _join_inputs(cfg: Config, resolved: ResolvedInput) -> dict:
    """What the file join needs on every worker: the listing (or wav.scp) and the exclusion lists."""
    inp, s = cfg.input, cfg.splits
    wav_scp = resolved.wav_scp
    listing = None if inp.audio is None else list_audio(inp.audio, inp.recording_pattern)
    where = missing_audio_where(inp.audio, wav_scp)
    excludes = [(path, read_id_list(_read_text(path)), s.by) for path in s.exclude_ids]
    return {"listing": listing, "wav_scp": wav_scp, "where": where, "excludes": excludes}


def join_audio(
    client,
    cfg: Config,
    resolved: ResolvedInput,
    parts: list,
    offsets: list,
    first_row: dict,
    test_keys,
    pairs: pd.DataFrame,
) -> JoinedTable:
    """Number the rows, mark the duplicates, join with the audio listing (broadcast), apply the
    exclusion lists and hash the units, in one pass (``test_keys``: their future, ``_shared``);
    then, with ``pairs`` of recordings sharing audio, their policy (one more pass when it rejects
    or merges anything)."""
    s = cfg.splits
    join = _join_inputs(cfg, resolved)
    units = {
        "by": s.by,
        "seed": s.seed,
        "test_keys": test_keys,
        "low_split": s.low_similarity == "split",
    }
    sharing = set(pairs["recording_a"]) | set(pairs["recording_b"])
    first_row_f, join_f, sharing_f = _shared(client, first_row, join, sharing)
    triples = client.map(
        prepare_part,
        parts,
        offsets,
        first_row=first_row_f,
        join=join_f,
        units=units,
        sharing=sharing_f,
    )
    parts = _field(client, triples, "rows")
    got = client.gather(_field(client, triples, "summary") + _field(client, triples, "test_units"))
    sums, tests = got[: len(parts)], got[len(parts) :]
    parts, test_units, applied = _shared_audio(
        client, cfg, parts, _field(client, triples, "audio_rows"), pairs, set().union(*tests)
    )
    refs = pd.concat([x["refs"] for x in sums]).drop_duplicates("ref").reset_index(drop=True)
    summary = listing_summary(join["listing"], refs["ref"], refs)
    selection = {
        "exclude_ids": {
            path: {"listed": len(ids), "rows_matched": sum(x["excluded"][k] for x in sums)}
            for k, (path, ids, _) in enumerate(join["excludes"])
        }
    }
    identities = {} if join["listing"] is None else join["listing"].identities
    return JoinedTable(parts, summary, selection, test_units, applied, identities)


def _shared_audio(client, cfg: Config, parts, audio_rows, pairs, test_units: set):
    """The duplicate-audio policy (``curate.duplicates.decide``) on the eligible rows of the
    recordings in ``pairs``, the only rows that come to the client; applied per partition when it
    rejects or merges anything. Returns (parts, the units with a test row, the pairs applied)."""
    if pairs.empty:
        return parts, test_units, pairs
    rows = pd.concat(client.gather(audio_rows), ignore_index=True)
    applied = applied_pairs(pairs, set(rows["recording"]))
    rejects, merges = decide(rows, applied, cfg.filters.duplicate_audio)
    if rejects or merges:
        rejects_f, merges_f = _shared(client, rejects, merges)
        done = client.map(
            duplicate_audio_part,
            parts,
            rejects=rejects_f,
            merges=merges_f,
            units={"by": cfg.splits.by, "seed": cfg.splits.seed},
        )
        parts = _field(client, done, "rows")
        test_units = set().union(*client.gather(_field(client, done, "test_units")))
    return parts, test_units, applied


def _fetch_units(client, parts: list, prev_units: set, buckets, policy) -> pd.DataFrame:
    """The units of the given buckets (and the prev units), whole, in order."""
    [prev_f] = _shared(client, prev_units)
    got = client.gather(
        client.map(unit_partials, parts, prev_units=prev_f, buckets=list(buckets), policy=policy)
    )
    units = (
        pd.concat(got)
        .groupby("unit", sort=False, dropna=False)
        .agg(
            hash=("hash", "first"),
            rows=("rows", "sum"),
            seconds=("seconds", "sum"),
            bytes=("bytes", "sum"),
            prev=("prev", "first"),
        )
        .reset_index()
    )
    units["unit"] = units["unit"].astype(object)
    return units.sort_values(
        ["prev", "hash", "unit"], ascending=[False, True, True], kind="stable"
    ).reset_index(drop=True)


def _key(unit: pd.Series) -> tuple:
    return (0 if unit["prev"] else 1, int(unit["hash"]), str(unit["unit"]))


def _find_cut(
    client,
    parts,
    prev_units,
    policy,
    head_cand: pd.DataFrame,
    hist_vals: np.ndarray,
    b_head: int,
    limit: float,
    value,
    offset: float = 0.0,
):
    """The first candidate unit where ``cumsum(value) + offset`` exceeds ``limit``: in the head
    window exactly, else in the first bucket after it whose running total crosses, fetched whole."""
    c_head = np.cumsum(value(head_cand).to_numpy(float))
    hit = np.nonzero(c_head + offset > limit)[0]
    if len(hit):
        return _key(head_cand.iloc[hit[0]])
    running = float(c_head[-1]) if len(c_head) else 0.0
    rest = running + np.cumsum(hist_vals[b_head + 1 :])
    # the first bucket holding units (an empty one crosses too when the offset alone is over)
    cross = np.nonzero((rest + offset > limit) & (hist_vals[b_head + 1 :] > 0))[0]
    if not len(cross):
        return None
    b = b_head + 1 + int(cross[0])
    before = float(rest[cross[0] - 1]) if cross[0] else running
    units = _fetch_units(client, parts, prev_units, [b], policy)
    units = units[~units["prev"]]
    c = before + np.cumsum(value(units).to_numpy(float))
    return _key(units.iloc[int(np.nonzero(c + offset > limit)[0][0])])


def _pool(client, parts: list, cfg: Config, test_units: set, previous_dev, policy) -> Pool:
    """Test, low_similarity and the pool. ``previous_dev``: (the ids, their future)."""
    s = cfg.splits
    previous_dev, previous_dev_f = previous_dev
    [test_units_f] = _shared(client, test_units)
    quads = client.map(
        pool_part,
        parts,
        by=s.by,
        test_units=test_units_f,
        low_split=s.low_similarity == "split",
        previous_dev=previous_dev_f,
        policy=policy,
    )
    parts = _field(client, quads, "rows")
    n = len(parts)
    hist = [] if previous_dev else [_tree(client, operator.add, _field(client, quads, "histogram"))]
    got = client.gather(
        _field(client, quads, "prev_units") + _field(client, quads, "fixed_bytes") + hist
    )
    prev, fixed = set().union(*got[:n]), sum(got[n : 2 * n])
    if previous_dev:  # the histogram leaves the previous dev's units out: known only now
        hist = [
            _tree(
                client,
                operator.add,
                client.map(pool_histogram, parts, prev_units=_shared(client, prev)[0]),
            )
        ]
        got.append(hist[0].result())
    return Pool(parts, prev, fixed, got[-1])


def place(
    client, cfg: Config, parts: list, test_units: set, previous_dev, count: dict
) -> Placement:
    """Test, low_similarity, dev, reserve, train and the budgets, as ``splits.assign`` places them
    (``count``: the arguments of each part's ``summary_part``; ``previous_dev``: the ids and their
    future)."""
    policy = SplitPolicy.from_config(cfg)
    parts, prev, fixed, hist = _pool(client, parts, cfg, test_units, previous_dev, policy)
    column, target = dev_target(policy)
    b_head = -1
    if target > 0:
        prev_measure = _fetch_units(client, parts, prev, [], policy)[column].sum() if prev else 0
        reach = np.nonzero(
            prev_measure + np.cumsum(hist[0 if column == "rows" else 1]) >= 2 * target
        )[0]
        b_head = int(reach[0]) if len(reach) else len(hist[0]) - 1
    head = _fetch_units(client, parts, prev, np.nonzero(hist[0][: b_head + 1])[0].tolist(), policy)
    head["role"] = unit_roles(head, policy)
    head["order"] = np.arange(len(head), dtype=np.int64)
    cand = head[head["role"] != "dev"]
    hist_bytes = policy.estimated_bytes(hist[1], hist[0])
    cuts = []
    if policy.train_hours is not None:
        cut = _find_cut(
            client,
            parts,
            prev,
            policy,
            cand,
            hist[1],
            b_head,
            policy.train_hours * 3600,
            lambda u: u["seconds"],
        )
        cuts.append((cut, f"budget.train_hours {policy.train_hours:g} h reached"))
    if policy.total_bytes is not None:
        offset = fixed + float(head.loc[head["role"] == "dev", "bytes"].sum())
        cut = _find_cut(
            client,
            parts,
            prev,
            policy,
            cand,
            hist_bytes,
            b_head,
            policy.total_bytes,
            lambda u: policy.estimated_bytes(u["seconds"], u["rows"]),
            offset,
        )
        cuts.append((cut, f"budget.total_gb {policy.total_bytes / 1e9:g} GB reached"))
    roles = {
        u: (r, o) for u, r, o in zip(head["unit"], head["role"], head["order"]) if r != "train"
    }
    roles_f, prev_f, cuts_f = _shared(client, roles, prev, cuts)
    labelled = client.map(
        label_part, parts, head=roles_f, prev_units=prev_f, cuts=cuts_f, count=count
    )
    parts, sums = _field(client, labelled, "rows"), _field(client, labelled, "summary")
    return Placement(parts, head[head["role"] != "train"], client.gather(sums))


def known_pairs(client, cfg: Config) -> pd.DataFrame | None:
    """The pairs of recordings sharing audio (``audio_matches.MATCH_COLUMNS``) that the output
    folder's fingerprints of an earlier build show, matched on ``client``'s cluster; None without
    them."""
    url = fingerprints.url(cfg.output.path)
    return None if url is None else match_recordings(client, parquet_pieces(url))


def plan_table(
    client,
    cfg: Config,
    previous_dev=frozenset(),
    resolved: ResolvedInput | None = None,
    audio_pairs: pd.DataFrame | None = None,
) -> PlannedTable:
    """Read, check, de-duplicate, join and place the table on the cluster: five passes over the
    partitions, each one task per partition and one round trip (plus the table's layout, and one
    per repeated-id search, dev head and budget cut). ``resolved``: the input as the command resolved it (else here).
    ``audio_pairs``: the recordings known to share audio (``audio_matches.MATCH_COLUMNS``), whose
    policy planning applies (``curate.duplicates``); None: those of OUT/fingerprints.parquet
    (``known_pairs``), if an earlier build left one."""
    if audio_pairs is None:
        audio_pairs = known_pairs(client, cfg)
    pairs = _no_pairs() if audio_pairs is None else audio_pairs
    resolved = resolve_input(cfg.input) if resolved is None else resolved
    check_speakers(cfg.splits, resolved)
    from tqdm import tqdm

    s = cfg.splits
    test_keys = read_id_list(_read_text(s.test_ids)) if s.test_ids else set()
    with tqdm(
        total=len(STEPS),
        desc="plan",
        file=sys.stderr,
        mininterval=0.5,
        disable=None,  # a terminal only
        bar_format="{l_bar}{bar}| {n}/{total} steps [{elapsed}] {postfix}",
    ) as bar:
        bar.set_postfix_str(STEPS[0])
        parts, lengths, has_id, dup, encodings = read_checked(client, cfg, resolved)
        _step(bar, f"{sum(lengths):,} rows")
        offsets = _offsets(lengths)
        first_row = first_rows(client, parts, offsets, dup)
        _step(bar)
        test_keys_f, previous_dev_f = _shared(client, test_keys, set(previous_dev))
        parts, listing, selection, test_units, applied, identities = join_audio(
            client, cfg, resolved, parts, offsets, first_row, test_keys_f, pairs
        )
        _step(bar)
        count = {
            "test_keys": test_keys_f,
            "by": s.by,
            "previous_dev": previous_dev_f,
            "with_speaker": resolved.speaker,
        }
        previous = (previous_dev, previous_dev_f)
        parts, head, sums = place(client, cfg, parts, test_units, previous, count)
        _step(bar)
        planned = PlannedTable(
            parts=parts,
            rows_in=int(sum(lengths)),
            has_id=has_id,
            listing=listing,
            head=head,
            encodings=encodings,
            audio_pairs=None if audio_pairs is None else applied,
        )
        _select(cfg, planned, selection, sums, test_keys, previous_dev)
        planned.input = resolved
        planned.identities = identities
        words = planned.counts is not None and planned.counts.has_words
        planned.shape = DatasetShape(source_id=has_id, speaker=resolved.speaker, words=words)
        _step(bar)
    return planned


# What planning does, in order (the progress bar's steps).
STEPS = (
    "read and check the table",
    "duplicates",
    "join with the audio files",
    "splits and budgets",
    "counts",
)


def _step(bar, note: str = "") -> None:
    bar.update(1)
    if bar.n < len(STEPS):
        bar.set_postfix_str(STEPS[bar.n] + (f" ({note})" if note else ""))


@dataclass
class PlanCounts:
    """The whole table in numbers: rows and seconds per split (reserve apart), rows per reason,
    the kept rows' recordings (``schema.RECORDING_COLUMNS``), speakers per split."""

    splits: dict
    reasons: dict
    recordings: pd.DataFrame
    speakers: dict
    has_words: bool


def _select(
    cfg, planned: PlannedTable, selection: dict, sums: list, test_keys, previous_dev
) -> None:
    s = cfg.splits
    planned.counts = _combine(sums)
    planned.ids_from_template = sum(x["ids_from_template"] for x in sums) if planned.has_id else 0
    if s.test_ids:
        selection["test_ids"] = {
            "listed": len(test_keys),
            "rows_matched": sum(x["test_matched"] for x in sums),
            "rows_in_test": planned.counts.splits.get("test", (0, 0.0))[0],
        }
    if previous_dev:
        selection["previous_dev"] = {
            "ids": len(previous_dev),
            "still_in_dev": sum(x["prev_in_dev"] for x in sums),
        }
    if s.by == "speaker":
        selection["by_speaker"] = {"rows_without_speaker": sum(x["without_speaker"] for x in sums)}
    planned.selection = selection


def _combine(sums: list) -> PlanCounts:
    splits: dict = {}
    reasons: dict = {}
    speakers: dict = {}
    for x in sums:
        for k, (n, d) in x["splits"].items():
            a = splits.get(k, (0, 0.0))
            splits[k] = (a[0] + n, a[1] + d)
        for r, n in x["reasons"].items():
            reasons[r] = reasons.get(r, 0) + n
        for k, v in x.get("speakers", {}).items():
            speakers.setdefault(k, set()).update(v)
    recs = (
        pd.concat([x["recordings"] for x in sums])
        if sums
        else pd.DataFrame(columns=RECORDING_COLUMNS)
    )
    recs = (
        recs.groupby("recording", sort=True)
        .agg(seconds=("seconds", "max"), url=("url", "first"), rows=("rows", "sum"))
        .reset_index()
    )
    return PlanCounts(splits, reasons, recs, speakers, any(x["has_words"] for x in sums))
