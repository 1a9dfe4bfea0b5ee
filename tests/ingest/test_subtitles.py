"""Subtitle files others wrote (tests/data/subtitles/, PROVENANCE.md there): etl reads from each what
webvtt-py reads, cue by cue; every cue with text is in exactly one segment or one reject row, and no
segment's text differs from the cues in its span. YouTube's rolling repeats are removed by the
cues' layout and word times, never by comparing texts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pysubs2
import pytest
import webvtt

from etl.config import InputConfig, SegmentationConfig
from etl.ingest.formats import subtitles
from etl.ingest.formats.common import File
from etl.ingest.formats.cues import parse_cues
from etl.ingest.formats.decode import decode
from etl.ingest.segmentation import speech
from etl.schema import ENCODING

DATA = Path(__file__).parent.parent / "data" / "subtitles"
FILES = sorted(p.name for p in DATA.iterdir() if p.suffix in (".vtt", ".srt"))
ROLLING = {"youtube_dl.vtt", "rolling_twice.en.vtt"}
# The peer reads these differently, on purpose: webvtt-py (and srt) join a block without a timing
# to the cue before; etl rejects it (its line named) and keeps the cue as written.
JOINED_BY_PEER = {"missing_timeframe.srt": (1, "Caption text #1 2 Caption text #2")}
INP = InputConfig(segmentation=SegmentationConfig(max_pause=0.5, max_duration=20.0))


def _plain(text: str) -> str:
    return " ".join(re.sub(r"<[^>]*>", "", text).split())


def _clock(stamp: str) -> float:
    h, m, s = ([0] + stamp.split(":"))[-3:]
    return round(int(h) * 3600 + int(m) * 60 + float(s), 3)


def _peer_cues(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, plain text) of the cues with text, as webvtt-py reads them; in rolling
    captions, each cue's bottom line (the line being spoken; those above it scrolled up)."""
    caps = webvtt.from_srt(str(path)) if path.suffix == ".srt" else webvtt.read(str(path))
    out = []
    for c in caps:
        text = _plain(c.raw_text.split("\n")[-1] if path.name in ROLLING else c.raw_text)
        if text:
            out.append((_clock(c.start), _clock(c.end), text))
    return out


def _ours(path: Path):
    got = subtitles.read_file(File(str(path), path.name, path.stat().st_size))
    return got, [(round(u.start, 3), round(u.end, 3), u.text) for u in got.units]


def _our_cues(path: Path) -> list[tuple[float, float, str]]:
    text, _ = decode(path.read_bytes())
    cues, _ = parse_cues(text, path.suffix == ".vtt")
    out = [(round(c.start, 3), round(c.end, 3), _plain("\n".join(c.lines))) for c in cues]
    return [c for c in out if c[2]]


@pytest.mark.parametrize("name", [n for n in FILES if n not in ROLLING])
def test_etl_reads_each_cue_webvtt_py_reads(name):
    path = DATA / name
    got, _ = _ours(path)
    ours, peer = _our_cues(path), _peer_cues(path)
    if name in JOINED_BY_PEER:
        k, joined = JOINED_BY_PEER[name]
        assert peer[k - 1][2] == joined and ours[k - 1][2] == "Caption text #1"
        assert [(b.line, b.message) for b in got.bad] == [
            (5, "text outside any cue (no timing line): '2'")
        ]
        peer[k - 1] = ours[k - 1]
    assert ours == peer
    if name == "invalid_timeframe.vtt":  # the peer skips the broken cue; etl names it
        assert [(b.line, b.message) for b in got.bad] == [
            (6, "not a cue timing: '00:00:07.000 --> 00:00:1d.890'")
        ]
    elif name not in JOINED_BY_PEER:
        assert got.bad == []


def test_a_rolling_caption_file_gives_each_spoken_word_once_by_layout_not_text():
    got, _ = _ours(DATA / "youtube_dl.vtt")
    words = [u.text for u in got.units]
    assert got.timed and words == "yeah what this will happen is I'm telling".split()
    assert [w for w, *_ in _bottom_lines("youtube_dl.vtt")] == ["yeah", "what", words[2]]


def _bottom_lines(name):
    return [(t.split()[0], s, e) for s, e, t in _peer_cues(DATA / name)]


def test_a_phrase_said_twice_in_rolling_captions_is_kept_twice_with_its_word_times():
    got, _ = _ours(DATA / "rolling_twice.en.vtt")
    assert " ".join(u.text for u in got.units) == (
        "alpha bravo charlie delta india juliet kilo lima india juliet kilo lima [Music]"
    )
    lima = [(u.start, u.end) for u in got.units if u.text == "india"]
    assert lima == [(2.36, 2.52), (4.279, 4.52)]  # the second saying at its own times
    assert subtitles.is_rolling(parse_cues((DATA / "rolling_twice.en.vtt").read_text(), True)[0])
    assert not subtitles.is_rolling(parse_cues((DATA / "cue_tags.vtt").read_text(), True)[0])


