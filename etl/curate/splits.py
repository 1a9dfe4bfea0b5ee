"""Seeded, order-free split assignment and budgets (pure: pandas in, pandas out).

Every row's place depends only on a stable 64-bit hash of ``"{seed}:{key}"``, where the key is the
segment id (``by: segment``), the recording (``by: recording``: whole recordings go to one split) or
the speaker (``by: speaker``: whole speakers go to one split; rows without a speaker by recording).
Units (rows, whole recordings or speakers) are taken in that hash order:
dev first, up to ``dev_size`` rows or ``dev_hours``; the budgets cut train as a prefix of the same
order. So the result is the same whatever the partitioning, the worker count or the table's order,
and ``previous_dev`` (the dev ids of the build being replaced) keeps dev stable when rows are added.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..audio.media import CLIP_OVERHEAD_BYTES
from ..config import Config

# Units ranked just after dev are written to reserve files: when dev rows are lost while decoding
# (unreadable_audio, beyond_end, which only decoding can tell), the best-ranked surviving reserve
# units take their places, so dev still holds its size; the other reserve rows join train.
RESERVE = "_reserve"
SPLITS = ("train", "dev", "test", "low_similarity")  # the order splits are listed in


def seeded_hash(keys, seed: int | str) -> np.ndarray:
    """A stable uint64 per key: the first 8 bytes (big-endian) of blake2b(``"{seed}:{key}"``, digest 8),
    independent of Python's hash randomisation and of pandas. Repeated keys are hashed once."""
    values = _as_objects(keys)
    if (
        _repeats(values[:4096]) and not pd.isna(values).any()
    ):  # NA keys (str(None) != str(nan)) one by one
        codes, uniques = pd.factorize(values, sort=False)
        return _blake2b_u64(np.asarray(uniques, dtype=object), seed)[codes]
    return _blake2b_u64(values, seed)


def _repeats(sample: np.ndarray) -> bool:
    """Whether keys repeat enough (recordings, speakers) to hash the distinct ones only."""
    return len(sample) > 1 and len(pd.unique(sample)) < 0.8 * len(sample)


def _as_objects(keys) -> np.ndarray:
    """Keys as a numpy object array (iterating one is several times faster than an Arrow-backed Series)."""
    if isinstance(keys, (pd.Series, pd.Index)):
        return keys.to_numpy(dtype=object)
    return np.asarray(
        list(keys) if not isinstance(keys, np.ndarray) else keys, dtype=object
    ).reshape(-1)


def _blake2b_u64(values: np.ndarray, seed) -> np.ndarray:
    base = hashlib.blake2b(
        f"{seed}:".encode(), digest_size=8
    )  # the prefix hashed once, its state copied per key
    out = bytearray()
    for k in values:
        h = base.copy()
        h.update((k if type(k) is str else str(k)).encode("utf-8"))
        out += h.digest()
    return np.frombuffer(bytes(out), dtype=">u8").astype(np.uint64)


def hash_rank(ids: pd.Series, seed: int | str) -> pd.Series:
    """0-based rank of each id by its seeded hash (ties, practically impossible, broken by id)."""
    h = pd.Series(seeded_hash(ids, seed), index=ids.index)
    order = pd.DataFrame({"h": h, "id": ids.astype(str)}).sort_values(["h", "id"], kind="stable")
    rank = pd.Series(0, index=ids.index, dtype=np.int64)
    rank.loc[order.index] = np.arange(len(order), dtype=np.int64)
    return rank


@dataclass(frozen=True)
class SplitPolicy:
    seed: int = 0
    by: str = "segment"  # segment | recording | speaker
    dev_size: int = 0  # rows (ignored when dev_hours is set)
    dev_hours: float | None = None
    train_hours: float | None = None
    total_bytes: float | None = None  # size budget of all splits, in estimated encoded bytes
    bytes_per_second: float = 16000 * 2 * 0.65  # encoded size estimate per second of audio
    bytes_per_row: float = (
        CLIP_OVERHEAD_BYTES  # per-clip overhead (headers, Parquet row) in the size estimate
    )

    @classmethod
    def from_config(cls, cfg: Config) -> SplitPolicy:
        from ..audio.media import encoded_bytes_per_second

        s, b = cfg.splits, cfg.budget
        return cls(
            seed=s.seed,
            by=s.by,
            dev_size=s.dev_size,
            dev_hours=s.dev_hours,
            train_hours=b.train_hours,
            total_bytes=None if b.total_gb is None else b.total_gb * 1e9,
            bytes_per_second=encoded_bytes_per_second(
                cfg.audio.sampling_rate,
                cfg.audio.channels,
                cfg.output.audio_format,
            ),
        )

    def estimated_bytes(self, seconds, clips=1):
        """As ``audio.estimated_clip_bytes``, with this policy's rate."""
        return seconds * self.bytes_per_second + clips * self.bytes_per_row


