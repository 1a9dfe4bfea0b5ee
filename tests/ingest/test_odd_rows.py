"""Missing keys in every reader: a null, empty or NaN id is given the id template's id (as in a
table without ids); a missing recording, timestamp or text is rejected with its reason. No row stops
the build; every row is accounted for; no invisible character reaches ``text``."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from etl.config import load_config
from etl.testing.reference import plan_rows, read_checked_table

GOOD = {"recording": "a", "start": 0.5, "end": 1.5, "text": "dobar\u200b dan\x00"}
# (row, expected id or None, expected reason or None); ids None/""/NaN -> the template
ROWS = [
    ({"id": "u1", **GOOD}, "u1", None),
    ({"id": None, **GOOD, "start": 2.0, "end": 3.0}, "a_2.0-3.0", None),
    ({"id": "", **GOOD, "start": 4.0, "end": 5.0}, "a_4.0-5.0", None),
    ({"id": math.nan, **GOOD, "start": 6.0, "end": 7.0}, "a_6.0-7.0", None),
    ({"id": "u5", **GOOD, "recording": None}, None, "invalid_recording_id"),
    ({"id": "u6", **GOOD, "start": None}, None, "bad_timestamps"),
    ({"id": "u7", **GOOD, "end": math.nan}, None, "bad_timestamps"),
    ({"id": "u8", **GOOD, "text": None}, None, "empty_text"),
    ({"id": "u9", **GOOD, "text": "\ufeff\u00ad\u200e"}, None, "empty_text"),
]
FORMATS = ["csv", "tsv", "json", "jsonl", "parquet", "kaldi"]


def _cell(v):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _write(folder, fmt: str) -> str:
    rows = [r for r, _, _ in ROWS]
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        lines = [sep.join(["id", "recording", "start", "end", "text"])]
        lines += [
            sep.join(_cell(r[k]) for k in ("id", "recording", "start", "end", "text")) for r in rows
        ]
        (folder / f"t.{fmt}").write_text(
            "\ufeff" + "\n".join(lines) + "\n", encoding="utf-8"
        )  # with a BOM
        return str(folder / f"t.{fmt}")
    if fmt in ("json", "jsonl"):
        doc = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in rows
        ]
        body = json.dumps(doc) if fmt == "json" else "".join(json.dumps(r) + "\n" for r in doc)
        (folder / f"t.{fmt}").write_text(body, encoding="utf-8")
        return str(folder / f"t.{fmt}")
    if fmt == "parquet":
        pd.DataFrame(rows).to_parquet(folder / "t.parquet")
        return str(folder / "t.parquet")
    d = folder / "data"  # Kaldi: a token cannot be missing; an empty field is
    d.mkdir()
    (d / "segments").write_text(
        "".join(
            f"{_cell(r['id']) or 'x' + str(i)} {_cell(r['recording'])} {_cell(r['start'])} "
            f"{_cell(r['end'])}\n"
            for i, r in enumerate(rows)
        ),
        encoding="utf-8",
    )
    (d / "text").write_text(
        "".join(
            f"{_cell(r['id']) or 'x' + str(i)} {_cell(r['text'])}\n" for i, r in enumerate(rows)
        ),
        encoding="utf-8",
    )
    return str(d)


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_keys_in_every_format_are_repaired_or_rejected_never_fatal(tmp_path, fmt):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a.wav").write_bytes(b"")
    cfg = load_config(
        None,
        [
            f"input.alignment={_write(tmp_path, fmt)}",
            f"input.audio={tmp_path / 'audio'}",
            f"output.path={tmp_path / 'out'}",
            "splits.dev_size=1",
        ],
    )
    checked = read_checked_table(cfg)
    df = plan_rows(cfg, checked.frame).frame
    assert len(df) == len(ROWS) and (df["split"].notna() ^ df["reason"].notna()).all()
    for (row, want_id, want_reason), (_, got) in zip(ROWS, df.iterrows()):
        if fmt == "kaldi" and row["recording"] is None:
            want_reason = (
                "bad_timestamps"  # the line has one field less: the start moves into the recording
            )
        assert got["reason"] == want_reason, (fmt, row)
        if want_id is not None and fmt != "kaldi":
            assert got["id"] == want_id and got["split"] is not None
    kept = df[df["split"].notna()]
    assert (kept["text"] == "dobar dan").all()
    assert checked.ids_from_template == (0 if fmt == "kaldi" else 3)


def test_report_lists_no_invisible_character_in_any_split(built):
    report = built["report"]
    assert report["invisible_characters"] == {s: {} for s in report["splits"]}
    assert report["ids_from_template"] == 0
    vocab = json.loads((built["out"] / "vocab.json").read_text(encoding="utf-8"))
    assert not [c for c in vocab if len(c) == 1 and not c.isprintable()]
