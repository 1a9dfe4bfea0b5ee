"""Build options: decoders, output formats, fsspec URLs, an existing scheduler, degenerate inputs."""

from __future__ import annotations

import glob
import io
import json

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from distributed import Client, LocalCluster

from etl.cli import main
from etl.commands.build import build
from etl.config import load_config
from etl.testing.synth import dominant_frequency

from ..conftest import read_splits, write_config

pytestmark = pytest.mark.cluster


def _rows(out) -> pd.DataFrame:
    return read_splits(out).drop(columns="split")


def _check_tones(df, corpus):
    for rid, a in zip(df["id"], df["audio"]):
        x, sr = sf.read(io.BytesIO(a["bytes"]), dtype="int16", always_2d=True)
        assert sr == 16000 and x.shape[1] == 1
        assert abs(dominant_frequency(x[:, 0], sr) - corpus["freqs"][rid]) < 3, rid


def test_pydub_decoder_and_wav_output_give_the_same_rows(built, corpus, tmp_path):
    out = tmp_path / "pydub"
    cfg = write_config(corpus, out, audio={"decoder": "pydub"}, output={"audio_format": "wav"})
    assert main(["build", cfg]) == 0
    df = _rows(out)
    assert set(df["id"]) == set(_rows(built["out"])["id"])
    assert all(a["path"].endswith(".wav") and a["bytes"][:4] == b"RIFF" for a in df["audio"])
    _check_tones(df, corpus)


def test_existing_scheduler_via_cluster_address(built, corpus, tmp_path):
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        out = tmp_path / "addr"
        cfg = write_config(corpus, out, cluster={"address": cluster.scheduler_address})
        assert main(["build", cfg]) == 0
        with Client(cluster) as c:
            assert (
                len(c.scheduler_info()["workers"]) == 2
            )  # still up: we did not close their cluster
    pd.testing.assert_frame_equal(
        _rows(out).sort_values("id").reset_index(drop=True),
        _rows(built["out"]).sort_values("id").reset_index(drop=True),
    )