def test_two_speakers_saying_the_same_line_keep_both_in_vtt_and_srt(tmp_path):
    vtt = DATA / "netflix_chicas_del_cable.vtt"
    srt = tmp_path / "netflix_chicas_del_cable.srt"
    pysubs2.load(str(vtt)).save(str(srt))  # the same cues, as pysubs2 writes SRT
    for path in (vtt, srt):
        ours = _our_cues(path)
        cue = [t for s, _, t in ours if s == 1629.64]
        assert cue == ["- Buenas noches. - Buenas noches."]
        assert len(ours) == 21 and ours == _peer_cues(path)


@pytest.mark.parametrize("name", FILES)
def test_every_cue_is_in_exactly_one_segment_or_reject_and_segments_hold_their_cues_text(
    name, tmp_path
):
    path = tmp_path / name.replace(".en.", ".")
    shutil.copy(DATA / name, path)
    rows = subtitles.read(str(path), INP)
    kept = [r for r in rows if r["alignment_error"] is None]
    rejects = [r for r in rows if r["alignment_error"] is not None]
    got, _ = _ours(path)
    assert sorted(r["id"] for r in rejects) == sorted(f"{path.name}:{b.line}" for b in got.bad)
    cues = [u for u in speech(got.units)]
    for u in cues:
        assert sum(r["start"] <= u.start and u.end <= r["end"] for r in kept) == 1, u
    for r in kept:
        inside = [u.text for u in cues if r["start"] <= u.start and u.end <= r["end"]]
        assert r["text"] == " ".join(inside)
    peer = _peer_cues(DATA / name)
    assert len(peer) == len({(s, e) for s, e, _ in peer})  # (a cue is one span)
    for s, e, text in peer:
        if name not in JOINED_BY_PEER or s != 0.5:
            span = [r for r in kept if r["start"] <= s + 1e-6 and e - 1e-6 <= r["end"]]
            assert len(span) == 1 and _plain(text) in span[0]["text"], (s, text)


def test_a_malformed_cue_is_one_reject_naming_file_and_line_and_the_others_are_read(tmp_path):
    path = tmp_path / "talk.vtt"
    path.write_text(
        "WEBVTT\n\n00:00.000 --> 00:01.000\nuno\n\n00:01.000 -> 00:02.000\ndos\n\n"
        "00:03.000 --> 00:02.500\ntres\n\n00:04.000 --> 00:05.000\ncuatro\n"
    )
    rows = subtitles.read(str(path), INP)
    assert [r["text"] for r in rows if r["text"]] == ["uno", "cuatro"]
    assert [r["alignment_error"] for r in rows if r["alignment_error"]] == [
        "talk.vtt line 6: not a cue timing: '00:01.000 -> 00:02.000'",
        "talk.vtt line 9: cue ends (00:02.500) before it starts (00:03.000)",
    ]


def test_short_timestamps_and_a_text_line_right_before_a_timing_are_read():
    doc = (
        "WEBVTT\n\n00:0.120 --> 00:1.500\nhola\nqué tal\n00:01.500 --> 0:02.25\nbien\n\n"
        "1\n00:00:03,000 --> 00:00:04,000\ncomma\n"
    )
    cues, bad = parse_cues(doc, vtt=True)
    assert bad == [] and [(c.start, c.end, c.lines) for c in cues] == [
        (0.12, 1.5, ["hola", "qué tal"]),
        (1.5, 2.25, ["bien"]),
        (3.0, 4.0, ["comma"]),
    ]
    srt_doc = "1\n00:00:01,000 --> 00:00:02,000\nuno\n2\n00:00:02,000 --> 00:00:03,000\ndos\n"
    cues, bad = parse_cues(srt_doc, vtt=False)
    assert bad == [] and [(c.identifier, c.lines) for c in cues] == [("1", ["uno"]), ("2", ["dos"])]


GB_SRT = "1\n00:00:01,000 --> 00:00:02,500\n你好，欢迎收看新闻联播。\n\n2\n00:00:03,000 --> 00:00:04,000\n今天天气很好。\n"


