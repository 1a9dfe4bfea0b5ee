"""The alignment-table readers, the per-row checks and recording-id resolution.

Everything here runs on the client with Dask's threaded scheduler: no cluster, no audio decoding.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import replace

import fsspec
import pandas as pd
import pytest

from etl.config import FiltersConfig, InputConfig, TextConfig, load_config
from etl.errors import UserError
from etl.ingest import table
from etl.ingest.recordings import list_audio, resolve
from etl.ingest.resolved import resolve_input
from etl.ingest.rows import check_rows, mark_duplicates, speaker_template
from etl.ingest.wav_scp import UnreadPipe
from etl.testing.reference import read_checked_table

from ..conftest import config_file

# The same 4-row table, written in every format. Row 0 has an id that looks like a number and row 1
# a transcript that pandas would read as missing: both must survive as strings.
ROWS = [
    {
        "id": "007",
        "recording": "rec1",
        "start": 0.5,
        "end": 2.0,
        "text": "Dobar dan, svima!",
        "hypothesis": "dobar dan svima",
    },
    {"id": "u2", "recording": "rec1", "start": 3.0, "end": 4.5, "text": "NA", "hypothesis": "na"},
    {
        "id": "u3",
        "recording": "rec2",
        "start": 0.0,
        "end": 1.0,
        "text": "Čestitam.",
        "hypothesis": "čestitam",
    },
    {
        "id": "u4",
        "recording": "rec2",
        "start": 1.5,
        "end": 3.0,
        "text": "Hvala lijepa.",
        "hypothesis": "hvala lijepa",
    },
]
EXPECTED_TEXT = ["dobar dan svima", "na", "čestitam", "hvala lijepa"]

TEXT_CFG = TextConfig(lowercase=True, strip_punctuation=True)
NO_FILTERS = FiltersConfig(min_similarity=None, min_duration=None, max_duration=None)
TEMPLATE = "{recording}_{start:.1f}-{end:.1f}"


# ---------------------------------------------------------------- helpers


def _config(tmp_path, alignment: str, **input_extra):
    """A config file in tmp_path whose paths are relative to it; loaded without checking inputs."""
    doc = {"input": {"alignment": alignment, "audio": None, **input_extra}}
    return load_config(str(config_file(tmp_path, doc)), check_inputs=False)


def _write_table(folder, fmt: str, rows: list[dict]) -> str:
    """Write ``rows`` in ``fmt`` under ``folder``; return the path relative to ``folder``."""
    df = pd.DataFrame(rows)
    if fmt == "csv":
        df.to_csv(folder / "align.csv", index=False)
        return "align.csv"
    if fmt == "tsv":
        df.to_csv(folder / "align.tsv", index=False, sep="\t")
        return "align.tsv"
    if fmt == "json-records":
        (folder / "align.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        return "align.json"
    if fmt == "json-dict":
        doc = {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in rows}
        (folder / "align.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        return "align.json"
    if fmt == "jsonl":
        (folder / "align.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
        return "align.jsonl"
    if fmt == "parquet":
        df.to_parquet(folder / "align.parquet", index=False)
        return "align.parquet"
    if fmt == "kaldi":
        d = folder / "data"
        d.mkdir()
        (d / "segments").write_text(
            "".join(f"{r['id']} {r['recording']} {r['start']} {r['end']}\n" for r in rows),
            encoding="utf-8",
        )
        (d / "text").write_text("".join(f"{r['id']} {r['text']}\n" for r in rows), encoding="utf-8")
        recs = sorted({r["recording"] for r in rows})
        (d / "wav.scp").write_text(
            "".join(f"{rec} audio/{rec}.wav\n" for rec in recs), encoding="utf-8"
        )
        return "data"
    raise AssertionError(fmt)


def _canonical_rows(df: pd.DataFrame, with_hypothesis: bool) -> list[dict]:
    cols = ["row", "id", "source_id", "recording", "start", "end", "text_raw", "text"]
    if with_hypothesis:
        cols.append("hypothesis")
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
        for rec in df[cols].to_dict("records")
    ]


def _expected_rows(with_hypothesis: bool) -> list[dict]:
    out = []
    for i, r in enumerate(ROWS):
        e = {
            "row": i,
            "id": r["id"],
            "source_id": r["id"],
            "recording": r["recording"],
            "start": r["start"],
            "end": r["end"],
            "text_raw": r["text"],
            "text": EXPECTED_TEXT[i],
        }
        if with_hypothesis:
            e["hypothesis"] = r["hypothesis"]
        out.append(e)
    return out


def _canon(**cols) -> pd.DataFrame:
    """A canonical frame (what ``table.canonical`` produces) from column lists."""
    n = len(next(iter(cols.values())))
    base = {
        "id": [f"u{i}" for i in range(n)],
        "source_id": [None] * n,
        "recording": ["rec"] * n,
        "start": [0.0] * n,
        "end": [1.0] * n,
        "text_raw": ["word"] * n,
        "hypothesis": [None] * n,
    }
    base.update(cols)
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in base.items()})


def _check(df: pd.DataFrame, filters: dict | None = None) -> pd.DataFrame:
    return check_rows(
        df, TEXT_CFG, NO_FILTERS if filters is None else replace(NO_FILTERS, **filters), TEMPLATE
    )


# ---------------------------------------------------------------- every format, same rows


@pytest.mark.parametrize(
    "fmt", ["csv", "tsv", "json-records", "json-dict", "jsonl", "parquet", "kaldi"]
)
def test_every_table_format_gives_the_same_rows_in_input_order(tmp_path, fmt):
    rel = _write_table(tmp_path, fmt, ROWS)
    with_hyp = fmt != "kaldi"  # a Kaldi dir has no hypothesis
    cfg = _config(tmp_path, rel, columns={"hypothesis": "hypothesis" if with_hyp else None})

    df, has_id = read_checked_table(cfg)

    assert has_id is True
    assert _canonical_rows(df, with_hyp) == _expected_rows(with_hyp)
    assert df["row"].tolist() == [0, 1, 2, 3]
    assert df["reason"].isna().all(), df[["id", "reason", "detail"]]
    if not with_hyp:
        assert df["hypothesis"].isna().all()


def test_format_is_detected_from_the_extension_or_forced(tmp_path):
    assert table.detect_format(str(tmp_path / "a.csv")) == "csv"
    assert table.detect_format(str(tmp_path / "a.TSV")) == "tsv"
    assert table.detect_format(str(tmp_path / "a.jsonl.gz")) == "jsonl"
    assert table.detect_format(str(tmp_path / "a.ndjson")) == "jsonl"
    assert table.detect_format(str(tmp_path / "a.pq")) == "parquet"
    assert table.detect_format(str(tmp_path)) == "kaldi"  # a folder
    assert table.detect_format(str(tmp_path / "a.txt"), forced="tsv") == "tsv"
    with pytest.raises(UserError, match="input.format"):
        table.detect_format(str(tmp_path / "a.txt"))


def test_a_forced_format_reads_a_file_with_any_extension(tmp_path):
    (tmp_path / "align.txt").write_text(
        pd.DataFrame(ROWS).to_csv(index=False, sep="\t"), encoding="utf-8"
    )
    cfg = _config(tmp_path, "align.txt", format="tsv", columns={"hypothesis": "hypothesis"})
    df, _ = read_checked_table(cfg)
    assert _canonical_rows(df, True) == _expected_rows(True)


# ---------------------------------------------------------------- columns and ids


def test_columns_with_other_names_are_mapped(tmp_path):
    renamed = [
        {
            "file": r["recording"],
            "begin": r["start"],
            "stop": r["end"],
            "sentence": r["text"],
            "asr": r["hypothesis"],
            "id": r["id"],
        }
        for r in ROWS
    ]
    (tmp_path / "align.csv").write_text(pd.DataFrame(renamed).to_csv(index=False), encoding="utf-8")
    cfg = _config(
        tmp_path,
        "align.csv",
        columns={
            "recording": "file",
            "start": "begin",
            "end": "stop",
            "text": "sentence",
            "hypothesis": "asr",
        },
    )
    df, has_id = read_checked_table(cfg)
    assert has_id
    assert _canonical_rows(df, True) == _expected_rows(True)


def test_renamed_id_column_is_used(tmp_path):
    rows = [{"utt": r["id"], **{k: v for k, v in r.items() if k != "id"}} for r in ROWS]
    (tmp_path / "align.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    df, has_id = read_checked_table(_config(tmp_path, "align.jsonl", columns={"id": "utt"}))
    assert has_id
    assert df["id"].tolist() == df["source_id"].tolist() == [r["id"] for r in ROWS]


def test_json_keyed_by_id_with_a_renamed_id_column_uses_the_keys(tmp_path):
    rel = _write_table(tmp_path, "json-dict", ROWS)
    df, has_id = read_checked_table(_config(tmp_path, rel, columns={"id": "utt"}))
    assert has_id
    assert df["id"].tolist() == df["source_id"].tolist() == [r["id"] for r in ROWS]


def test_table_without_id_column_gets_ids_from_the_template(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "id"} for r in ROWS]
    (tmp_path / "align.csv").write_text(pd.DataFrame(rows).to_csv(index=False), encoding="utf-8")
    df, has_id = read_checked_table(_config(tmp_path, "align.csv"))
    assert has_id is False
    assert df["id"].tolist() == ["rec1_0.5-2.0", "rec1_3.0-4.5", "rec2_0.0-1.0", "rec2_1.5-3.0"]
    assert df["source_id"].map(lambda v: v is None).all()


def test_custom_id_template_is_used(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "id"} for r in ROWS]
    (tmp_path / "align.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    cfg = _config(tmp_path, "align.jsonl", id_template="{recording}-{start:08.3f}")
    df, _ = read_checked_table(cfg)
    assert df["id"].tolist() == ["rec1-0000.500", "rec1-0003.000", "rec2-0000.000", "rec2-0001.500"]


def test_id_template_may_name_the_speaker_and_a_row_without_one_formats_it_empty(tmp_path):
    rows = [
        {k: v for k, v in r.items() if k != "id"} | {"who": w}
        for r, w in zip(ROWS, ["ana", " ivo ", "", "ana"])
    ]
    (tmp_path / "align.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    named = _config(
        tmp_path,
        "align.jsonl",
        columns={"speaker": "who"},
        id_template="{speaker}/{recording}_{start}",
    )
    df, _ = read_checked_table(named)
    assert df["id"].tolist() == ["ana/rec1_0.5", "ivo/rec1_3.0", "/rec2_0.0", "ana/rec2_1.5"]
    # a table's speakers never reach the default id (the ids of tables are as they always were)
    df, _ = read_checked_table(_config(tmp_path, "align.jsonl", columns={"speaker": "who"}))
    assert df["id"].tolist() == ["rec1_0.5-2.0", "rec1_3.0-4.5", "rec2_0.0-1.0", "rec2_1.5-3.0"]


@pytest.mark.parametrize(
    "template, with_speaker",
    [
        (InputConfig().id_template, "{recording}_{speaker}_{start:.1f}-{end:.1f}"),
        ("{speaker}-{recording}-{start}", "{speaker}-{recording}-{start}"),  # names it: as is
        ("{recording!s}/{{x}}{start:08.3f}", "{recording!s}_{speaker}/{{x}}{start:08.3f}"),
        ("{start}-{end}", "{speaker}_{start}-{end}"),  # no recording: the speaker leads
    ],
)
def test_speaker_template_puts_the_speaker_after_the_recording(template, with_speaker):
    assert speaker_template(template) == with_speaker
    one = dict(recording="r", start=1.0, end=2.0)
    assert with_speaker.format(speaker="s", **one) != with_speaker.format(speaker="t", **one)


def test_id_column_set_to_null_ignores_the_tables_ids(tmp_path):
    rel = _write_table(tmp_path, "csv", ROWS)
    df, has_id = read_checked_table(_config(tmp_path, rel, columns={"id": None}))
    assert has_id is False
    assert df["id"].tolist()[0] == "rec1_0.5-2.0"
    assert df["source_id"].map(lambda v: v is None).all()


def test_table_id_is_kept_as_source_id(tmp_path):
    rel = _write_table(tmp_path, "jsonl", ROWS)
    df, has_id = read_checked_table(_config(tmp_path, rel))
    assert has_id
    assert df["source_id"].tolist() == ["007", "u2", "u3", "u4"]


def test_id_like_007_and_transcript_na_survive_as_strings_in_csv(tmp_path):
    (tmp_path / "align.csv").write_text(
        "id,recording,start,end,text\n007,rec1,0,1,NA\n0008,rec1,1,2,null\n", encoding="utf-8"
    )
    df, _ = read_checked_table(_config(tmp_path, "align.csv"))
    assert df["id"].tolist() == ["007", "0008"]
    assert df["source_id"].tolist() == ["007", "0008"]
    assert df["text_raw"].tolist() == ["NA", "null"]
    assert df["text"].tolist() == ["na", "null"]
    assert df["reason"].isna().all()


def test_id_like_007_and_transcript_na_survive_in_tsv_and_jsonl(tmp_path):
    (tmp_path / "align.tsv").write_text(
        "id\trecording\tstart\tend\ttext\n007\trec1\t0\t1\tNA\n", encoding="utf-8"
    )
    (tmp_path / "align.jsonl").write_text(
        '{"id": "007", "recording": "rec1", "start": 0, "end": 1, "text": "NA"}\n', encoding="utf-8"
    )
    for rel in ("align.tsv", "align.jsonl"):
        df, _ = read_checked_table(_config(tmp_path, rel))
        assert df["id"].tolist() == ["007"], rel
        assert df["text_raw"].tolist() == ["NA"], rel


def test_jsonl_integers_beyond_64_bits_are_that_rows_reject_or_its_exact_id(tmp_path, monkeypatch):
    """ujson refuses -1e20 written as an integer: that block is read by Python's json and only the
    row is rejected, naming the value; an id beyond 64 bits is kept digit for digit. A start that
    turns into a string past the sample is read too (each block keeps its own types)."""
    lines = ['{"id": "a", "recording": "r", "start": 0, "end": 1, "text": "x"}'] * 30
    lines[0] = '{"id": "a0", "recording": "r", "start": 0, "end": 1, "text": "x"}'
    lines += [
        '{"id": "neg", "recording": "r", "start": -99999999999999999999, "end": 2.0, "text": "y"}',
        '{"id": 99999999999999999999999, "recording": "r", "start": 1, "end": 2, "text": "z"}',
        '{"id": "s", "recording": "r", "start": "1.5", "end": 2, "text": "z"}',
    ]
    (tmp_path / "align.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(table, "JSONL_SAMPLE", 200)
    monkeypatch.setattr(table, "JSONL_BLOCK", 300)  # several blocks, the odd lines past the sample
    cfg = _config(tmp_path, "align.jsonl")
    assert table.read_raw(cfg.input.alignment, "jsonl").npartitions > 3
    df, _ = read_checked_table(cfg)
    assert len(df) == 33
    assert df["id"].tolist()[-3:] == ["neg", "99999999999999999999999", "s"]
    assert df["reason"].tolist()[-3:] == ["bad_timestamps", None, None]
    assert "start=-99999999999999999999" in df["detail"].iloc[-3]
    assert df["start"].tolist()[-2:] == [1.0, 1.5]
    import gzip  # a gzipped table: one block, read the same

    (tmp_path / "align.jsonl.gz").write_bytes(
        gzip.compress((tmp_path / "align.jsonl").read_bytes())
    )
    gz, _ = read_checked_table(_config(tmp_path, "align.jsonl.gz"))
    pd.testing.assert_frame_equal(gz[["id", "reason", "start"]], df[["id", "reason", "start"]])


def _jsonl_with_bad_lines(tmp_path, n: int, bad: dict) -> str:
    """``n`` good rows (id u<i>, recording r) as align.jsonl, with line i replaced by ``bad[i]`` (bytes;
    b"" is a blank line, which is no row); returns its name."""
    lines = [
        json.dumps(
            {"id": f"u{i}", "recording": "r", "start": i, "end": i + 0.5, "text": "x"}
        ).encode()
        for i in range(1, n + 1)
    ]
    for i, raw in bad.items():
        lines[i - 1] = raw
    (tmp_path / "align.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return "align.jsonl"


def test_a_malformed_jsonl_line_in_any_block_is_one_reject_naming_the_file_line(
    tmp_path, monkeypatch
):
    """A truncated line, a stray non-JSON line, a JSON line that is not an object and a line that is
    not UTF-8, in the first, middle and last of many blocks: each is one ``unreadable_alignment`` row
    whose id and detail name the file's line, worded as the NeMo reader words the same line; every
    other line is read, blank lines are no rows. Only the blocks holding one are read line by line."""
    from etl.ingest.formats import manifests

    bad = {
        3: b'{"id": "a", "start": 1.0,',
        4: b"",
        120: b"oops, a stray line",
        121: b"   ",
        230: b"[1, 2]",
        299: b'{"id": "u299", "text": "caf\xe9"}',
    }
    rel = _jsonl_with_bad_lines(tmp_path, 300, bad)
    monkeypatch.setattr(table, "JSONL_SAMPLE", 500)
    monkeypatch.setattr(table, "JSONL_BLOCK", 1000)
    assert table.read_raw(str(tmp_path / rel), "jsonl").npartitions > 20
    slow = []
    by_json = table._json_lines_by_json
    monkeypatch.setattr(table, "_json_lines_by_json", lambda data: slow.append(1) or by_json(data))
    checked = read_checked_table(_config(tmp_path, rel))
    df, has_id = checked

    assert has_id and len(df) == 300 - 2  # two blank lines
    rejected = df[df["reason"].notna()].set_index("id")
    assert rejected["reason"].eq("unreadable_alignment").all()
    assert sorted(rejected.index) == [f"align.jsonl:{i}" for i in (120, 230, 299, 3)]
    assert rejected.loc["align.jsonl:3", "detail"] == (
        "align.jsonl line 3: not JSON (Expecting property name enclosed in double quotes at column 26)"
    )
    assert (
        rejected.loc["align.jsonl:120", "detail"]
        == "align.jsonl line 120: not JSON (Expecting value at column 1)"
    )
    assert rejected.loc["align.jsonl:230", "detail"] == "align.jsonl line 230: not a JSON object"
    assert rejected.loc["align.jsonl:299", "detail"] == "align.jsonl line 299: not UTF-8 text"
    kept = df.loc[df["reason"].isna(), "id"].tolist()
    assert kept == [
        f"u{i}" for i in range(1, 301) if i not in bad
    ]  # every good line, in file order
    assert checked.ids_from_template == 0  # a bad line's id names it; no id was missing
    assert (
        len(slow) == 1 + 4
    )  # the sample (line 3 is in it) and the blocks of lines 3, 120, 230, 299 only

    nemo = tmp_path / "m.json"  # the same bad line in a NeMo manifest: the same words
    nemo.write_bytes(b'{"audio_filepath": "r.wav", "duration": 1}\n' * 2 + bad[3] + b"\n")
    assert manifests.read_nemo(str(nemo), InputConfig(audio=None))[2]["alignment_error"] == (
        rejected.loc["align.jsonl:3", "detail"].replace("align.jsonl", "m.json")
    )


def test_a_jsonl_table_that_is_not_utf8_or_not_json_lines_is_one_error_naming_the_line(tmp_path):
    row = '{"id": "u1", "recording": "r", "start": 0, "end": 1, "text": "x"}\n'
    for body, reason in [
        (row.encode("utf-16"), "line 1: not UTF-8 text"),
        (b"id,recording,start,end,text\nu1,r,0,1,x\n", "line 1: not JSON"),
        (b"\n" + "začetak\n".encode("cp1250"), "line 2: not UTF-8 text"),
    ]:
        (tmp_path / "align.jsonl").write_bytes(body)
        with pytest.raises(UserError) as e:
            read_checked_table(_config(tmp_path, "align.jsonl"))
        assert str(e.value).startswith(
            f"input.alignment {tmp_path / 'align.jsonl'}: cannot read it as jsonl: {reason}"
        )


def test_quotes_in_tsv_text_are_kept_verbatim(tmp_path):
    (tmp_path / "align.tsv").write_text(
        'id\trecording\tstart\tend\ttext\nx\trec1\t0\t1\t"Rekao je" da\n', encoding="utf-8"
    )
    df, _ = read_checked_table(_config(tmp_path, "align.tsv"))
    assert df["text_raw"].tolist() == ['"Rekao je" da']
    assert df["text"].tolist() == ["rekao je da"]


def test_stray_whitespace_around_recording_ids_is_ignored(tmp_path):
    (tmp_path / "align.csv").write_text(
        "id,recording,start,end,text\na, rec1 ,0,1,x\nb,\trec2\t,0,1,y\nc,rec3  ,0,1,z\n",
        encoding="utf-8",
    )
    df, _ = read_checked_table(_config(tmp_path, "align.csv"))
    assert df["recording"].tolist() == ["rec1", "rec2", "rec3"]
    assert df["reason"].isna().all()


def test_csv_with_a_byte_order_mark_still_finds_the_id_column(tmp_path):
    (tmp_path / "align.csv").write_text(
        "id,recording,start,end,text\n007,rec1,0,1,x\n", encoding="utf-8-sig"
    )
    df, has_id = read_checked_table(_config(tmp_path, "align.csv"))
    assert has_id
    assert df["id"].tolist() == ["007"]


@pytest.mark.parametrize(
    "key, column",
    [
        ("recording", "file"),
        ("start", "begin"),
        ("end", "stop"),
        ("text", "sentence"),
        ("hypothesis", "asr"),
        ("id", "utt"),
    ],
)
def test_a_missing_mapped_column_names_the_config_key(tmp_path, key, column):
    rel = _write_table(tmp_path, "csv", ROWS)
    with pytest.raises(UserError, match=rf"input\.columns\.{key}\b") as e:
        read_checked_table(_config(tmp_path, rel, columns={key: column}))
    assert repr(column) in str(e.value)


def test_missing_default_id_column_is_not_an_error(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "id"} for r in ROWS]
    rel = _write_table(tmp_path, "parquet", rows)
    df, has_id = read_checked_table(_config(tmp_path, rel))
    assert not has_id and len(df) == 4


def test_invalid_json_is_a_config_error(tmp_path):
    (tmp_path / "align.json").write_text("[{not json", encoding="utf-8")
    with pytest.raises(UserError, match="not valid JSON"):
        read_checked_table(_config(tmp_path, "align.json"))


def test_json_object_whose_values_are_not_records_is_a_config_error(tmp_path):
    (tmp_path / "align.json").write_text(json.dumps({"u1": "just text"}), encoding="utf-8")
    with pytest.raises(UserError, match="'u1'"):
        read_checked_table(_config(tmp_path, "align.json"))


# ---------------------------------------------------------------- Kaldi


def test_kaldi_dir_without_segments_is_a_config_error(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "text").write_text("u1 hello\n", encoding="utf-8")
    with pytest.raises(UserError, match="segments"):
        read_checked_table(_config(tmp_path, "data"))


def _kaldi_table(tmp_path, segments: str, text: str):
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    (d / "segments").write_text(segments, encoding="utf-8")
    (d / "text").write_text(text, encoding="utf-8")
    df, _ = read_checked_table(_config(tmp_path, "data"))
    return df


def test_kaldi_segment_without_text_line_is_empty_text(tmp_path):
    df = _kaldi_table(tmp_path, "u1 r1 0 1\nu2 r1 1 2\n", "u1 hello  world\n")
    assert df["text"].tolist() == ["hello world", ""]
    assert df["reason"].tolist() == [None, "empty_text"]


def test_kaldi_text_separated_by_a_tab_is_read(tmp_path):
    df = _kaldi_table(tmp_path, "u1\tr1\t0\t1\n", "u1\thello world\n")
    assert df["text"].tolist() == ["hello world"]


def test_kaldi_utt2spk_gives_each_row_its_speaker_and_an_unlisted_utterance_none(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "utt2spk").write_text("u1 anna\nu2  ben\n", encoding="utf-8")
    df = _kaldi_table(tmp_path, "u1 r1 0 1\nu2 r1 1 2\nu3 r2 0 1\n", "u1 a\nu2 b\nu3 c\n")
    assert [None if pd.isna(s) else s for s in df["speaker"]] == ["anna", "ben", None]
    assert resolve_input(_config(tmp_path, "data").input).speaker


def test_kaldi_spk2utt_alone_names_speakers_too(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "spk2utt").write_text("anna u1 u3\nben u2\n", encoding="utf-8")
    df = _kaldi_table(tmp_path, "u1 r1 0 1\nu2 r1 1 2\nu3 r2 0 1\n", "u1 a\nu2 b\nu3 c\n")
    assert df["speaker"].tolist() == ["anna", "ben", "anna"]


def test_kaldi_dir_without_utt2spk_has_no_speakers(tmp_path):
    df = _kaldi_table(tmp_path, "u1 r1 0 1\n", "u1 a\n")
    assert df["speaker"].isna().all() and not resolve_input(_config(tmp_path, "data").input).speaker


def test_wav_scp_maps_recordings_to_paths_and_unknown_pipes_to_their_command(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(
        "r1 audio/r1.wav\n\nr2 sox in.wav -t wav - |\nr3 /abs/r3.flac\nr4 memory://bucket/r4.mp3\n"
        "r5 sph2pipe -f wav -p -c 2 /abs/r5.sph |\nr6 wav-reverberate r6.wav - |\n",
        encoding="utf-8",
    )
    scp = table.read_wav_scp(str(d))
    assert scp == {
        "r1": os.path.join(str(tmp_path), "audio", "r1.wav"),  # relative to the data dir's parent
        "r2": os.path.join(str(tmp_path), "in.wav"),  # a pipe's file resolves as a path does
        "r3": "/abs/r3.flac",
        "r4": "memory://bucket/r4.mp3",
        "r5": "/abs/r5.sph#channel=2",
        "r6": UnreadPipe("wav-reverberate r6.wav - |"),
    }


def test_wav_scp_absent_gives_none(tmp_path):
    (tmp_path / "data").mkdir()
    assert table.read_wav_scp(str(tmp_path / "data")) is None


def test_wav_scp_separated_by_a_tab_is_read(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text("r1\t/abs/r1.wav\n", encoding="utf-8")
    assert table.read_wav_scp(str(d)) == {"r1": "/abs/r1.wav"}


# ---------------------------------------------------------------- per-row checks


@pytest.mark.parametrize(
    "rec",
    [
        "../x",
        "/abs/path",
        "a/../../x",
        "./../x",
        "",
        "   ",
        "..",
        ".",
        "a\\b",
        "C:x",
        "~user",
        "a\x00b",
        "s3://bucket/x",
        "file:///etc/x",
        "memory::x",
        None,
    ],
)
def test_recording_ids_that_escape_the_audio_folder_are_rejected(rec):
    out = _check(_canon(recording=[rec, "ok"]))
    assert out["reason"].tolist() == ["invalid_recording_id", None]
    assert "recording id" in out["detail"].iloc[0]


@pytest.mark.parametrize(
    "start, end",
    [
        (float("nan"), 1.0),
        (0.0, float("nan")),
        (None, 1.0),
        (-0.5, 1.0),
        (2.0, 2.0),
        (3.0, 2.0),
        ("abc", 1.0),
        (0.0, "1,5"),
        ("", "1"),
        (0.0, float("inf")),
    ],
)
def test_bad_timestamps_are_rejected(start, end):
    out = _check(_canon(start=[start, "0.5"], end=[end, "1.5"]))
    assert out["reason"].tolist() == ["bad_timestamps", None]
    assert out["detail"].iloc[0].startswith("start=")
    assert math.isnan(out["duration"].iloc[0])
    assert out["duration"].iloc[1] == pytest.approx(1.0)


def test_numeric_strings_are_parsed_as_seconds():
    out = _check(_canon(start=["1.25", "0"], end=["3", "1e1"]))
    assert out["start"].tolist() == [1.25, 0.0]
    assert out["end"].tolist() == [3.0, 10.0]
    assert out["duration"].tolist() == [1.75, 10.0]


def test_an_invalid_recording_id_wins_over_bad_timestamps():
    out = _check(_canon(recording=["../x"], start=[5.0], end=[1.0]))
    assert out["reason"].tolist() == ["invalid_recording_id"]


@pytest.mark.parametrize("text", ["...", " — „“ ¿? ", "", None, "!!!"])
def test_punctuation_only_or_missing_text_is_empty_text(text):
    out = _check(_canon(text_raw=[text, "riječ."]))
    assert out["reason"].tolist() == ["empty_text", None]
    assert out["text"].tolist() == ["", "riječ"]


def test_duration_filters_reject_too_short_and_too_long():
    df = _canon(start=[0.0, 0.0, 0.0, 0.0], end=[0.2, 0.5, 20.0, 20.5])
    out = _check(df, {"min_duration": 0.5, "max_duration": 20.0})
    assert out["reason"].tolist() == ["too_short", None, None, "too_long"]
    assert out["detail"].iloc[0] == "duration 0.200 s < 0.5"
    assert out["detail"].iloc[3] == "duration 20.500 s > 20.0"


def test_duration_filters_set_to_null_keep_everything():
    out = _check(_canon(start=[0.0, 0.0], end=[0.01, 3600.0]))
    assert out["reason"].isna().all()


def test_hypothesis_far_from_text_is_low_similarity():
    df = _canon(
        text_raw=["Dobar dan!", "Dobar dan!", "Dobar dan!"],
        hypothesis=["dobar dan", "nešto posve drugačije", "dobar dam"],
    )
    out = _check(df, {"min_similarity": 0.8})
    assert out["reason"].tolist() == [None, "low_similarity", None]
    assert out["similarity"].iloc[0] == 1.0
    assert out["similarity"].iloc[2] == pytest.approx(1 - 2 * 1 / 18)
    assert out["detail"].iloc[1].startswith("similarity ") and out["detail"].iloc[1].endswith(
        "< 0.8"
    )


def test_no_similarity_check_without_a_hypothesis():
    out = _check(_canon(text_raw=["Dobar dan!"], hypothesis=[None]), {"min_similarity": 0.99})
    assert out["reason"].tolist() == [None]
    assert math.isnan(out["similarity"].iloc[0])


def test_similarity_filter_set_to_null_keeps_mismatches():
    out = _check(_canon(text_raw=["Dobar dan!"], hypothesis=["nešto drugo"]))
    assert out["reason"].tolist() == [None]
    assert out["similarity"].iloc[0] < 0.5


def test_a_row_gets_only_the_first_reason_that_applies():
    df = _canon(
        text_raw=["...", "Predugačko i pogrešno."],
        start=[0.0, 0.0],
        end=[30.0, 30.0],
        hypothesis=["x", "nešto drugo"],
    )
    out = _check(df, {"max_duration": 20.0, "min_similarity": 0.8})
    assert out["reason"].tolist() == ["empty_text", "too_long"]


def test_ids_are_stripped_and_blank_ids_come_from_the_template():
    df = _canon(
        id=[" a1 ", "", None, "  "], recording=["r"] * 4, start=[0, 1, 2, 3], end=[1, 2, 3, 4]
    )
    out = _check(df)
    assert out["id"].tolist() == ["a1", "r_1.0-2.0", "r_2.0-3.0", "r_3.0-4.0"]


def test_check_rows_does_not_modify_its_input():
    df = _canon(recording=[" r "], start=["1"], end=["2"])
    before = df.copy()
    _check(df)
    pd.testing.assert_frame_equal(df, before)


# ---------------------------------------------------------------- duplicates


def test_repeated_ids_keep_the_first_and_name_its_row():
    df = _check(_canon(id=["a", "b", "a", "c", "b", "a"]))
    df.insert(0, "row", range(len(df)))
    mark_duplicates(df)
    assert df["reason"].tolist() == [
        None,
        None,
        "duplicate_id",
        None,
        "duplicate_id",
        "duplicate_id",
    ]
    assert df["detail"].tolist() == [
        None,
        None,
        "first at row 0",
        None,
        "first at row 1",
        "first at row 0",
    ]


def test_duplicate_check_keeps_earlier_reasons():
    df = _check(_canon(id=["a", "a"], start=[0.0, 5.0], end=[1.0, 1.0]))
    df.insert(0, "row", range(len(df)))
    mark_duplicates(df)
    assert df["reason"].tolist() == [None, "bad_timestamps"]


def test_no_duplicates_no_change():
    df = _check(_canon(id=["a", "b"]))
    df.insert(0, "row", range(len(df)))
    mark_duplicates(df)
    assert df["reason"].isna().all()


def test_duplicates_from_a_real_table_refer_to_the_input_row(tmp_path):
    rows = ROWS + [dict(ROWS[1])]
    rel = _write_table(tmp_path, "jsonl", rows)
    df, _ = read_checked_table(_config(tmp_path, rel))
    mark_duplicates(df)
    assert df["reason"].tolist() == [None, None, None, None, "duplicate_id"]
    assert df["detail"].iloc[4] == "first at row 1"


# ---------------------------------------------------------------- recordings

AUDIO_NAMES = ["rec1.mp3", "rec2.wav", "notes.txt", " spaced .m4a"]
LOOKUPS = pd.Series(["rec1", "rec2", "spaced", "rec1.mp3", "notes", "notes.txt", "missing"])


def _check_listing(listing, url_of) -> None:
    got = resolve(LOOKUPS, listing)["url"].tolist()
    assert got == [
        url_of("rec1.mp3"),
        url_of("rec2.wav"),
        url_of(" spaced .m4a"),
        url_of("rec1.mp3"),
        None,
        None,
        None,
    ]
    assert not any("notes" in str(v) for v in listing.files.values())


def test_audio_folder_listing_resolves_stems_and_full_names(tmp_path):
    for name in AUDIO_NAMES:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.wav").mkdir()  # a folder is not a recording
    listing = list_audio(str(tmp_path))
    _check_listing(listing, lambda n: str(tmp_path / n))
    assert "sub" not in listing.names and "sub.wav" not in listing.files


@pytest.fixture
def memory_folder():
    root = f"memory://etl-test-{uuid.uuid4().hex}"
    yield root
    fs, path = fsspec.core.url_to_fs(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    assert not fs.exists(path)


def test_audio_listing_on_an_fsspec_memory_folder(memory_folder):
    for name in AUDIO_NAMES:
        with fsspec.open(f"{memory_folder}/{name}", "wb") as f:
            f.write(b"")
    listing = list_audio(memory_folder)
    _check_listing(listing, lambda n: f"memory:///{memory_folder.split('://', 1)[1]}/{n}")
    for url in listing.files.values():  # every URL opens through fsspec
        with fsspec.open(url, "rb") as f:
            assert f.read() == b""


def test_a_lossless_file_wins_over_a_lossy_one_for_the_same_recording(tmp_path):
    for name in ("rec.mp3", "rec.flac", "rec.wav"):
        (tmp_path / name).write_bytes(b"")
    got = resolve(pd.Series(["rec", "rec.mp3", "./rec.flac"]), list_audio(str(tmp_path)))[
        "url"
    ].tolist()
    assert got == [str(tmp_path / "rec.wav"), str(tmp_path / "rec.mp3"), str(tmp_path / "rec.flac")]


def test_uppercase_extensions_are_audio(tmp_path):
    (tmp_path / "REC.MP3").write_bytes(b"")
    listing = list_audio(str(tmp_path))
    assert listing.files == {"REC.MP3": str(tmp_path / "REC.MP3")}
    assert listing.names == {"REC": ("REC.MP3",), "REC.MP3": ("REC.MP3",)}


def test_resolve_uses_wav_scp_when_given_and_only_files_that_exist(tmp_path):
    (tmp_path / "r1.wav").write_bytes(b"")
    scp = {
        "r1": str(tmp_path / "r1.wav"),
        "r2": UnreadPipe("x |"),
        "r4": str(tmp_path / "gone.wav"),
    }
    got = resolve(pd.Series(["r1", "r2", "r3", "r4"]), None, scp)
    assert got["url"].tolist() == [str(tmp_path / "r1.wav"), None, None, None]
    assert got["key"].tolist() == ["r1", None, None, None]


def test_resolve_with_an_empty_listing_finds_nothing(tmp_path):
    assert resolve(pd.Series(["r1", "r2"]), list_audio(str(tmp_path)))["url"].tolist() == [
        None,
        None,
    ]


def test_clock_timestamps_from_subtitle_tools_are_read_as_seconds():
    from etl.ingest.rows import to_seconds

    got = to_seconds(
        pd.Series(["00:01:02.5", "01:02,250", "3.5", 4, "1:75:00", "abc", None], dtype=object)
    )
    assert got.iloc[:4].tolist() == [62.5, 62.25, 3.5, 4.0]
    assert got.iloc[4:].isna().all()


def test_recording_names_match_across_unicode_normalization_forms(tmp_path):
    import unicodedata

    (tmp_path / unicodedata.normalize("NFD", "sjednica_č.mp3")).write_bytes(b"")
    got = resolve(
        pd.Series([unicodedata.normalize("NFC", "sjednica_č")]), list_audio(str(tmp_path))
    )
    assert got["url"].iloc[0] is not None