def test_memory_urls_for_table_audio_and_output(corpus, tmp_path):
    """fsspec end to end: table, recordings and dataset all on memory:// (an in-process cluster,
    since the memory filesystem lives in this process)."""
    mem = fsspec.filesystem("memory")
    root = "memory://etl-test"
    try:
        for f in glob.glob(str(corpus["root"] / "audio" / "*")):
            mem.pipe(f"/etl-test/audio/{f.rsplit('/', 1)[-1]}", open(f, "rb").read())
        mem.pipe("/etl-test/alignment.json", (corpus["root"] / "alignment.json").read_bytes())
        cfg = load_config(
            write_config(corpus, tmp_path / "mem"),
            [
                f"input.alignment={root}/alignment.json",
                f"input.audio={root}/audio",
                f"output.path={root}/out",
            ],
        )
        with (
            LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            report = build(cfg, client=client)
        assert report["rows_out"] == len(corpus["freqs"])
        files = sorted(mem.glob("/etl-test/out/data/*.parquet"))
        df = pd.concat([pq.read_table(io.BytesIO(mem.cat(f))).to_pandas() for f in files])
        _check_tones(df, corpus)
        assert json.loads(mem.cat("/etl-test/out/report.json"))["rows_in"] == len(corpus["rows"])
    finally:
        mem.rm("/etl-test", recursive=True)


def test_a_table_where_every_row_is_rejected_writes_no_empty_parquet(corpus, tmp_path):
    out = tmp_path / "none"
    cfg = write_config(corpus, out, filters={"max_duration": 0.05, "min_duration": 0.0})
    assert main(["build", cfg]) == 0
    assert not glob.glob(str(out / "data" / "*.parquet"))
    report = json.loads((out / "report.json").read_text())
    assert report["rows_out"] == 0 and report["rows_rejected"] == report["rows_in"] == len(
        corpus["rows"]
    )
    assert len(pd.read_parquet(out / "rejects.parquet")) == report["rows_in"]


def test_generated_ids_follow_the_template_when_the_table_has_none(corpus, tmp_path):
    rows = json.loads((corpus["root"] / "alignment.json").read_text())
    good = [{k: v for k, v in r.items() if k != "id"} for r in rows if r["id"] in corpus["freqs"]][
        :-1
    ]  # no dup
    tbl = tmp_path / "noid.csv"
    pd.DataFrame(good).to_csv(tbl, index=False)
    out = tmp_path / "noid"
    cfg = write_config(corpus, out, input={"alignment": str(tbl)})
    assert main(["build", cfg]) == 0
    df = _rows(out)
    r = df.iloc[0]
    assert r["id"] == f"{r['recording']}_{r['start']:.1f}-{r['end']:.1f}"
    assert "source_id" not in df.columns
    assert len(df) == len(good)


def test_bad_config_exits_2_and_writes_nothing(corpus, tmp_path, capsys):
    out = tmp_path / "bad"
    cfg = write_config(corpus, out, filters={"max_durration": 3})
    assert main(["build", cfg]) == 2
    err = capsys.readouterr().err
    assert "filters.max_durration" in err and "Traceback" not in err
    assert not out.exists()


def test_missing_mapped_column_is_one_clear_error(corpus, tmp_path, capsys):
    out = tmp_path / "col"
    cfg = write_config(corpus, out, input={"columns": {"hypothesis": "subtitle"}})
    assert main(["build", cfg]) == 2
    assert "input.columns.hypothesis" in capsys.readouterr().err
    assert not out.exists()


def test_kaldi_data_dir_with_wav_scp_and_no_audio_folder(corpus, tmp_path):
    """segments + text + wav.scp (relative paths, Kaldi's working dir = the data dir's parent);
    a command pipe in wav.scp is never run: its rows are missing_audio, saying why."""
    rows = [
        r
        for r in json.loads((corpus["root"] / "alignment.json").read_text())
        if r["id"] in corpus["freqs"]
    ][:-1]
    kaldi = tmp_path / "data" / "train"  # wav.scp paths are relative to tmp_path (the recipe dir)
    kaldi.mkdir(parents=True)
    (tmp_path / "wav").symlink_to(corpus["root"] / "audio")
    recs = sorted({r["recording"].strip() for r in rows})
    files = {
        p.rsplit("/", 1)[-1].split(".")[0]: p.rsplit("/", 1)[-1]
        for p in glob.glob(str(corpus["root"] / "audio" / "*"))
    }
    scp = [f"{rec} wav/{files[rec]}" for rec in recs[1:]] + [
        f"{recs[0]} ffmpeg -i x.mp3 -ss 3 -f wav - |"  # a time range: not a form etl reads
    ]
    (kaldi / "wav.scp").write_text("\n".join(scp) + "\n")
    (kaldi / "segments").write_text(
        "".join(f"{r['id']} {r['recording'].strip()} {r['start']} {r['end']}\n" for r in rows)
    )
    (kaldi / "text").write_text("".join(f"{r['id']} {r['text']}\n" for r in rows))
    out = tmp_path / "kout"
    cfg = write_config(
        corpus, out, input={"alignment": str(kaldi), "audio": None, "columns": {"hypothesis": None}}
    )
    assert main(["build", cfg]) == 0
    df = _rows(out)
    assert set(df["recording"]) == set(recs[1:])
    _check_tones(df, corpus)
    rejects = pd.read_parquet(out / "rejects.parquet")
    assert set(rejects["recording"]) == {recs[0]} and set(rejects["reason"]) == {"missing_audio"}
    assert "command pipe" in rejects["detail"].iloc[0]
    assert df["similarity"].isna().all()


def test_kaldi_utt2spk_splits_by_speaker_and_datasets_reads_each_rows_speaker(corpus, tmp_path):
    """utt2spk names speakers across recordings; ``splits.by: speaker`` keeps each speaker in one
    split, and the ``speaker`` column read back by `datasets` is the utt2spk one. The utterance
    utt2spk does not list has no speaker (placed by its recording, as a blank speaker is)."""
    import datasets

    rows = [r for r in corpus["rows"] if r["id"] in corpus["freqs"]]
    kaldi = tmp_path / "kaldi"
    kaldi.mkdir()
    (kaldi / "segments").write_text(
        "".join(f"{r['id']} {r['recording'].strip()} {r['start']} {r['end']}\n" for r in rows)
    )
    (kaldi / "text").write_text("".join(f"{r['id']} {r['text']}\n" for r in rows))
    speaker = {r["id"]: f"spk{i % 6}" for i, r in enumerate(rows[:-1])}  # the last row: not listed
    (kaldi / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in speaker.items()))
    out = tmp_path / "spk"
    cfg = write_config(
        corpus,
        out,
        input={"alignment": str(kaldi), "columns": {"hypothesis": None}},
        splits={"by": "speaker"},
    )
    assert main(["build", cfg]) == 0
    dd = datasets.load_dataset(str(out))
    split_of, got = {}, {}
    for split, ds in dd.items():
        assert "speaker" in ds.column_names
        for rid, spk in zip(ds["id"], ds["speaker"]):
            got[rid] = spk
            split_of.setdefault(spk, set()).add(split)
    assert got == {r["id"]: speaker.get(r["id"]) for r in rows}  # every row, with its speaker
    assert all(len(s) == 1 for s in split_of.values()), split_of
    assert len(dd) >= 2  # speakers were really spread over splits
    assert "speaker" in pd.read_parquet(out / "rejects.parquet").columns


