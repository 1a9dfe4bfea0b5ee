"""Seeded, order-free split assignment (pure).

Every row's place depends only on its id and the seed: a stable 64-bit hash of ``"{seed}:{id}"``.
``dev`` takes the ``dev_size`` kept rows with the smallest hash, so the result is the same whatever
the partitioning, the worker count or the table's row order.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def seeded_hash(keys: pd.Series, seed: int) -> np.ndarray:
    """A stable uint64 per key (blake2b, independent of Python's hash randomisation and of pandas)."""
    prefix = f"{seed}:".encode()
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + str(k).encode("utf-8"), digest_size=8).digest(), "big")
         for k in keys),
        dtype=np.uint64, count=len(keys))


# Rows ranked just after dev are written to reserve files: when dev rows are lost while decoding
# (unreadable_audio, beyond_end, which only decoding can tell), the best-ranked surviving reserve
# rows take their places, so dev still holds dev_size rows; the other reserve rows join train.
RESERVE = "_reserve"


def hash_rank(ids: pd.Series, seed: int) -> pd.Series:
    """0-based rank of each id by its seeded hash (ties, practically impossible, broken by id)."""
    h = pd.Series(seeded_hash(ids, seed), index=ids.index)
    order = pd.DataFrame({"h": h, "id": ids.astype(str)}).sort_values(["h", "id"], kind="stable")
    rank = pd.Series(0, index=ids.index, dtype=np.int64)
    rank.loc[order.index] = np.arange(len(order), dtype=np.int64)
    return rank


def assign_splits(ids: pd.Series, seed: int, dev_size: int) -> tuple[pd.Series, pd.Series]:
    """(split, rank): 'dev' for the ``dev_size`` ids with the smallest seeded hash, ``RESERVE`` for
    the next ``dev_size``, 'train' for the rest."""
    rank = hash_rank(ids, seed)
    split = pd.Series("train", index=ids.index, dtype=object)
    split[rank < 2 * dev_size] = RESERVE
    split[rank < dev_size] = "dev"
    return split, rank


def promote_reserve(written_reserve: pd.Series, missing: int) -> set:
    """Ids (index: id, values: rank) of the reserve rows that move to dev: the ``missing`` best ranked."""
    return set(written_reserve.sort_values(kind="stable").index[:max(0, missing)])