def dev_target(policy: SplitPolicy) -> tuple[str, float]:
    """What dev is measured in (``rows`` or ``seconds``) and how much of it dev holds."""
    if policy.dev_hours is not None:
        return "seconds", policy.dev_hours * 3600
    return "rows", policy.dev_size


def unit_roles(units: pd.DataFrame, policy: SplitPolicy) -> np.ndarray:
    """dev / RESERVE / train of units in hash order (columns rows, seconds): a unit is taken while
    what came before it is short of the target; the reserve is the next target's worth."""
    column, target = dev_target(policy)
    measure = units[column]
    before = measure.cumsum() - measure
    if target <= 0:
        return np.full(len(units), "train", dtype=object)
    return np.where(before < target, "dev", np.where(before < 2 * target, RESERVE, "train")).astype(
        object
    )


def split_units(rows: pd.DataFrame, by: str) -> pd.Series:
    """The key each row is placed by: its id, its recording, or its speaker (by recording without one)."""
    if by == "segment":
        return rows["id"]
    recording = (
        rows["recording_key"].fillna(rows["recording"])
        if "recording_key" in rows
        else rows["recording"]
    )
    if by == "recording":
        return recording
    speaker = (
        rows["speaker"] if "speaker" in rows else pd.Series(None, index=rows.index, dtype=object)
    )
    return speaker.where(speaker.notna(), "recording:" + recording.astype(str))


def listed(rows: pd.DataFrame, keys, by: str) -> pd.Series:
    """Rows an id list names: by segment id, recording (as in the table, or its path), or speaker (by speaker)."""
    hit = rows["id"].isin(keys) | rows["recording"].isin(keys)
    if "recording_key" in rows:
        hit |= rows["recording_key"].isin(keys)
    if by == "speaker" and "speaker" in rows:
        hit |= rows["speaker"].isin(keys)
    return hit


def promote_reserve(written: pd.DataFrame, missing: float) -> set:
    """Ids of the reserve rows that move to dev. ``written``: the reserve rows that survived decoding
    (id, unit, order, measure); whole units are promoted in order while dev is short of ``missing``."""
    if missing <= 0 or written.empty:
        return set()
    units = written.groupby("unit", sort=False).agg(
        order=("order", "min"), measure=("measure", "sum")
    )
    units = units.sort_values("order", kind="stable")
    before = units["measure"].cumsum() - units["measure"]
    take = set(units.index[before < missing])
    return set(written.loc[written["unit"].isin(take), "id"])


# An id list (test_ids, exclude_ids, suspect_recordings.txt, sampled_ids.txt, bad_ids.txt): one id
# per line, blank lines and ``#`` comments ignored. An id holding ``#`` (a downloader's "Episode #12"),
# starting with ``"`` or holding a line break is written as a JSON string: ``"Episode #12"  # why``.
_LINE_BREAKS = (
    "\x85\u2028\u2029"  # line breaks str.splitlines knows that json.dumps leaves as they are
)


def id_list_line(key: str, comment: str | None = None) -> str:
    """One line of an id list naming ``key`` exactly (``read_id_list`` gives it back), with ``comment``."""
    if "#" in key or key.startswith('"') or key != key.strip() or len((key + "x").splitlines()) > 1:
        key = json.dumps(key, ensure_ascii=False)
        for c in _LINE_BREAKS:
            key = key.replace(c, f"\\u{ord(c):04x}")
    return f"{key}  # {comment}\n" if comment else f"{key}\n"


def read_id_list(text: str) -> set[str]:
    """Ids (or recording ids) of a list file: one per line; blank lines and ``#`` comments ignored.
    A line starting with ``"`` holds a JSON string (the id exactly, ``#`` and all), then at most a
    comment; any other line is cut at its first ``#`` and stripped."""
    out = set()
    for line in text.lstrip("\ufeff").splitlines():
        line = _quoted_id(line.strip()) or line.split("#", 1)[0].strip()
        if line:
            out.add(line)
    return out


def _quoted_id(line: str) -> str | None:
    if not line.startswith('"'):
        return None
    try:
        key, end = json.JSONDecoder().raw_decode(line)
    except json.JSONDecodeError:
        return None
    rest = line[end:].strip()
    return key if isinstance(key, str) and (not rest or rest.startswith("#")) else None