def test_a_jsonl_integer_beyond_64_bits_rejects_its_row_and_the_rest_builds(
    corpus, tmp_path, monkeypatch
):
    """One line's start is -99999999999999999999 (ujson refuses it), another's end 2**70: those rows
    are rejected naming the value, every other row is built with its tone. The odd lines lie in a
    block past the sample the client reads, so a worker meets them."""
    from etl.ingest import table

    rows = [r for r in corpus["rows"] if r["id"] in corpus["freqs"]][:-1]  # not the duplicate
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines[len(lines) // 2 : len(lines) // 2] = [
        '{"id": "neg", "recording": "wav_16k_mono", "start": -99999999999999999999, "end": 2.0, "text": "a"}',
        '{"id": "big", "recording": "wav_16k_mono", "start": 0.5, "end": 1180591620717411303424, "text": "a"}',
    ]
    (tmp_path / "align.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(table, "JSONL_SAMPLE", 500)
    monkeypatch.setattr(table, "JSONL_BLOCK", 1000)
    out = tmp_path / "big"
    assert (
        main(
            ["build", write_config(corpus, out, input={"alignment": str(tmp_path / "align.jsonl")})]
        )
        == 0
    )
    df = _rows(out)
    rejects = pd.read_parquet(out / "rejects.parquet").set_index("id")
    assert sorted(df["id"]) == sorted(r["id"] for r in rows)
    _check_tones(df, corpus)
    assert rejects["reason"].to_dict() == {"neg": "bad_timestamps", "big": "too_long"}
    assert "start=-99999999999999999999" in rejects.loc["neg", "detail"]


def test_a_malformed_jsonl_line_in_a_later_block_is_its_reject_and_the_rest_builds(
    corpus, tmp_path, monkeypatch
):
    """A truncated line deep in a JSONL table (a block past the sample, read by a worker) is one
    ``unreadable_alignment`` reject naming the file's line; every other row is built with its tone."""
    from etl.ingest import table

    rows = [r for r in corpus["rows"] if r["id"] in corpus["freqs"]][:-1]  # not the duplicate
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    at = len(lines) - 2
    lines[at:at] = [
        '{"id": "cut", "recording": "wav_16k_mono", "start": 1.0,',
        "",
    ]  # and a blank line: no row
    (tmp_path / "align.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(table, "JSONL_SAMPLE", 500)
    monkeypatch.setattr(table, "JSONL_BLOCK", 1000)
    assert (
        len(lines[0]) < 500 < 1000 < len("\n".join(lines[:at]))
    )  # the bad line: past the sample and block 1
    out = tmp_path / "cut"
    assert (
        main(
            ["build", write_config(corpus, out, input={"alignment": str(tmp_path / "align.jsonl")})]
        )
        == 0
    )
    df = _rows(out)
    rejects = pd.read_parquet(out / "rejects.parquet")
    assert sorted(df["id"]) == sorted(r["id"] for r in rows)
    _check_tones(df, corpus)
    assert rejects[["id", "reason"]].values.tolist() == [
        [f"align.jsonl:{at + 1}", "unreadable_alignment"]
    ]
    assert rejects["detail"].iloc[0].startswith(f"align.jsonl line {at + 1}: not JSON (")
    report = json.loads((out / "report.json").read_text())
    assert report["rows_in"] == len(rows) + 1


def test_a_file_the_table_spells_two_ways_is_decoded_once_and_every_row_gets_its_audio(
    built, corpus, tmp_path
):
    """Every other row of each recording names its file with the extension (``mp3_48k_stereo.mp3``), the
    rest without: one file, two spellings (tables merged from two tools). Each file is decoded once, as in
    the reference build (``hours_decoded``), and the dataset is the reference's, row for row and byte for byte."""
    from ..cluster.test_cluster import dataset_content
    from ..conftest import RECORDINGS

    ext = {name.rsplit(".", 1)[0]: name for name, *_ in RECORDINGS}
    rows, n = [], 0
    for r in corpus["rows"]:
        rec = r["recording"].strip()
        if rec in ext and r["id"] in corpus["freqs"]:
            n += 1
            r = dict(r, recording=ext[rec] if n % 2 else r["recording"])
        rows.append(r)
    (tmp_path / "two.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "two"
    assert (
        main(["build", write_config(corpus, out, input={"alignment": str(tmp_path / "two.json")})])
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["hours_decoded"] == pytest.approx(built["report"]["hours_decoded"], abs=1e-6)
    assert report["rejects"] == built["report"]["rejects"]
    assert dataset_content(out) == dataset_content(built["out"])
    _check_tones(_rows(out), corpus)


def test_malformed_table_is_one_clear_error(corpus, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text('id,recording,start,end,text\n"unterminated,1\n')
    out = tmp_path / "malformed"
    assert main(["build", write_config(corpus, out, input={"alignment": str(bad)})]) == 2
    err = capsys.readouterr().err
    assert "input.alignment" in err and "bad.csv" in err and "Traceback" not in err


def test_an_empty_table_builds_an_empty_report(corpus, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("id,recording,start,end,text,asr\n")
    out = tmp_path / "empty"
    assert main(["build", write_config(corpus, out, input={"alignment": str(empty)})]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["rows_in"] == report["rows_out"] == 0 and not glob.glob(str(out / "data" / "*"))


def test_stereo_output_and_another_rate_when_asked(corpus, tmp_path):
    out = tmp_path / "st"
    cfg = write_config(corpus, out, audio={"channels": 2, "sampling_rate": 22050})
    assert main(["build", cfg]) == 0
    df = _rows(out)
    x, sr = sf.read(io.BytesIO(df["audio"].iloc[0]["bytes"]), dtype="int16", always_2d=True)
    assert sr == 22050 and x.shape[1] == 2
    assert abs(dominant_frequency(x[:, 0], sr) - corpus["freqs"][df["id"].iloc[0]]) < 3
    assert (
        json.loads(
            pq.read_schema(glob.glob(str(out / "data" / "*.parquet"))[0]).metadata[b"huggingface"]
        )["info"]["features"]["audio"]["sampling_rate"]
        == 22050
    )
    assert json.loads((out / "report.json").read_text())["config"]["audio"]["channels"] == 2


def test_the_printed_dashboard_link_serves_the_dask_dashboard():
    import urllib.request

    from etl.cluster.session import ClusterSession
    from etl.config import ClusterConfig

    with ClusterSession(
        ClusterConfig(
            n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0", stall_timeout=None
        )
    ) as session:
        client = session.client
        link = client.dashboard_link
        assert link.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(link, timeout=10) as r:
            assert r.status == 200


def test_a_failed_rebuild_keeps_the_previous_dataset_and_says_why(built, corpus, tmp_path, capsys):
    out = tmp_path / "keep"
    cfg = write_config(corpus, out)
    assert main(["build", cfg]) == 0
    before = sorted(p.name for p in (out / "data").iterdir())
    not_ffmpeg = tmp_path / "not-ffmpeg"
    not_ffmpeg.write_text("no exec bit")
    assert (
        main(["build", cfg, "--set", "audio.decoder=ffmpeg", "--set", f"audio.ffmpeg={not_ffmpeg}"])
        == 1
    )
    err = capsys.readouterr().err
    assert "cannot run ffmpeg" in err and "Traceback" not in err
    assert sorted(p.name for p in (out / "data").iterdir()) == before
    assert json.loads((out / "report.json").read_text())["rows_in"] == len(corpus["rows"])