@pytest.mark.parametrize(
    "name, encoding, expected",
    [
        ("sample.srt", "utf-16", "utf-16-le"),  # Python writes its BOM, little-endian here
        ("sample.srt", "utf-16-be", "utf-16-be"),
        ("comments.vtt", "utf-8-sig", "utf-8"),
        ("comments.vtt", "cp1252", None),  # a legacy code page: charset-normalizer names one
        ("gb.srt", "gb2312", None),
    ],
)
def test_subtitles_in_other_encodings_are_decoded_and_the_encoding_is_told(
    name, encoding, expected, tmp_path
):
    text = GB_SRT if name == "gb.srt" else (DATA / name).read_text(encoding="utf-8")
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    decoded, used = decode(data)
    assert decoded == text and (used == expected or expected is None and used != "utf-8")
    path = tmp_path / name
    path.write_bytes(data)
    got = subtitles.read_file(File(str(path), name, len(data)))
    assert got.bad == [] and got.encoding == used
    if name == "gb.srt":
        assert [u.text for u in got.units] == ["你好，欢迎收看新闻联播。", "今天天气很好。"]
    else:
        assert got.units == _ours(DATA / name)[0].units


@pytest.mark.cluster
def test_a_build_reports_the_encodings_its_subtitles_were_decoded_from(corpus, tmp_path, capfd):
    """A real build of SRTs in UTF-8, UTF-16 (BOM) and cp1250: every cue is a clip, and report.json
    and the summary say which encodings were read."""
    import json

    from etl.cli import main

    from .. import alignment_writers as w
    from ..conftest import config_file
    from .test_formats import _segments

    segs = _segments(corpus)
    subs = tmp_path / "subs"
    subs.mkdir()
    recs = sorted({s[0] for s in segs})
    for k, rec in enumerate(recs):
        w.srt(subs / f"{rec}.srt", [s for s in segs if s[0] == rec])
        text = (subs / f"{rec}.srt").read_text(encoding="utf-8")
        encoding = {0: "utf-16", 1: "cp1250"}.get(k, "utf-8")
        (subs / f"{rec}.srt").write_bytes(text.encode(encoding))
    cfg = {
        "input": {"alignment": str(subs), "audio": str(corpus["root"] / "audio")},
        "output": {"path": str(tmp_path / "out"), "shard_hours": 0.01},
        "splits": {"dev_size": 3},
        "cluster": {"n_workers": 1, "dashboard_address": None},
    }
    config_file(tmp_path, cfg, "b.yaml")
    assert main(["build", str(tmp_path / "b.yaml")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["rows_in"] == report["rows_out"] == len(segs)
    found = report["alignment_encodings"]
    assert found.pop("utf-16-le") == 1 and found.pop("utf-8") == len(recs) - 2
    assert list(found.values()) == [1]  # cp1250 text: the legacy code page charset-normalizer names
    assert "alignment files by encoding: " in capfd.readouterr().out


def test_input_subtitles_encoding_reads_a_short_file_detection_would_misname(tmp_path):
    from etl.config import SubtitlesConfig, load_config
    from etl.errors import UserError

    text = "1\n00:00:01,000 --> 00:00:02,000\n句子 1\n"
    path = tmp_path / "short.srt"
    path.write_bytes(text.encode("gb2312"))
    assert decode(path.read_bytes())[1] != "gb2312"  # too little text to tell GB2312 apart
    inp = InputConfig(subtitles=SubtitlesConfig(encoding="gb2312"))
    rows = subtitles.read(str(path), inp)
    assert [r["text"] for r in rows] == ["句子 1"] and rows[0][ENCODING] == ("gb2312",)
    path.write_bytes("1\n00:00:01,000 --> 00:00:02,000\n€\n".encode("cp1252"))
    (bad,) = subtitles.read(str(path), inp)
    assert bad["alignment_error"] == "short.srt line 3: not gb2312 text (input.subtitles.encoding)"
    with pytest.raises(UserError, match="'input.subtitles.encoding': 'klingon' is not an encoding"):
        load_config(None, ["input.subtitles.encoding=klingon"], check_inputs=False)


def test_rolling_captions_whose_lines_of_one_space_were_stripped_still_say_each_word_once():
    text = (DATA / "rolling_twice.en.vtt").read_text(encoding="utf-8")
    stripped = "\n".join(line.rstrip() for line in text.split("\n"))
    cues, bad = parse_cues(stripped, vtt=True)
    got, _ = subtitles.units(cues)
    # the first cue's empty top line ends it by the rules; its timed words are still its own
    assert bad == [] and " ".join(u.text for u in got) == (
        "alpha bravo charlie delta india juliet kilo lima india juliet kilo lima [Music]"
    )
    assert [(u.start, u.end) for u in got if u.text == "india"] == [(2.36, 2.52), (4.279, 4.52)]
