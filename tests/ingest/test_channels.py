"""One channel of a file as the stages name it: a CTM channel becomes a reference ``rec#channel=N``
only when its recording has words on several channels; the join finds the file of the reference
and keeps the channel in the URL and the key; default ids spell it ``rec_chN``."""

from __future__ import annotations

import pandas as pd

from etl.config import InputConfig
from etl.ingest.formats import ctm
from etl.ingest.recordings import list_audio, listing_summary, resolve


def _ctm_rows(tmp_path, text: str) -> list[dict]:
    (tmp_path / "a.ctm").write_text(text)
    return ctm.read(str(tmp_path / "a.ctm"), InputConfig())


def test_a_recording_on_one_channel_keeps_its_name(tmp_path):
    rows = _ctm_rows(tmp_path, "r1 1 0.5 0.3 hi\nr1 1 0.9 0.3 there\nr2 A 0.1 0.2 yes\n")
    assert [r["recording"] for r in rows] == ["r1", "r2"]


def test_a_recording_on_two_channels_names_each(tmp_path):
    rows = _ctm_rows(tmp_path, "r1 A 0.5 0.3 hi\nr1 B 0.5 0.3 hello\nr2 1 0 1 x\nr2 2 0 1 y\n")
    assert [(r["recording"], r["text"]) for r in rows] == [
        ("r1#channel=1", "hi"),
        ("r1#channel=2", "hello"),
        ("r2#channel=1", "x"),
        ("r2#channel=2", "y"),
    ]


def test_an_unknown_channel_label_of_a_two_channel_recording_is_malformed(tmp_path):
    rows = _ctm_rows(tmp_path, "r1 A 0.5 0.3 hi\nr1 left 0.5 0.3 hello\nr2 1 0 1 x\n")
    assert rows[0]["recording"] == "r1" and "'left'" in rows[0]["alignment_error"]
    assert rows[1]["recording"] == "r2"


def test_the_join_finds_the_file_of_a_channel_and_keeps_the_channel(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "call.sph").write_bytes(b"")
    listing = list_audio(str(tmp_path))
    refs = pd.Series(["call#channel=2", "call", "sub/call#channel=1", "nope#channel=1"])
    got = resolve(refs, listing)
    path = str(tmp_path / "sub" / "call.sph")
    assert got["url"].tolist() == [path + "#channel=2", path, path + "#channel=1", None]
    assert got["key"].tolist() == ["sub/call#channel=2", "sub/call", "sub/call#channel=1", None]
    assert listing_summary(listing, refs[:1], got[:1])["unused_audio_files"]["count"] == 0


def test_default_ids_spell_the_channel(tmp_path):
    from etl.ingest.rows import _make_id

    assert (
        _make_id("{recording}_{start:.1f}-{end:.1f}", "r1#channel=2", 0.5, 1.0) == "r1_ch2_0.5-1.0"
    )
    assert _make_id("{recording}_{start:.1f}-{end:.1f}", "r1", 0.5, 1.0) == "r1_0.5-1.0"


def test_with_an_audio_folder_a_wav_scp_entry_is_found_there_by_path_or_file_name(tmp_path):
    """The recipe ran elsewhere (/export/corpora/...): its files are found in the audio folder by
    name, never opened where wav.scp says; an entry inside the folder is that file; an unread pipe
    finds nothing, not even a file named like its recording id."""
    from etl.ingest.wav_scp import UnreadPipe

    (tmp_path / "swb1" / "disc2").mkdir(parents=True)
    for name in ("sw02001.sph", "disc2/sw02002.sph", "sw02003-A.wav"):
        (tmp_path / "swb1" / name).write_bytes(b"")
    listing = list_audio(str(tmp_path / "swb1"))
    scp = {
        "sw02001-B": "/export/corpora3/LDC/LDC97S62/swb1/sw02001.sph#channel=2",
        "sw02002-A": str(tmp_path / "swb1" / "disc2" / "sw02002.sph") + "#channel=1",
        "sw02003-A": UnreadPipe("sox x -t wav - trim 0 1 |"),
        "sw02004-A": "/elsewhere/sw02004.sph",
    }
    got = resolve(pd.Series(list(scp)), listing, scp)
    root = str(tmp_path / "swb1")
    assert got["url"].tolist() == [
        root + "/sw02001.sph#channel=2",
        root + "/disc2/sw02002.sph#channel=1",
        None,
        None,
    ]
    assert got["key"].tolist()[:2] == ["sw02001#channel=2", "disc2/sw02002#channel=1"]


def test_each_channel_gets_the_hypothesis_words_of_its_own_channel(tmp_path):
    from etl.config import CtmConfig

    (tmp_path / "a.ctm").write_text("r1 A 0.5 0.3 hi\nr1 B 0.5 0.3 hello\n")
    (tmp_path / "h.ctm").write_text("r1 A 0.5 0.3 high\nr1 B 0.5 0.3 yellow\n")
    inp = InputConfig(ctm=CtmConfig(hypothesis=str(tmp_path / "h.ctm")))
    rows = ctm.read(str(tmp_path / "a.ctm"), inp)
    assert [(r["text"], r["hypothesis"]) for r in rows] == [("hi", "high"), ("hello", "yellow")]
