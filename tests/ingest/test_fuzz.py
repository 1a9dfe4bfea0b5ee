"""Property-based fuzzing of reading, checking and planning (no decoding, no cluster).

Random alignment tables — random types per cell, nulls, empty strings, huge and negative numbers,
NaN/inf, long texts, any Unicode including controls and (where the format can carry them) lone
surrogates, duplicate and colliding ids — written in every format. Whatever the table:
  * the only exception is a one-line user error (UserError);
  * rows_in = kept + rejected, every row in exactly one of them;
  * no control or format character (other than ZWJ/ZWNJ, kept on purpose) in ``text``.

`make test` runs the seeded short profile; `make fuzz` (ETL_FUZZ_PROFILE=long) a longer random one.
"""

from __future__ import annotations

import csv
import json
import os
import unicodedata
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from etl.config import load_config
from etl.errors import UserError
from etl.ingest.text import KEPT_FORMAT_CHARACTERS, normalize
from etl.testing.reference import plan_rows, read_checked_table

settings.register_profile(
    "short",
    max_examples=8,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
settings.register_profile(
    "long",
    max_examples=300,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)
PROFILE = settings.get_profile(os.environ.get("ETL_FUZZ_PROFILE", "short"))

COLUMNS = ("id", "recording", "start", "end", "text", "hyp")
RECORDINGS = ("a", "b", " a ", "a.wav", "../a", "/a", "", "missing")


# ------------------------------------------------------------------ strategies


def texts(surrogates: bool = False, exclude: str = "", max_size: int = 40):
    chars = st.characters(
        exclude_categories=() if surrogates else ("Cs",), exclude_characters=exclude
    )
    interesting = st.sampled_from(
        [
            "\x00",
            "\ufeff",
            "\u200b",
            "\u00ad",
            "\u2060",
            "\u200e",
            "\u200f",
            "\u202e",
            "\u2066",
            "\u200c",
            "\u200d",
            "\x85",
            "\u2028",
            "１２３",
            "ﬁ",
            " ",
            "\t",
            "NA",
            "null",
            "e\u0301",
            "!",
            "İ",
            "ẞ",
        ]
    ).filter(lambda s: not set(s) & set(exclude))
    return st.lists(st.one_of(chars, interesting), max_size=max_size).map("".join)


NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=30),
)


def cell(kind: str, surrogates: bool, exclude: str):
    common = st.one_of(st.none(), st.just(""), st.just("  "), texts(surrogates, exclude), NUMBERS)
    if kind == "recording":
        return st.one_of(st.sampled_from(RECORDINGS), common)
    if kind in ("start", "end"):
        return st.one_of(
            st.floats(min_value=0, max_value=30),
            st.sampled_from(["1.5", "00:00:01,500", "1:2:3:4"]),
            common,
        )
    if kind == "id":
        return st.one_of(st.sampled_from(["dup", "a_0.5-1.5", "007"]), common)
    return common


@st.composite
def good_row(draw, surrogates: bool, exclude: str):
    """A row that is kept unless its (random) id or text spoils it: the placement path runs too."""
    start = draw(st.floats(min_value=0, max_value=20))
    return {
        "id": draw(cell("id", surrogates, exclude)),
        "recording": draw(st.sampled_from(["a", "b", " a "])),
        "start": start,
        "end": start + draw(st.floats(min_value=0.1, max_value=5)),
        "text": draw(st.one_of(st.just("dobar dan"), texts(surrogates, exclude))),
        "hyp": "dobar dan",
    }


def row_of(surrogates: bool, exclude: str):
    return st.one_of(
        good_row(surrogates, exclude),
        st.fixed_dictionaries({c: cell(c, surrogates, exclude) for c in COLUMNS}),
    )


