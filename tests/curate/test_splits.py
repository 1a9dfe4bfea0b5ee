"""Split assignment and budgets as pure functions (no Dask, no audio)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etl.curate import splits
from etl.curate.splits import RESERVE, SplitPolicy, promote_reserve, read_id_list
from etl.testing.reference_splits import assign


def _rows(n: int = 1000, recordings: int = 40, seed: int = 0, prefix: str = "s") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": [f"{prefix}{i:05d}" for i in range(n)],
            "recording": [f"rec{int(r):03d}" for r in rng.integers(0, recordings, n)],
            "duration": rng.uniform(2, 15, n),
            "reason": pd.Series([None] * n, dtype=object),
        }
    )


def _splits(placed: pd.DataFrame, rows: pd.DataFrame) -> dict:
    return dict(zip(rows["id"], placed["split"]))


def test_same_places_whatever_the_row_order_or_partitioning():
    rows = _rows()
    policy = SplitPolicy(seed=3, dev_size=50)
    whole = _splits(assign(rows, policy), rows)
    shuffled = rows.sample(frac=1, random_state=1)
    assert _splits(assign(shuffled, policy), shuffled) == whole
    assert sum(v == "dev" for v in whole.values()) == 50
    assert sum(v == RESERVE for v in whole.values()) == 50
    other = _splits(assign(rows, SplitPolicy(seed=4, dev_size=50)), rows)
    assert {k for k, v in other.items() if v == "dev"} != {
        k for k, v in whole.items() if v == "dev"
    }


def test_adding_ten_percent_rows_keeps_every_old_dev_row_in_dev():
    old = _rows(1000)
    policy = SplitPolicy(seed=0, dev_size=100)
    old_dev = {i for i, s in _splits(assign(old, policy), old).items() if s == "dev"}
    grown = pd.concat([old, _rows(100, seed=9, prefix="new")], ignore_index=True)
    # without memory of the previous dev, new rows with small hashes push old ones out ...
    fresh = {i for i, s in _splits(assign(grown, policy), grown).items() if s == "dev"}
    assert old_dev - fresh
    # ... with it (what a rebuild into the same output does), all of them stay
    kept = {
        i
        for i, s in _splits(assign(grown, policy, previous_dev=old_dev), grown).items()
        if s == "dev"
    }
    assert kept == old_dev


def test_by_recording_never_shares_a_recording_between_splits():
    rows = _rows(2000, recordings=60)
    test_keys = {
        "rec001",
        rows["id"][5],
    }  # a recording id and a segment id (pulls its recording along)
    placed = assign(
        rows, SplitPolicy(seed=1, by="recording", dev_size=200, train_hours=2.0), test_keys
    )
    split = placed["split"].where(placed["split"] != RESERVE, "train")
    per_rec = (
        pd.DataFrame({"rec": rows["recording"], "split": split})
        .dropna()
        .groupby("rec")["split"]
        .nunique()
    )
    assert per_rec.max() == 1
    assert set(rows.loc[split == "test", "recording"]) == {"rec001", rows["recording"][5]}
    dev = rows[split == "dev"]
    assert len(dev) >= 200 and dev.groupby("recording").ngroups < 60
    # budget cut in whole recordings too: over-budget rows' recordings hold no train row
    over = placed["over_budget"].notna()
    assert over.any() and not set(rows.loc[over, "recording"]) & set(
        rows.loc[split == "train", "recording"]
    )


def test_dev_hours_takes_units_until_the_hours_are_reached():
    rows = _rows()
    placed = assign(rows, SplitPolicy(seed=0, dev_hours=0.5, dev_size=999))
    dev = rows.loc[placed["split"] == "dev"].assign(order=placed["order"]).sort_values("order")
    assert dev["duration"].sum() >= 1800 > dev["duration"].iloc[:-1].sum()


def test_budgets_cut_train_as_a_prefix_of_the_hash_order():
    rows = _rows()
    placed = assign(rows, SplitPolicy(seed=0, dev_size=20, train_hours=1.0))
    train = placed["split"].isin(["train", RESERVE])
    assert rows.loc[train, "duration"].sum() <= 3600
    over = placed["over_budget"].notna()
    assert over.any() and placed.loc[over, "order"].min() > placed.loc[train, "order"].max()
    assert (placed.loc[over, "over_budget"] == "budget.train_hours 1 h reached").all()
    assert not (placed["split"].eq("dev") & over).any()  # dev is never cut by the budget

    bps = 16000 * 2 * 0.65
    budget = 50e6
    placed = assign(
        rows, SplitPolicy(seed=0, dev_size=20, total_bytes=budget, bytes_per_second=bps)
    )
    kept = placed["split"].notna()
    est = (rows.loc[kept, "duration"] * bps + 100).sum()
    nxt = rows.loc[placed["over_budget"].notna()].assign(o=placed["order"]).sort_values("o").iloc[0]
    assert est <= budget < est + nxt["duration"] * bps + 100


def test_test_ids_and_low_similarity_split():
    rows = _rows(200)
    rows.loc[:9, "reason"] = "low_similarity"
    rows.loc[10, "reason"] = "too_long"
    test_keys = {rows["id"][20], rows["id"][3]}  # a low-similarity row is never test
    placed = assign(rows, SplitPolicy(dev_size=10), test_keys, low_similarity_split=True)
    assert list(placed["split"][:10]) == ["low_similarity"] * 10
    assert pd.isna(placed["split"][10])
    assert placed["split"][20] == "test"
    dropped = assign(rows, SplitPolicy(dev_size=10), test_keys, low_similarity_split=False)
    assert dropped["split"][:11].isna().all()


def test_reserve_promotes_whole_units_in_order():
    written = pd.DataFrame(
        {
            "id": list("abcde"),
            "unit": ["r1", "r1", "r2", "r3", "r3"],
            "order": [5, 5, 3, 9, 9],
            "measure": [1.0] * 5,
        }
    )
    assert promote_reserve(written, 1) == {"c"}
    assert promote_reserve(written, 2) == {"a", "b", "c"}
    assert promote_reserve(written, 0) == set()


@pytest.mark.parametrize(
    "text, ids",
    [
        ("a\n b \n\n# reviewed\nc  # bad audio\n", {"a", "b", "c"}),
        ("\ufeffx\r\ny\r\n", {"x", "y"}),
    ],
)
def test_id_lists(text, ids):
    assert read_id_list(text) == ids


def test_id_list_lines_give_back_ids_holding_hash_spaces_quotes_and_line_breaks_exactly():
    ids = [
        "Episode #12",
        "Épisode #3 (live)",
        "a b",
        '"quoted"',
        "x\u2028y",
        "new\nline",
        "plain",
        "a#b",
    ]
    text = (
        "# header\n"
        + "".join(splits.id_list_line(i, "why #1") for i in ids)
        + "".join(splits.id_list_line(i) for i in ids)
    )
    assert read_id_list(text) == set(ids)
    assert splits.id_list_line("plain", "why") == "plain  # why\n"  # plain ids stay unquoted
    assert read_id_list('"unterminated  # x\n') == {'"unterminated'}  # not JSON: the old rule


def test_by_speaker_no_speaker_is_in_two_splits_and_rows_without_one_go_by_recording():
    rows = _rows(2000, recordings=200, seed=3)
    rng = np.random.default_rng(3)
    speakers = pd.Series([f"spk{int(k)}" for k in rng.integers(0, 60, len(rows))], dtype=object)
    speakers[rng.random(len(rows)) < 0.1] = None  # some turns unlabelled
    rows["speaker"] = speakers
    placed = assign(rows, SplitPolicy(seed=2, by="speaker", dev_size=150), {"spk7"})
    both = rows.assign(split=placed["split"])
    assert (both.dropna(subset=["speaker"]).groupby("speaker")["split"].nunique() == 1).all()
    assert set(both.loc[both["split"] == "test", "speaker"]) == {"spk7"}
    unlabelled = both[both["speaker"].isna()]
    assert (
        unlabelled.groupby("recording")["split"].nunique() == 1
    ).all()  # placed by their recording
    assert {"dev", "train"} <= set(both["split"])


def test_by_recording_one_file_spelled_two_ways_is_one_unit():
    rows = _rows(400, recordings=30, seed=5)
    rows["recording_key"] = rows["recording"]
    rows.loc[rows.index % 2 == 0, "recording"] = (
        rows["recording"] + ".mp3"
    )  # the same file, named by its file name
    placed = assign(rows, SplitPolicy(seed=1, by="recording", dev_size=40))
    assert (
        rows.assign(split=placed["split"]).groupby("recording_key")["split"].nunique() == 1
    ).all()


def test_seeded_hash_is_blake2b_of_seed_and_key_whatever_the_key_container():
    """The hash values decide every split: the first 8 bytes of blake2b("{seed}:{key}"), as when the
    golden files were made, for text, Arrow-backed and repeated keys, numbers and missing keys."""
    import hashlib

    def spec(k, seed):
        return int.from_bytes(
            hashlib.blake2b(f"{seed}:{k}".encode(), digest_size=8).digest(), "big"
        )

    keys = ["seg1", "rec/ä b.wav", "seg1", "", "seg1", "x"] * 3
    for given in (
        pd.Series(keys, dtype=object),
        pd.Series(keys, dtype="string[pyarrow]"),
        keys,
        np.array(keys),
    ):
        assert splits.seeded_hash(given, 7).tolist() == [spec(k, 7) for k in keys]
    odd = pd.Series([None, float("nan"), 3, 2.5, "a"], dtype=object)
    assert splits.seeded_hash(odd, "sample:1").tolist() == [spec(k, "sample:1") for k in odd]
    assert splits.seeded_hash(pd.Series([], dtype=object), 0).dtype == np.uint64
