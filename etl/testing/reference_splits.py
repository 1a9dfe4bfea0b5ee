"""``assign``: the split rules of ``curate.splits`` applied to one in-memory frame of rows, with the
budget cuts. Only the reference planner (``testing.reference``) and the tests use it; a build places
rows on the cluster (``planning``), and the equality tests check both give the same splits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..curate.duplicates import merged
from ..curate.splits import SplitPolicy, listed, seeded_hash, split_units, unit_roles


def assign(
    rows: pd.DataFrame,
    policy: SplitPolicy,
    test_keys=frozenset(),
    previous_dev=frozenset(),
    low_similarity_split: bool = False,
    merges: dict | None = None,
) -> pd.DataFrame:
    """Place the rows that passed the checks (and, with ``low_similarity_split``, those whose only
    fault is ``low_similarity``: column ``reason``). ``rows`` has id, recording, duration, reason, and
    optionally ``recording_key`` (one key per file however the table spells it; default ``recording``)
    and ``speaker`` (None: no speaker). ``test_keys`` match ids, recordings and (by speaker) speakers.

    ``merges``: units that merge into another (``curate.duplicates.decide``: recordings sharing
    audio). Returns a frame on ``rows.index``: ``split`` (train/dev/test/low_similarity/RESERVE, or None when
    over budget), ``unit`` (the hashed key), ``order`` (position in hash order; dev, reserve and train
    are consecutive runs of it) and ``over_budget`` (the budget that excluded the row, else None).
    """
    out = pd.DataFrame(index=rows.index)
    unit = merged(split_units(rows, policy.by), merges or {})
    out["unit"] = unit.astype(object)
    out["split"] = pd.Series(None, index=rows.index, dtype=object)
    out["over_budget"] = pd.Series(None, index=rows.index, dtype=object)
    out["order"] = np.int64(-1)
    if rows.empty:
        return out

    ok = rows["reason"].isna()  # filters apply to test rows too
    test = ok & listed(rows, test_keys, policy.by)
    if policy.by != "segment":  # a test segment takes its whole recording (speaker) along
        test = ok & unit.isin(set(unit[test]))
    out.loc[test, "split"] = "test"
    low = rows["reason"].eq("low_similarity").fillna(False).astype(bool) & ~test
    if low_similarity_split:
        out.loc[low, "split"] = "low_similarity"
    pool = out["split"].isna() & ok

    # Units in order: the previous build's dev units first (dev stays dev when rows are added),
    # then by seeded hash. One entry per unit with its rows and seconds.
    keys = unit[pool]
    codes, uniques = pd.factorize(
        keys, sort=False, use_na_sentinel=False
    )  # arrays: 1M rows in < 1 s; a null key is a unit too
    n = len(uniques)
    units = pd.DataFrame(
        {
            "unit": np.asarray(uniques, dtype=object),
            "rows": np.bincount(codes, minlength=n),
            "seconds": np.bincount(
                codes, weights=rows.loc[pool, "duration"].to_numpy(float), minlength=n
            ),
            "prev": np.bincount(
                codes, weights=rows.loc[pool, "id"].isin(previous_dev).to_numpy(float), minlength=n
            )
            > 0,
            "code": np.arange(n),
        }
    )
    units["hash"] = seeded_hash(units["unit"], policy.seed)
    units = units.sort_values(
        ["prev", "hash", "unit"], ascending=[False, True, True], kind="stable"
    )
    units = units.reset_index(drop=True)

    units["split"] = unit_roles(units, policy)

    fixed_rows = out["split"].notna() | (
        pool & unit.isin(set(units.loc[units["split"] == "dev", "unit"]))
    )
    units["over_budget"] = budget_cuts(
        units, policy, lambda: float(policy.estimated_bytes(rows.loc[fixed_rows, "duration"]).sum())
    )  # test, low_similarity and dev rows' bytes
    units.loc[units["over_budget"].notna(), "split"] = None

    pos = np.empty(n, dtype=np.int64)  # code -> position in order
    pos[units["code"].to_numpy()] = np.arange(n, dtype=np.int64)
    row_pos = pos[codes]
    out.loc[pool, "split"] = units["split"].to_numpy(object)[row_pos]
    out.loc[pool, "over_budget"] = units["over_budget"].to_numpy(object)[row_pos]
    out.loc[pool, "order"] = row_pos
    return out


def budget_cuts(units: pd.DataFrame, policy: SplitPolicy, fixed_bytes) -> pd.Series:
    """The budget that excludes each unit (None: within budget). ``units`` in hash order with split,
    rows, seconds; the budgets cut the train candidates (reserve first, then train) as a prefix of
    that order. ``fixed_bytes()``: the estimated bytes of the rows no budget cuts (test, dev...)."""
    cand = units["split"] != "dev"
    over_budget = pd.Series(None, index=units.index, dtype=object)
    if policy.train_hours is not None:
        over = (units.loc[cand, "seconds"].cumsum() > policy.train_hours * 3600).cummax()
        over_budget[over[over].index] = f"budget.train_hours {policy.train_hours:g} h reached"
    if policy.total_bytes is not None:
        unit_bytes = policy.estimated_bytes(units["seconds"], units["rows"])
        over = ((unit_bytes[cand].cumsum() + fixed_bytes()) > policy.total_bytes).cummax()
        fresh = over[over].index.difference(over_budget.index[over_budget.notna()])
        over_budget[fresh] = f"budget.total_gb {policy.total_bytes / 1e9:g} GB reached"
    return over_budget
