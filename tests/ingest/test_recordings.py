"""Recording references -> files: nested folders, paths in the table, downloader names, ambiguity, safety.
One recursive listing, then a join; these are fast (empty files): the real-audio corpus is in
test_real_corpus.py."""

from __future__ import annotations

import unicodedata
import uuid

import fsspec
import pandas as pd
import pytest

from etl.ingest.recordings import list_audio, listing_summary, reference_problem, resolve

YT = r"\[(?P<id>[A-Za-z0-9_-]{11})\]"  # yt-dlp's default "%(title)s [%(id)s].%(ext)s"
TREE = [
    "2022/s1/Sabor sjednica 1 [dQw4w9WgXcQ].webm",
    "2022/s1/notes.txt",
    "2023/abc.mp3",
    "2023/x/intro.wav",
    "2024/intro.flac",  # the stem 'intro' names two recordings
    "2024/deep/er/talk.wav",
    "2024/deep/er/talk.mp3",  # the same recording in two formats: not ambiguous
    ".trash/2023/abc.mp3",  # hidden: never listed
]


def _tree(root) -> None:
    for rel in TREE:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def _urls(refs, listing) -> list:
    return resolve(pd.Series(refs), listing)["url"].tolist()


def test_nested_files_resolve_by_path_with_or_without_extension_by_stem_and_by_name(tmp_path):
    _tree(tmp_path)
    listing = list_audio(str(tmp_path))
    a = str(tmp_path / "2023/abc.mp3")
    assert (
        _urls(
            [
                "2023/abc",
                "2023/abc.mp3",
                "./2023/abc.mp3",
                "abc",
                "abc.mp3",
                "2023//abc",
                "2022/../2023/abc",
            ],
            listing,
        )
        == [a] * 7
    )
    talk = str(tmp_path / "2024/deep/er/talk.wav")  # the lossless format of the recording wins
    assert _urls(["talk", "2024/deep/er/talk", "talk.mp3"], listing) == [
        talk,
        talk,
        str(tmp_path / "2024/deep/er/talk.mp3"),
    ]
    assert _urls(["2023/abc.wav", "2022/abc", "abc/2023", "notes"], listing) == [None] * 4


def test_a_stem_in_two_folders_is_ambiguous_and_names_its_candidates(tmp_path):
    _tree(tmp_path)
    listing = list_audio(str(tmp_path))
    got = resolve(pd.Series(["intro", "2024/intro", "intro.wav"]), listing)
    assert got["url"].tolist() == [
        None,
        str(tmp_path / "2024/intro.flac"),
        str(tmp_path / "2023/x/intro.wav"),
    ]
    assert got["candidates"].iloc[0] == ("2023/x/intro.wav", "2024/intro.flac")
    assert got["candidates"].iloc[1:].isna().all()


def test_recording_pattern_maps_yt_dlp_names_to_their_ids_and_reports_the_files_it_does_not_match(
    tmp_path,
):
    _tree(tmp_path)
    listing = list_audio(str(tmp_path), YT)
    yt = str(tmp_path / "2022/s1/Sabor sjednica 1 [dQw4w9WgXcQ].webm")
    refs = pd.Series(
        ["dQw4w9WgXcQ", "2022/s1/Sabor sjednica 1 [dQw4w9WgXcQ]", "2023/abc", "abc", "QQQQQQQQQQQ"]
    )
    assert _urls(refs, listing) == [
        yt,
        yt,
        str(tmp_path / "2023/abc.mp3"),
        str(tmp_path / "2023/abc.mp3"),
        None,
    ]
    summary = listing_summary(listing, refs, resolve(refs, listing))
    assert (
        summary["unmatched_by_recording_pattern"]["count"] == 5
    )  # no id, but still found by path or stem
    assert "2023/abc.mp3" in summary["unmatched_by_recording_pattern"]["examples"]
    assert summary["unmatched_recordings"] == {"count": 1, "examples": ["QQQQQQQQQQQ"]}


def test_listing_summary_shows_unused_files_unmatched_ids_and_ambiguous_stems(tmp_path):
    _tree(tmp_path)
    listing = list_audio(str(tmp_path))
    refs = pd.Series(["2023/abc", "abc", "intro", "nope", None])
    s = listing_summary(listing, refs, resolve(refs, listing))
    assert s["audio_files"] == 6
    assert (
        s["unused_audio_files"]["count"] == 5
        and "2023/x/intro.wav" in s["unused_audio_files"]["examples"]
    )
    assert s["unmatched_recordings"] == {"count": 1, "examples": ["nope"]}
    assert s["ambiguous_recordings"] == {
        "count": 1,
        "examples": {"intro": ["2023/x/intro.wav", "2024/intro.flac"]},
    }


def test_names_match_across_unicode_forms_in_folders_too(tmp_path):
    d = tmp_path / unicodedata.normalize("NFD", "sjednice_č")
    d.mkdir()
    (d / unicodedata.normalize("NFD", "govor_ž.wav")).write_bytes(b"")
    listing = list_audio(str(tmp_path))
    nfc = unicodedata.normalize("NFC", "sjednice_č/govor_ž")
    assert (
        _urls([nfc, unicodedata.normalize("NFC", "govor_ž")], listing)
        == [str(d / unicodedata.normalize("NFD", "govor_ž.wav"))] * 2
    )


@pytest.mark.parametrize(
    "ref, ok",
    [
        ("2023/abc", True),
        ("./2023/abc.mp3", True),
        ("a/../b", True),
        ("Title [x].webm", True),
        ("file:x", True),
        ("../x", False),
        ("a/../../x", False),
        ("/abs/x.wav", False),
        ("s3://b/x.wav", False),
        ("C:\\x.wav", False),
        ("a\\b", False),
        ("~/x", False),
        ("a\nb", False),
        ("", False),
        (".", False),
    ],
)
def test_only_paths_that_stay_inside_the_audio_folder_are_references(ref, ok):
    assert (reference_problem(ref) is None) is ok


def test_with_no_audio_folder_absolute_paths_and_urls_are_the_users_choice(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    assert reference_problem(str(tmp_path / "a.wav"), allow_absolute=True) is None
    assert reference_problem("s3://bucket/a.wav", allow_absolute=True) is None
    refs = pd.Series([str(tmp_path / "a.wav"), str(tmp_path / "gone.wav"), "a.wav"])
    got = resolve(refs, None)
    assert got["url"].tolist() == [
        str(tmp_path / "a.wav"),
        None,
        None,
    ]  # a relative path is never opened
    assert got["key"].iloc[0] == str(tmp_path / "a.wav")


def test_nested_listing_on_an_fsspec_memory_folder():
    root = f"memory://etl-nested-{uuid.uuid4().hex}"
    for rel in ("2022/s1/a [dQw4w9WgXcQ].webm", "2023/b.mp3"):
        with fsspec.open(f"{root}/{rel}", "wb") as f:
            f.write(b"x")
    try:
        listing = list_audio(root, YT)
        urls = _urls(["dQw4w9WgXcQ", "2023/b"], listing)
        assert urls[0].startswith("memory://") and urls[1].endswith("/2023/b.mp3")
        with fsspec.open(urls[0], "rb") as f:
            assert f.read() == b"x"
    finally:
        fs, path = fsspec.core.url_to_fs(root)
        fs.rm(path, recursive=True)
