"""Aligner outputs and subtitles as they come: the same corpus given as a per-segment table, MFA
TextGrids, a CTM, a NeMo manifest, lhotse supervisions and subtitles gives the same kept clips and
texts; malformed files are one reject each, naming the file and line."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from etl.config import CtmConfig, InputConfig, SegmentationConfig, load_config
from etl.errors import UserError
from etl.ingest import table
from etl.ingest.formats import subtitles
from etl.ingest.segmentation import Unit, segment
from etl.testing.reference import plan_rows, read_checked_table

from .. import alignment_writers as w
from ..conftest import RECORDINGS, config_file

DURATIONS = {os.path.splitext(name)[0]: seconds for name, seconds, *_ in RECORDINGS}
EXT_OF = {os.path.splitext(name)[0]: os.path.splitext(name)[1] for name, *_ in RECORDINGS}


def _segments(corpus) -> list[tuple]:
    """(recording, start, end, text) of every good segment of the session corpus."""
    return [
        (r["id"].rsplit("-", 1)[0], r["start"], r["end"], r["text"])
        for r in corpus["rows"]
        if r["id"] in corpus["freqs"]
    ][: len(corpus["freqs"])]


def _config(tmp_path, corpus, alignment, **input_extra) -> dict:
    cfg = {
        "input": {
            "alignment": str(alignment),
            "audio": str(corpus["root"] / "audio"),
            "segmentation": {"max_pause": 0.3},
            **input_extra,
        },
        "output": {"path": str(tmp_path / "out")},
        "splits": {"dev_size": 4},
    }
    path = config_file(tmp_path, cfg, f"cfg-{len(list(tmp_path.glob('cfg-*')))}.yaml")
    return load_config(str(path))


def _write_all(root, corpus) -> dict:
    """The corpus in every format; returns {format name: (alignment path, extra input config)}."""
    segs = _segments(corpus)
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(segs, columns=["recording", "start", "end", "text"]).to_csv(
        root / "table.csv", index=False
    )
    w.textgrids(root / "mfa", segs, DURATIONS)
    # the same, aligned per speaker: even segments speaker A, odd ones B (MFA's multi-speaker tiers)
    speakers = {rec: ["A" if i % 2 == 0 else "B" for i in range(20)] for rec in DURATIONS}
    w.textgrids(root / "mfa_speakers", segs, DURATIONS, speakers)
    w.ctm(root / "align.ctm", segs)
    w.ctm(root / "asr.ctm", segs)  # a second CTM: the hypothesis
    w.nemo(
        root / "manifest.json",
        segs,
        corpus["root"] / "audio",
        EXT_OF,
        hypotheses={(r, s): t.lower() for r, s, _, t in segs},
    )
    w.lhotse(root / "supervisions.jsonl.gz", segs)
    (root / "subs").mkdir()
    for rec in DURATIONS:
        mine = [s for s in segs if s[0] == rec]
        w.youtube_vtt(root / "subs" / f"{rec}.hr.vtt", mine)
        w.srt(root / "subs" / f"{rec}.en.srt", mine)  # another language, as the hypothesis
    return {
        "csv": (root / "table.csv", {}),
        "textgrid": (root / "mfa", {}),
        "textgrid_speakers": (root / "mfa_speakers", {}),
        "ctm": (root / "align.ctm", {"ctm": {"hypothesis": str(root / "asr.ctm")}}),
        "nemo": (root / "manifest.json", {}),
        "lhotse": (root / "supervisions.jsonl.gz", {}),
        "subtitles": (
            root / "subs",
            {"subtitles": {"language": "hr", "hypothesis_language": "en"}},
        ),
        "srt": (root / "subs", {"subtitles": {"language": "en"}}),
    }


@pytest.fixture(scope="module")
def formats(corpus, tmp_path_factory):
    return _write_all(tmp_path_factory.mktemp("formats"), corpus)


def _kept(df: pd.DataFrame) -> list[tuple]:
    kept = df[df["split"].notna()]
    return sorted(
        zip(
            kept["recording"],
            kept["start"].round(3),
            kept["end"].round(3),
            kept["text"],
            kept["split"],
        )
    )


@pytest.mark.parametrize(
    "name", ["textgrid", "textgrid_speakers", "ctm", "nemo", "lhotse", "subtitles", "srt"]
)
def test_every_alignment_format_gives_the_same_kept_clips_and_texts(
    formats, corpus, tmp_path, name
):
    base, _ = read_checked_table(_config(tmp_path, corpus, formats["csv"][0]))
    expected = _kept(plan_rows(_config(tmp_path, corpus, formats["csv"][0]), base).frame)
    assert len(expected) == len(corpus["freqs"])
    path, extra = formats[name]
    cfg = _config(tmp_path, corpus, path, **extra)
    df, has_id = read_checked_table(cfg)
    df = plan_rows(cfg, df).frame
    got = _kept(df)
    if name in (
        "lhotse",
        "nemo",
        "textgrid_speakers",
    ):  # other ids (lhotse's own; NeMo names files: rec.mp3; several speaker tiers name the
        # speaker: rec_A_0.0-2.3): splits hash other ids
        assert has_id == (name == "lhotse")
        assert sorted((os.path.splitext(g[0])[0], *g[1:4]) for g in got) == [
            e[:4] for e in expected
        ]
        if name == "textgrid_speakers":
            assert (
                df["id"]
                == [f"{r.recording}_{r.speaker}_{r.start:.1f}-{r.end:.1f}" for r in df.itertuples()]
            ).all()
    else:
        assert not has_id and got == expected
    assert df["reason"].isna().all()
    if name in (
        "ctm",
        "nemo",
        "subtitles",
    ):  # a hypothesis from a second CTM, pred_text, a second language
        assert df["hypothesis"].notna().all() and (df["similarity"] > 0.99).all()


def test_word_level_inputs_keep_each_segments_words_and_speakers(formats, corpus, tmp_path):
    path, _ = formats["textgrid_speakers"]
    df, _ = read_checked_table(_config(tmp_path, corpus, path))
    row = df[
        (df["recording"] == "wav_16k_mono")
        & (df["start"] == min(s[1] for s in _segments(corpus) if s[0] == "wav_16k_mono"))
    ].iloc[0]
    words = row["words"]
    assert " ".join(x["word"] for x in words) == row["text_raw"]
    assert words[0]["start"] == 0.0 and words[-1]["end"] == pytest.approx(
        row["end"] - row["start"], abs=1e-3
    )
    assert set(df["speaker"]) == {"A", "B"} and row["speaker"] == "A"
    csv_df, _ = read_checked_table(_config(tmp_path, corpus, formats["csv"][0]))
    assert (
        "words" not in csv_df.columns and csv_df["speaker"].isna().all()
    )  # tables: output as before


def test_youtube_rolling_captions_give_each_word_once(formats):
    text = (formats["subtitles"][0] / "wav_16k_mono.hr.vtt").read_text(encoding="utf-8")
    units, timed = subtitles.units(subtitles.parse_cues(text, vtt=True)[0])
    spoken = " ".join(u.text for u in units).split()
    assert timed and len(spoken) == len(set(spoken)) or spoken.count("Rečenica") == 4
    assert spoken == " ".join(f"Rečenica broj {k}, snimka wav_16k_mono!" for k in range(4)).split()
    assert all(u.end > u.start for u in units)


def test_subtitle_cues_lose_tags_and_settings_and_merge_across_short_pauses():
    doc = (
        "WEBVTT\n\nNOTE a comment\n\n1\n00:01.000 --> 00:02.000 align:start position:10%\n<v Ana><b>Dobar</b> "
        "dan,</v>\n\n00:00:02.100 --> 00:00:03.000\n{\\an8}kako &amp; ste?\n\n00:05.000 --> 00:06.000\nnovo\n"
    )
    units, timed = subtitles.units(subtitles.parse_cues(doc, vtt=True)[0])
    assert not timed and [u.text for u in units] == ["Dobar dan,", "kako & ste?", "novo"]
    segs = segment(units, max_pause=0.5, max_duration=20)
    assert [(s.start, s.end, s.text) for s in segs] == [
        (1.0, 3.0, "Dobar dan, kako & ste?"),
        (5.0, 6.0, "novo"),
    ]


def test_segmentation_breaks_at_pauses_and_never_exceeds_max_duration_or_splits_a_word():
    words = [Unit(f"w{i}", i * 1.0, i * 1.0 + 0.9) for i in range(10)] + [Unit("long", 20.0, 45.0)]
    segs = segment(words, max_pause=0.5, max_duration=3.0)
    assert [[u.text for u in s.units] for s in segs][:4] == [
        ["w0", "w1", "w2"],
        ["w3", "w4", "w5"],
        ["w6", "w7", "w8"],
        ["w9"],
    ]
    assert (
        all(s.end - s.start <= 3.0 for s in segs[:-1]) and segs[-1].text == "long"
    )  # too_long decides
    assert [len(s.units) for s in segment(words[:3], max_pause=0.05, max_duration=20)] == [1, 1, 1]


def test_formats_are_detected_from_extension_content_or_folder(formats, tmp_path):
    assert table.detect_format(str(formats["textgrid"][0])) == "textgrid"
    assert table.detect_format(str(formats["subtitles"][0])) == "subtitles"
    assert table.detect_format(str(formats["ctm"][0])) == "ctm"
    assert (
        table.detect_format(str(formats["nemo"][0])) == "nemo"
    )  # .json, JSON lines with audio_filepath
    assert table.detect_format(str(formats["lhotse"][0])) == "lhotse"
    assert table.detect_format(str(formats["csv"][0])) == "csv"
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.vtt").write_text("WEBVTT\n")
    (tmp_path / "mixed" / "b.TextGrid").write_text("")
    with pytest.raises(UserError, match="several formats.*input.format"):
        table.detect_format(str(tmp_path / "mixed"))


def _bad_inputs(root, corpus) -> dict:
    """Each format with one malformed file (or line) among good ones."""
    segs = _segments(corpus)
    wav = [s for s in segs if s[0] == "wav_16k_mono"]
    mp3 = [s for s in segs if s[0] == "mp3_48k_stereo"]
    subs = root / "subs"
    subs.mkdir(parents=True)
    w.youtube_vtt(subs / "wav_16k_mono.vtt", wav)
    w.youtube_vtt(subs / "mp3_48k_stereo.vtt", mp3)
    good = (subs / "mp3_48k_stereo.vtt").read_text().splitlines()
    good[4] = "00:00:01.000 -> 00:00:02.000"  # a broken timing on line 5: that cue alone
    (subs / "mp3_48k_stereo.vtt").write_text("\n".join(good))
    (subs / "opus_48k.vtt").write_text("1\n00:00:01.000 --> 00:00:02.000\nno signature\n")
    tg = root / "tg"
    w.textgrids(tg, wav + mp3, DURATIONS)
    text = (tg / "mp3_48k_stereo.TextGrid").read_text()
    (tg / "mp3_48k_stereo.TextGrid").write_text(
        text.replace("xmax = 3.7", "xmax = 3.7x", 1)
        if "xmax = 3.7 " in text
        else text.replace(
            "intervals [2]:\n            xmin = ", "intervals [2]:\n            xmin = oops", 1
        )
    )
    (tg / "opus_48k.TextGrid").write_text(
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\n'
    )
    w.ctm(root / "a.ctm", wav + mp3)
    lines = (root / "a.ctm").read_text().splitlines()
    lines[-3] = (
        lines[-3].replace(" 1.00", "").rsplit(" ", 2)[0] + " -0.200 word"
    )  # a negative duration
    (root / "a.ctm").write_text("\n".join(lines) + "\n")
    w.nemo(root / "m.json", wav, corpus["root"] / "audio", EXT_OF)
    with open(root / "m.json", "a") as f:
        f.write('{"audio_filepath": "x.wav", "duration": \n{"offset": 1}\n')
    return {
        "subtitles": (subs, 2, len(wav) + len(mp3) - 1),  # a broken cue loses only its line
        "textgrid": (tg, 2, len(wav)),
        "ctm": (root / "a.ctm", 1, len(wav)),
        "nemo": (root / "m.json", 2, len(wav)),
    }


@pytest.mark.parametrize("fmt", ["subtitles", "textgrid", "ctm", "nemo"])
def test_a_malformed_file_is_one_reject_naming_file_and_line_and_the_rest_is_read(
    corpus, tmp_path, fmt
):
    path, n_bad, n_good = _bad_inputs(tmp_path / "in", corpus)[fmt]
    df, _ = read_checked_table(_config(tmp_path, corpus, path, format=fmt))
    bad = df[df["reason"] == "unreadable_alignment"]
    assert len(bad) == n_bad and len(df) == n_bad + n_good  # rows_in: what the files held
    kept = df.loc[df["reason"].isna(), "recording"]
    assert kept.str.startswith("wav_16k_mono" if fmt != "subtitles" else ("wav", "mp3")).all()
    assert bad["detail"].str.contains(r"line \d+: ").all() or fmt == "textgrid"
    assert bad["detail"].str.contains(r"\.(?:vtt|srt|TextGrid|ctm|json)").all()
    if fmt == "subtitles":
        assert sorted(bad["detail"]) == [
            "mp3_48k_stereo.vtt line 5: not a cue timing: '00:00:01.000 -> 00:00:02.000'",
            "opus_48k.vtt line 1: a WebVTT file starts with 'WEBVTT'",
        ]
    if fmt == "nemo":
        assert (
            list(bad["id"]) == ["m.json:5", "m.json:6"]
            and "no 'audio_filepath'" in bad["detail"].iloc[1]
        )


def test_a_tier_no_textgrid_has_is_a_config_error(formats, corpus, tmp_path):
    with pytest.raises(
        UserError,
        match=r"input.textgrid.tier: .*TextGrid: no tier 'wrods' \(tiers: words, phones\)",
    ):
        read_checked_table(
            _config(tmp_path, corpus, formats["textgrid"][0], textgrid={"tier": "wrods"})
        )


def test_several_subtitle_languages_need_input_subtitles_language(formats, corpus, tmp_path):
    with pytest.raises(
        UserError, match="input.subtitles.language: .* several languages \\(en, hr\\)"
    ):
        read_checked_table(_config(tmp_path, corpus, formats["subtitles"][0]))


@pytest.mark.cluster
def test_a_textgrid_corpus_builds_with_words_read_back_by_datasets(formats, corpus, tmp_path):
    """One real build: word-level input -> clips with the right tone and a `words` column that
    `datasets` reads back with its features."""
    import io

    import datasets
    import numpy as np
    import soundfile as sf

    from etl.cli import main
    from etl.testing.synth import dominant_frequency

    out = tmp_path / "out"
    cfg = {
        "input": {
            "alignment": str(formats["textgrid_speakers"][0]),
            "audio": str(corpus["root"] / "audio"),
            "segmentation": {"max_pause": 0.3},
        },
        "output": {"path": str(out), "shard_hours": 0.01},
        "splits": {"dev_size": 3},
        "cluster": {"n_workers": 2, "dashboard_address": None},
    }
    config_file(tmp_path, cfg, "b.yaml")
    assert main(["build", str(tmp_path / "b.yaml")]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["rows_in"] == report["rows_out"] == len(corpus["freqs"])
    files = sorted(str(p) for p in (out / "data").glob("*.parquet"))
    ds = datasets.Dataset.from_parquet(files)
    assert isinstance(ds.features["words"], (datasets.List, list, datasets.Sequence))
    freq_of = {
        (r["id"].rsplit("-", 1)[0], r["start"]): corpus["freqs"][r["id"]]
        for r in corpus["rows"]
        if r["id"] in corpus["freqs"]
    }
    for row in ds.cast_column("audio", datasets.Audio(decode=False)):
        samples, sr = sf.read(io.BytesIO(row["audio"]["bytes"]))
        assert abs(dominant_frequency(samples, sr) - freq_of[(row["recording"], row["start"])]) < 5
        assert " ".join(x["word"] for x in row["words"]) == row["text_raw"]
        assert row["words"][-1]["end"] == pytest.approx(row["duration"], abs=1e-3)
    card = (out / "README.md").read_text()
    assert "name: words" in card
    assert np.isclose(
        sum(report["splits"][s]["rows"] for s in report["splits"]), len(corpus["freqs"])
    )


def test_ctm_words_overlapping_or_negative_reject_their_recording_naming_the_line(tmp_path):
    from etl.ingest.formats import ctm

    (tmp_path / "x.ctm").write_text(
        "a 1 0.00 0.50 dobar\na 1 0.40 0.30 dan\nb 1 0.0 0.5 ok\nc 1 0.0 -0.1 no\n"
        "d 1 zero 0.5 nan\n",
        encoding="utf-8",
    )
    inp = InputConfig(
        ctm=CtmConfig(hypothesis=None),
        segmentation=SegmentationConfig(max_pause=0.5, max_duration=20.0),
    )
    rows = ctm.read(str(tmp_path / "x.ctm"), inp)
    errors = {r["recording"]: r["alignment_error"] for r in rows if r["alignment_error"]}
    assert errors == {
        "a": "x.ctm line 2: 'dan' at 0.4 s overlaps 'dobar' (0-0.5 s)",
        "c": "x.ctm line 4: 'no' has start 0 s and end -0.1 s",
        "d": "x.ctm line 5: 'zero' is not a number",
    }
    assert [(r["recording"], r["text"]) for r in rows if not r["alignment_error"]] == [("b", "ok")]


def test_short_form_textgrid_and_lhotse_word_alignments_are_read(tmp_path):
    from etl.ingest.formats import manifests, textgrid

    short = (
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n2.5\n<exists>\n1\n"IntervalTier"\n"words"\n'
        '0\n2.5\n3\n0\n0.5\n""\n0.5\n1.2\n"dobar"\n1.2\n2.5\n"dan"\n'
    )
    (tier,) = textgrid.parse(short)
    assert [(u.text, u.start, u.end) for u, _ in tier["entries"]] == [
        ("", 0.0, 0.5),
        ("dobar", 0.5, 1.2),
        ("dan", 1.2, 2.5),
    ]
    import gzip

    with gzip.open(tmp_path / "s.jsonl.gz", "wt") as f:
        f.write(
            json.dumps(
                {
                    "id": "u1",
                    "recording_id": "r",
                    "start": 1.0,
                    "duration": 1.5,
                    "text": "dobar dan",
                    "speaker": "ana",
                    "alignment": {"word": [["dobar", 1.0, 0.6, 1.0], ["dan", 1.7, 0.8, 1.0]]},
                }
            )
            + "\n"
            + json.dumps({"id": "u2", "recording_id": "r", "start": 3.0, "duration": -1.0})
            + "\n"
        )
    rows = manifests.read_lhotse(str(tmp_path / "s.jsonl.gz"), InputConfig(audio=None))
    assert rows[0]["words"] == [
        {"word": "dobar", "start": 0.0, "end": 0.6},
        {"word": "dan", "start": 0.7, "end": 1.5},
    ]
    assert rows[0]["speaker"] == "ana" and rows[0]["id"] == "u1"
    assert (rows[1]["start"], rows[1]["end"]) == (
        3.0,
        2.0,
    )  # end before start: bad_timestamps in the row checks


# ---- partitions: read on the workers, in input order ----


def _ctm_folder(root, ctm_file) -> str:
    """The CTM split into one file per recording (a folder: several partitions)."""
    root.mkdir()
    for line in ctm_file.read_text(encoding="utf-8").splitlines(keepends=True):
        with open(root / f"{line.split()[0]}.ctm", "a", encoding="utf-8") as f:
            f.write(line)
    return str(root)


def _nulls_as_none(df: pd.DataFrame) -> pd.DataFrame:
    """Missing values as None: a column's missing values are None or NaN by how pandas typed the
    partition (all None, or None among strings); both are missing to every step after."""
    return df.astype(object).where(df.notna(), None)


def _tiny_partitions(monkeypatch):
    from etl.ingest.formats import common

    monkeypatch.setattr(common, "FILES_PER_PART", 1)
    monkeypatch.setattr(common, "BYTES_PER_PART", 300)  # a manifest: blocks of 300 bytes


@pytest.mark.parametrize(
    "name",
    [
        "textgrid",
        "textgrid_speakers",
        "ctm",
        "nemo",
        "subtitles",
        "bad_textgrid",
        "bad_nemo",
        "bad_subtitles",
    ],
)
def test_many_partitions_give_the_rows_of_one_in_input_order(
    formats, corpus, tmp_path, monkeypatch, name
):
    """A file (or a block of a manifest) per partition: the same rows, reasons, ids and line numbers
    as one partition, in the same order; every partition has the declared columns."""
    if name.startswith("bad_"):
        path, _, _ = _bad_inputs(tmp_path / "bad", corpus)[name[4:]]
        cfg = _config(tmp_path, corpus, path, format=name[4:])
    else:
        path, extra = formats[name]
        if name == "ctm":
            path = _ctm_folder(tmp_path / "ctm", path)
        cfg = _config(tmp_path, corpus, path, **extra)
    one, _ = read_checked_table(cfg)
    _tiny_partitions(monkeypatch)
    fmt = table.detect_format(cfg.input.alignment, cfg.input.format)
    ddf = table.read_raw(cfg.input.alignment, fmt, cfg.input)
    assert ddf.npartitions > 2
    many, _ = read_checked_table(cfg)
    pd.testing.assert_frame_equal(_nulls_as_none(many), _nulls_as_none(one))
    if name == "bad_nemo":  # its errors lie in later blocks: their lines counted across blocks
        assert list(many.loc[many["reason"] == "unreadable_alignment", "id"]) == [
            "m.json:5",
            "m.json:6",
        ]


def test_a_line_of_a_manifest_that_is_not_utf8_is_one_reject_and_the_rest_is_read(
    formats, corpus, tmp_path
):
    lines = formats["nemo"][0].read_bytes().splitlines(keepends=True)
    (tmp_path / "m.json").write_bytes(b"".join(lines[:2] + [b'{"text": "\xff"}\n'] + lines[2:]))
    df, _ = read_checked_table(_config(tmp_path, corpus, tmp_path / "m.json"))
    bad = df[df["reason"] == "unreadable_alignment"]
    assert list(bad["detail"]) == ["m.json line 3: not UTF-8 text"] and len(df) == len(lines) + 1


def test_a_tier_only_a_later_partition_has_is_found(formats, corpus, tmp_path, monkeypatch):
    """The first files lack the tier, a later one has it: their rows are rejects, no config error."""
    import shutil

    src = formats["textgrid"][0]
    shutil.copytree(src, tmp_path / "tg")
    first = sorted((tmp_path / "tg").glob("*.TextGrid"))[0]
    first.write_text(
        first.read_text(encoding="utf-8").replace('name = "words"', 'name = "other"'),
        encoding="utf-8",
    )
    _tiny_partitions(monkeypatch)
    df, _ = read_checked_table(_config(tmp_path, corpus, tmp_path / "tg"))
    bad = df[df["reason"] == "unreadable_alignment"]
    assert list(bad["detail"]) == [f"{first.name}: no tier 'words' (tiers: other, phones)"]
    with pytest.raises(UserError, match=rf"input.textgrid.tier: {first.name}: no tier 'wrods'"):
        read_checked_table(_config(tmp_path, corpus, tmp_path / "tg", textgrid={"tier": "wrods"}))


@pytest.mark.cluster
def test_etl_plan_reads_alignment_files_on_the_workers_never_on_the_client(
    formats, corpus, tmp_path, monkeypatch, capfd
):
    """`etl plan` of a TextGrid folder in several partitions, with every TextGrid closed to the
    client process: the workers (other processes) read them; a user error raised on a worker (a tier
    no file has) reaches the user as one line."""
    import builtins

    from etl.cli import main

    real_open = builtins.open

    def guarded(file, *a, **k):
        if str(file).lower().endswith(".textgrid"):
            raise AssertionError(f"the client opened {file}")
        return real_open(file, *a, **k)

    _tiny_partitions(monkeypatch)
    monkeypatch.setattr(builtins, "open", guarded)
    path = formats["textgrid_speakers"][0]
    inp = _config(tmp_path, corpus, path).input
    assert table.read_raw(str(path), "textgrid", inp).npartitions > 2  # listed, not opened

    def run(**textgrid):
        cfg = {
            "input": {
                "alignment": str(path),
                "audio": str(corpus["root"] / "audio"),
                "segmentation": {"max_pause": 0.3},
                "textgrid": textgrid,
            },
            "output": {"path": str(tmp_path / "out")},
            "splits": {"dev_size": 4},
            "cluster": {"n_workers": 1, "dashboard_address": None},
        }
        config_file(tmp_path, cfg, "p.yaml")
        return main(["plan", "--json", str(tmp_path / "p.yaml")])

    assert run() == 0
    assert json.loads(capfd.readouterr().out)["rows_in"] == len(corpus["freqs"])
    assert run(tier="wrods") == 2
    err = [
        ln for ln in capfd.readouterr().err.splitlines() if ln.strip()
    ]  # no worker log of the failed task
    assert err == [
        f"etl: error: input.textgrid.tier: {sorted(p.name for p in path.iterdir())[0]}: no tier 'wrods' "
        "(tiers: A - words, A - phones, B - words, B - phones)"
    ], err


def test_manifest_blocks_split_anywhere_give_every_line_once(tmp_path):
    from etl.ingest.formats.common import block_lines

    data = b'{"a": 1}\n\n{"b": 22}\r\n{"c": 333}\nlast without newline'
    (tmp_path / "m.jsonl").write_bytes(data)
    url = str(tmp_path / "m.jsonl")
    for lo in range(len(data) + 1):
        for hi in range(lo, len(data) + 1):
            parts = (
                list(block_lines(url, 0, lo))
                + list(block_lines(url, lo, hi))
                + list(block_lines(url, hi))
            )
            assert b"".join(parts) == data, (lo, hi)