@st.composite
def json_records(draw, surrogates: bool = True):
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        row = draw(row_of(surrogates, ""))
        if draw(st.booleans()):
            del row["hyp"]
        if draw(st.integers(0, 9)) == 0:  # JSON cells of any type: lists, objects, booleans
            row[draw(st.sampled_from(COLUMNS))] = draw(
                st.one_of(
                    st.booleans(),
                    st.lists(st.integers(), max_size=2),
                    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
                )
            )
        if draw(st.integers(0, 19)) == 0:
            row["text"] = "x" * 100_000 + "\x00"  # a very long transcript
        rows.append(row)
    return rows


def _finite(rows):
    """JSON has no NaN/Infinity: write those as strings (what a careless exporter does)."""
    fix = lambda v: (  # noqa: E731
        str(v) if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))) else v
    )
    return [{k: fix(v) for k, v in r.items()} for r in rows]


def write_json(folder, rows, lines: bool) -> str:
    rows = _finite(rows)
    if lines:
        body = "".join(json.dumps(r) + "\n" for r in rows)
        (folder / "t.jsonl").write_text(body, encoding="utf-8")
        return str(folder / "t.jsonl")
    (folder / "t.json").write_text(
        "\ufeff" + json.dumps(rows), encoding="utf-8"
    )  # a BOM, as Windows tools write
    return str(folder / "t.json")


def write_delimited(folder, rows, sep: str) -> str:
    name = folder / ("t.csv" if sep == "," else "t.tsv")
    with open(name, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(
            f,
            delimiter=sep,
            quoting=csv.QUOTE_MINIMAL if sep == "," else csv.QUOTE_NONE,
            escapechar=None if sep == "," else "\\",
            lineterminator="\n",
        )
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in COLUMNS])
    return str(name)


@st.composite
def delimited_records(draw, sep: str):
    # TSV (no quoting) cannot carry a tab, a newline or a backslash; CSV cannot carry a NUL (csv module)
    exclude = "\x00\r" if sep == "," else '\t\n\r\\\x00"\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029'
    return draw(st.lists(row_of(False, exclude), max_size=12))


@st.composite
def parquet_table(draw):
    n = draw(st.integers(0, 12))
    cols = {}
    for c in COLUMNS:
        typ = draw(st.sampled_from(["string", "int", "float", "bool"]))
        if typ == "string":
            vals = [
                draw(
                    st.one_of(
                        st.none(), texts(exclude="", max_size=20), st.sampled_from(RECORDINGS)
                    )
                )
                for _ in range(n)
            ]
            cols[c] = pa.array(vals, pa.string())
        elif typ == "int":
            cols[c] = pa.array(
                [draw(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))) for _ in range(n)],
                pa.int64(),
            )
        elif typ == "float":
            cols[c] = pa.array(
                [draw(st.one_of(st.none(), st.floats())) for _ in range(n)], pa.float64()
            )
        else:
            cols[c] = pa.array(
                [draw(st.one_of(st.none(), st.booleans())) for _ in range(n)], pa.bool_()
            )
    return pa.table(cols)


TOKEN = (
    texts(exclude="", max_size=8)
    .map(lambda s: "".join(c for c in s if not c.isspace()))
    .filter(bool)
)


@st.composite
def kaldi_dir(draw):
    n = draw(st.integers(1, 12))
    ids = [draw(st.one_of(TOKEN, st.sampled_from(["dup", "u1"]))) for _ in range(n)]
    seg = [
        (
            i,
            draw(st.one_of(TOKEN, st.sampled_from(["a", "b"]))),
            draw(st.one_of(TOKEN, st.just("0.5"))),
            draw(st.one_of(TOKEN, st.just("1.5"), st.just(""))),
        )
        for i in ids
    ]
    text = [(i, draw(texts(exclude="\n\r"))) for i in ids if draw(st.booleans())]
    return seg, text


# ------------------------------------------------------------------ the properties


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz-audio")
    for name in ("a.wav", "b.flac"):
        (d / name).write_bytes(b"")  # planning lists the folder; nothing is decoded
    return str(d)


