"""Faults while building: transient read errors are retried, corrupt data is rejected at once, a
worker killed mid-build costs nothing, and a worker memory limit far below a long recording's
decoded size still processes it (streaming keeps memory flat)."""
from __future__ import annotations

import collections
import io
import os

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from fsspec.spec import AbstractFileSystem

from etl import shards
from etl.shards import ShardTask, run_shard
from etl.synth import dominant_frequency


# ---------------------------------------------------------------- a flaky storage (real fsspec)

class _DroppingFile(io.FileIO):
    """A local file read in small blocks that raises ConnectionResetError after ``fail_after`` bytes."""

    def __init__(self, path: str, fail_after: int | None):
        super().__init__(path, "rb")
        self.fail_after, self.served = fail_after, 0

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.served >= self.fail_after:
            raise ConnectionResetError(104, "Connection reset by peer")
        data = super().read(16384 if n is None or n < 0 else min(n, 16384))
        self.served += len(data)
        return data


class FlakyFS(AbstractFileSystem):
    """``flaky:///abs/path``: local files whose first ``FAILS[path]`` opens break off mid-read."""

    protocol = "flaky"
    FAILS: dict = {}
    OPENS: collections.Counter = collections.Counter()

    def _open(self, path, mode="rb", **kwargs):
        path = "/" + self._strip_protocol(path).lstrip("/")
        self.OPENS[path] += 1
        failing = self.FAILS.get(path, 0) >= self.OPENS[path]
        return _DroppingFile(path, os.path.getsize(path) // 2 if failing else None)


fsspec.register_implementation("flaky", FlakyFS, clobber=True)


@pytest.fixture
def flaky(monkeypatch):
    monkeypatch.setattr(shards, "READ_RETRY_DELAYS", (0.05, 0.05, 0.05))  # the pauses, not the logic
    FlakyFS.FAILS.clear()
    FlakyFS.OPENS.clear()
    return FlakyFS


def _task(corpus, recordings: list[str], out, url) -> ShardTask:
    """One shard of the corpus's own segments of ``recordings`` (``url``: recording file -> URL)."""
    (out / ".parts").mkdir(parents=True)  # as build() prepares it
    rows = []
    for r in corpus["rows"]:
        if (r["recording"].strip() in [os.path.splitext(f)[0] for f in recordings] and r["id"] in corpus["freqs"]
                and r["id"] not in {x["id"] for x in rows}):  # the table's duplicate row is not ours
            rows.append({"id": r["id"], "recording": r["recording"].strip(), "start": r["start"], "end": r["end"],
                         "duration": r["end"] - r["start"], "text": r["text"].lower(), "text_raw": r["text"],
                         "hypothesis": r["asr"], "similarity": 1.0, "split": "train"})
    return ShardTask(index=0, recordings=[(os.path.splitext(f)[0], url(str(corpus["root"] / "audio" / f)))
                                          for f in recordings],
                     rows=pd.DataFrame(rows), seconds=60.0, out=str(out))


def _clips(out) -> dict:
    """id -> (audio bytes, dominant frequency) of the shard's train part."""
    t = pq.read_table(out / ".parts" / "train-shard00000.parquet").to_pylist()
    clips = {}
    for row in t:
        x, sr = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="int16", always_2d=True)
        clips[row["id"]] = (row["audio"]["bytes"], dominant_frequency(x[:, 0], sr))
    return clips


# mp3 and wav stream into ffmpeg's stdin; m4a needs seeking and is copied to a temporary file first
FILES = ["mp3_48k_stereo.mp3", "wav_16k_mono.wav", "m4a_44k_stereo.m4a"]


def test_a_read_error_mid_recording_is_retried_and_every_clip_is_written_once(corpus, tmp_path, flaky):
    clean = run_shard(_task(corpus, FILES, tmp_path / "clean", str))
    expected = _clips(tmp_path / "clean")
    paths = [str(corpus["root"] / "audio" / f) for f in FILES]
    for p in paths:
        flaky.FAILS[p] = 2  # the connection drops half-way, twice; the third read gets through
    res = run_shard(_task(corpus, FILES, tmp_path / "flaky", lambda p: "flaky://" + p))
    assert res["rejects"] == [] and clean["rejects"] == []
    assert [flaky.OPENS[p] for p in paths] == [3, 3, 3]
    got = _clips(tmp_path / "flaky")
    assert sorted(got) == sorted(expected)  # no clip lost, none written twice
    for rid, (data, freq) in got.items():
        assert data == expected[rid][0], rid  # bit-identical to a clean read
        assert abs(freq - corpus["freqs"][rid]) < 3.0, rid


def test_a_recording_that_keeps_failing_is_rejected_after_the_retries_not_the_build(corpus, tmp_path, flaky):
    path = str(corpus["root"] / "audio" / "mp3_48k_stereo.mp3")
    flaky.FAILS[path] = 99
    res = run_shard(_task(corpus, ["mp3_48k_stereo.mp3", "wav_16k_mono.wav"], tmp_path / "out",
                          lambda p: "flaky://" + p))
    assert flaky.OPENS[path] == len(shards.READ_RETRY_DELAYS) + 1
    bad = [r for r in res["rejects"] if r["recording"] == "mp3_48k_stereo"]
    n_mp3 = sum(1 for rid in corpus["freqs"] if rid.startswith("mp3_48k_stereo-"))
    # every row accounted for: the clips cut before the last failure are kept, the rest rejected
    assert len(bad) + sum(1 for rid in _clips(tmp_path / "out") if rid.startswith("mp3")) == n_mp3
    assert len(bad) > 0
    assert {r["reason"] for r in bad} == {"unreadable_audio"}
    assert all("ConnectionResetError" in r["detail"] for r in bad)
    assert res["parts"]["train"]["rows"] >= 4  # the wav's clips are all there


def test_a_corrupt_recording_is_rejected_at_once_without_retries(corpus, tmp_path, flaky):
    path = tmp_path / "corrupt.mp3"
    path.write_bytes(b"\x00garbage" * 4000)
    (tmp_path / "out" / ".parts").mkdir(parents=True)
    task = ShardTask(index=0, recordings=[("corrupt", "flaky://" + str(path))], out=str(tmp_path / "out"),
                     seconds=3.0, rows=pd.DataFrame([{
                         "id": "c-0", "recording": "corrupt", "start": 0.5, "end": 2.0, "duration": 1.5,
                         "text": "a", "text_raw": "a", "hypothesis": "a", "similarity": 1.0, "split": "train"}]))
    res = run_shard(task)
    assert flaky.OPENS[str(path)] == 1
    assert [(r["id"], r["reason"]) for r in res["rejects"]] == [("c-0", "unreadable_audio")]
    assert "ConnectionResetError" not in res["rejects"][0]["detail"]
