"""The duplicate-audio policy over matched pairs: the later copy's rows on audio the first copy's kept
rows hold are ``duplicate_audio`` (detail: the other recording, row, offset), the rest of a copy is
kept, and recordings that share audio become one split unit."""

from __future__ import annotations

import pandas as pd

from etl.curate.duplicates import merged_units, reject_duplicate_audio
from etl.planning.audio_matches import MATCH_COLUMNS


def _rows(spec: list[tuple[str, float, float]]) -> pd.DataFrame:
    """Rows (recording, start, end) in input order, all kept."""
    return pd.DataFrame(
        [
            {"id": f"{r}-{i}", "recording": r, "start": s, "end": e, "row": i}
            for i, (r, s, e) in enumerate(spec)
        ]
    ).assign(reason=None, detail=None)


def _pairs(*rows) -> pd.DataFrame:
    """(a, b, offset, start_a, end_a): audio at t in a is at t + offset in b."""
    return pd.DataFrame([(*r, r[4] - r[3], 100) for r in rows], columns=MATCH_COLUMNS)


# "orig" 0-30 s in 5-s rows; "reup" is a 7-s intro then orig (offset +7)
ORIG = [("orig", t, t + 5.0) for t in range(0, 30, 5)]
REUP = [("reup", 0.0, 5.0)] + [("reup", t + 7.0, t + 12.0) for t in range(0, 30, 5)]
PAIR = ("orig", "reup", 7.0, 0.0, 30.0)


def test_the_later_copy_is_rejected_where_the_first_holds_the_audio_and_its_intro_is_kept():
    df = _rows(ORIG + REUP)
    reject_duplicate_audio(df, _pairs(PAIR), 0.5)
    assert df[df["recording"] == "orig"]["reason"].isna().all()
    reup = df[df["recording"] == "reup"]
    assert reup["reason"].isna().tolist() == [True] + [False] * 6  # the intro only
    assert set(reup["reason"].dropna()) == {"duplicate_audio"}
    assert reup["detail"].iloc[1] == (
        "the audio of orig row 0 (orig-0), at offset +7.00 s (100% of the clip)"
    )
    assert df["reason"].notna().sum() + df["reason"].isna().sum() == len(df)  # every row, once


def test_the_first_copy_is_the_first_in_input_order_either_way_round():
    df = _rows(REUP + ORIG)  # the re-upload comes first: the original's rows are the copies
    reject_duplicate_audio(df, _pairs(PAIR), 0.5)
    assert df[df["recording"] == "reup"]["reason"].isna().all()
    orig = df[df["recording"] == "orig"]
    assert (orig["reason"] == "duplicate_audio").all()
    assert orig["detail"].iloc[0] == (
        "the audio of reup row 1 (reup-1), at offset -7.00 s (100% of the clip)"
    )


def test_the_share_decides_and_null_only_reports():
    # the copy's row 2-7 s falls half on the first copy's only row 0-5 s (offset 0)
    spec = [("a", 0.0, 5.0), ("b", 2.5, 7.5)]
    pairs = _pairs(("a", "b", 0.0, 0.0, 30.0))
    for share, rejected in ((0.5, True), (0.6, False), (None, False)):
        df = _rows(spec)
        reject_duplicate_audio(df, pairs, share)
        assert (df["reason"].iloc[1] == "duplicate_audio") is rejected, share
        assert df["reason"].iloc[0] is None


def test_audio_the_first_copy_does_not_keep_is_kept_in_the_copy():
    df = _rows(ORIG + REUP)
    df.loc[0, "reason"] = "too_short"  # orig 0-5 s is not kept: reup 7-12 s holds it alone
    reject_duplicate_audio(df, _pairs(PAIR), 0.5)
    reup = df[df["recording"] == "reup"]
    assert reup["reason"].isna().tolist() == [True, True] + [False] * 5


def test_outside_the_shared_part_a_copy_is_kept():
    """b shares a's 10-20 s only (at b's 5-15 s); b's other rows map onto other audio of a."""
    spec = [("a", t, t + 5.0) for t in range(0, 40, 5)] + [
        ("b", t, t + 5.0) for t in range(0, 30, 5)
    ]
    df = _rows(spec)
    reject_duplicate_audio(df, _pairs(("a", "b", -5.0, 10.0, 20.0)), 0.5)
    b = df[df["recording"] == "b"]
    assert b["reason"].notna().tolist() == [False, True, True, False, False, False]


def test_a_third_copy_is_compared_with_the_rows_still_kept():
    spec = [("a", 0.0, 5.0), ("b", 0.0, 5.0), ("b", 5.0, 10.0), ("c", 0.0, 5.0), ("c", 5.0, 10.0)]
    pairs = _pairs(
        ("a", "b", 0.0, 0.0, 30.0), ("a", "c", 0.0, 0.0, 30.0), ("b", "c", 0.0, 0.0, 30.0)
    )
    df = _rows(spec)
    reject_duplicate_audio(df, pairs, 0.5)
    assert df["reason"].notna().tolist() == [False, True, False, True, True]
    assert df["detail"].iloc[3].startswith("the audio of a row 0")
    assert df["detail"].iloc[4].startswith("the audio of b row 2")


def test_recordings_that_share_audio_become_one_unit_named_by_the_first():
    rows = pd.DataFrame(
        {
            "recording": ["a", "b", "c", "d", "e", "d"],
            "unit": ["s1", "s2", "s3", "s4", "s5", "s6"],  # by speaker: d has two
            "row": [0, 1, 2, 3, 4, 5],
        }
    )
    pairs = _pairs(("c", "d", 0.0, 0.0, 30.0), ("b", "c", 0.0, 0.0, 30.0))
    assert merged_units(rows, pairs) == {"s3": "s2", "s4": "s2", "s6": "s2"}
    assert merged_units(rows, _pairs(("a", "x", 0.0, 0.0, 30.0))) == {}  # x has no rows