def check_properties(alignment: str, audio: str, n_rows: int, out: str, hyp: bool = True, fmt=None):
    overrides = [
        f"input.alignment={alignment}",
        f"input.audio={audio}",
        f"output.path={out}",
        "splits.dev_size=2",
        "filters.max_duration=10",
    ]
    if hyp:
        overrides.append("input.columns.hypothesis=hyp")
    cfg = load_config(None, overrides)
    if fmt:
        cfg = replace(cfg, input=replace(cfg.input, format=fmt))
    try:
        df, _ = read_checked_table(cfg)
        df = plan_rows(cfg, df).frame
    except UserError as e:  # a user error: one line, no traceback
        assert "\n" not in str(e) and str(e)
        event(f"user error: {str(e)[:300]}")  # --hypothesis-show-statistics
        return None
    assert len(df) == n_rows  # rows_in
    kept, rejected = df["split"].notna(), df["reason"].notna()
    assert (kept ^ rejected).all() and kept.sum() + rejected.sum() == n_rows
    bad = {
        c
        for t in df["text"]
        for c in t
        if unicodedata.category(c) in ("Cc", "Cf") and c not in KEPT_FORMAT_CHARACTERS
    }
    assert not bad, sorted(bad)
    assert df.loc[kept, "id"].map(lambda v: isinstance(v, str) and v != "").all()
    assert not df.loc[kept, "id"].duplicated().any()
    assert (df.loc[kept, "duration"] > 0).all()
    event(f"built: {int(kept.sum()) > 0} rows kept")
    return df


@pytest.mark.parametrize("lines", [False, True], ids=["json", "jsonl"])
def test_fuzz_json_tables(tmp_path_factory, audio, lines):
    @PROFILE
    @given(rows=json_records())
    def run(rows):
        folder = tmp_path_factory.mktemp("j")
        check_properties(
            write_json(folder, rows, lines),
            audio,
            len(rows),
            str(folder / "out"),
            hyp=any("hyp" in r for r in rows),
        )

    run()


@pytest.mark.parametrize("sep", [",", "\t"], ids=["csv", "tsv"])
def test_fuzz_delimited_tables(tmp_path_factory, audio, sep):
    @PROFILE
    @given(rows=delimited_records(sep))
    def run(rows):
        folder = tmp_path_factory.mktemp("d")
        check_properties(write_delimited(folder, rows, sep), audio, len(rows), str(folder / "out"))

    run()


def test_fuzz_parquet_tables(tmp_path_factory, audio):
    @PROFILE
    @given(t=parquet_table())
    def run(t):
        folder = tmp_path_factory.mktemp("p")
        pq.write_table(t, folder / "t.parquet")
        check_properties(str(folder / "t.parquet"), audio, t.num_rows, str(folder / "out"))

    run()


def test_fuzz_kaldi_dirs(tmp_path_factory, audio):
    @PROFILE
    @given(d=kaldi_dir())
    def run(d):
        seg, text = d
        folder = tmp_path_factory.mktemp("k") / "data"
        folder.mkdir()
        (folder / "segments").write_text("".join(" ".join(s) + "\n" for s in seg), encoding="utf-8")
        (folder / "text").write_text("".join(f"{i} {t}\n" for i, t in text), encoding="utf-8")
        check_properties(str(folder), audio, len(seg), str(folder.parent / "out"), hyp=False)

    run()


@PROFILE
@given(
    t=texts(surrogates=True, max_size=60),
    lowercase=st.booleans(),
    punct=st.booleans(),
    form=st.sampled_from(["NFC", "NFKC"]),
)
def test_normalize_is_idempotent_and_leaves_no_invisible_character(t, lowercase, punct, form):
    once = normalize(t, lowercase, punct, form)
    assert normalize(once, lowercase, punct, form) == once
    assert not {
        c
        for c in once
        if unicodedata.category(c) in ("Cc", "Cf", "Cs") and c not in KEPT_FORMAT_CHARACTERS
    }
    assert once == once.strip() and "  " not in once
