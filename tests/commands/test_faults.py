"""Faults while building: transient read errors are retried, corrupt data is rejected at once, a
worker killed mid-build costs nothing, and a worker memory limit far below a long recording's
decoded size still processes it (streaming keeps memory flat)."""

from __future__ import annotations

import collections
import concurrent.futures
import io
import json
import math
import os
import pathlib
import signal
import time

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml
from fsspec.spec import AbstractFileSystem

from etl.audio import spans
from etl.shards.task import ShardTask, run_shard
from etl.testing.synth import dominant_frequency

pytestmark = pytest.mark.cluster

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
    monkeypatch.setattr(spans, "READ_RETRY_DELAYS", (0.05, 0.05, 0.05))  # the pauses, not the logic
    FlakyFS.FAILS.clear()
    FlakyFS.OPENS.clear()
    return FlakyFS


def _task(corpus, recordings: list[str], out, url) -> ShardTask:
    """One shard of the corpus's own segments of ``recordings`` (``url``: recording file -> URL)."""
    (out / ".parts").mkdir(parents=True)  # as build() prepares it
    rows = []
    for r in corpus["rows"]:
        if (
            r["recording"].strip() in [os.path.splitext(f)[0] for f in recordings]
            and r["id"] in corpus["freqs"]
            and r["id"] not in {x["id"] for x in rows}
        ):  # the table's duplicate row is not ours
            rows.append(
                {
                    "id": r["id"],
                    "recording": r["recording"].strip(),
                    "start": r["start"],
                    "end": r["end"],
                    "duration": r["end"] - r["start"],
                    "text": r["text"].lower(),
                    "text_raw": r["text"],
                    "hypothesis": r["asr"],
                    "similarity": 1.0,
                    "split": "train",
                }
            )
    return ShardTask(
        index=0,
        recordings=[
            (os.path.splitext(f)[0], url(str(corpus["root"] / "audio" / f))) for f in recordings
        ],
        rows=pd.DataFrame(rows),
        seconds=60.0,
        out=str(out),
    )


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


def test_a_read_error_mid_recording_is_retried_and_every_clip_is_written_once(
    corpus, tmp_path, flaky
):
    clean = run_shard(_task(corpus, FILES, tmp_path / "clean", str))
    expected = _clips(tmp_path / "clean")
    paths = [str(corpus["root"] / "audio" / f) for f in FILES]
    for p in paths:
        flaky.FAILS[p] = 2  # the connection drops half-way, twice; the third read gets through
    res = run_shard(_task(corpus, FILES, tmp_path / "flaky", lambda p: "flaky://" + p))
    assert res.rejects == [] and clean.rejects == []
    assert [flaky.OPENS[p] for p in paths] == [3, 3, 3]
    got = _clips(tmp_path / "flaky")
    assert sorted(got) == sorted(expected)  # no clip lost, none written twice
    for rid, (data, freq) in got.items():
        assert data == expected[rid][0], rid  # bit-identical to a clean read
        assert abs(freq - corpus["freqs"][rid]) < 3.0, rid
    # the fingerprinter restarts with the decode: the same hashes, none twice
    part = pathlib.Path(".parts") / "fingerprints" / "shard-00000.parquet"
    prints = pq.read_table(tmp_path / "clean" / part)
    assert prints.num_rows > 0 and pq.read_table(tmp_path / "flaky" / part).equals(prints)


def test_a_recording_that_keeps_failing_is_rejected_after_the_retries_not_the_build(
    corpus, tmp_path, flaky
):
    path = str(corpus["root"] / "audio" / "mp3_48k_stereo.mp3")
    flaky.FAILS[path] = 99
    res = run_shard(
        _task(
            corpus,
            ["mp3_48k_stereo.mp3", "wav_16k_mono.wav"],
            tmp_path / "out",
            lambda p: "flaky://" + p,
        )
    )
    assert flaky.OPENS[path] == len(spans.READ_RETRY_DELAYS) + 1
    bad = [r for r in res.rejects if r["recording"] == "mp3_48k_stereo"]
    n_mp3 = sum(1 for rid in corpus["freqs"] if rid.startswith("mp3_48k_stereo-"))
    # every row accounted for: the clips cut before the last failure are kept, the rest rejected
    assert len(bad) + sum(1 for rid in _clips(tmp_path / "out") if rid.startswith("mp3")) == n_mp3
    assert len(bad) > 0
    assert {r["reason"] for r in bad} == {"unreadable_audio"}
    assert all("ConnectionResetError" in r["detail"] for r in bad)
    assert res.parts["train"].rows >= 4  # the wav's clips are all there


def test_a_corrupt_recording_is_rejected_at_once_without_retries(corpus, tmp_path, flaky):
    path = tmp_path / "corrupt.mp3"
    path.write_bytes(b"\x00garbage" * 4000)
    (tmp_path / "out" / ".parts").mkdir(parents=True)
    task = ShardTask(
        index=0,
        recordings=[("corrupt", "flaky://" + str(path))],
        out=str(tmp_path / "out"),
        seconds=3.0,
        rows=pd.DataFrame(
            [
                {
                    "id": "c-0",
                    "recording": "corrupt",
                    "start": 0.5,
                    "end": 2.0,
                    "duration": 1.5,
                    "text": "a",
                    "text_raw": "a",
                    "hypothesis": "a",
                    "similarity": 1.0,
                    "split": "train",
                }
            ]
        ),
    )
    res = run_shard(task)
    assert flaky.OPENS[str(path)] == 1
    assert [(r["id"], r["reason"]) for r in res.rejects] == [("c-0", "unreadable_audio")]
    assert "ConnectionResetError" not in res.rejects[0]["detail"]


# ---------------------------------------------------------------- workers that die or run short of memory


def test_a_worker_killed_mid_build_costs_nothing(built, corpus, tmp_path):
    """SIGKILL one of two ``dask worker`` processes (no nanny: it stays dead) while shards run."""
    from distributed import Client

    from etl.commands.build import build
    from etl.config import load_config

    from ..cluster.test_cluster import dask_processes, dataset_content
    from ..conftest import write_config

    out = tmp_path / "out"
    cfg = load_config(write_config(corpus, out))
    with (
        dask_processes(tmp_path, 2, "--no-nanny") as (sched_file, workers),
        Client(scheduler_file=sched_file) as client,
    ):
        pids = client.run(os.getpid)  # worker address -> pid
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(build, cfg, client)
            victim = None
            deadline = time.time() + 120
            while victim is None and time.time() < deadline and not running.done():
                busy = {
                    w: ks
                    for w, ks in client.processing().items()
                    if any("etl-shard" in str(k) for k in ks)
                }
                if len(busy) == 2:  # both workers hold a shard: kill one in the middle of its task
                    victim = sorted(busy)[0]
                    os.kill(pids[victim], signal.SIGKILL)
                time.sleep(0.02)
            assert victim is not None and not running.done(), (
                "the kill came too late to test anything"
            )
            report = running.result(timeout=300)
        assert len(client.scheduler_info()["workers"]) == 1  # it really died
    assert dataset_content(out) == dataset_content(built["out"])
    assert report["rejects"] == built["report"]["rejects"]
    assert report["content_hash"] == built["report"]["content_hash"]
    assert not [
        p for p in out.rglob("*") if ".tmp-" in p.name
    ]  # the killed task's half file is gone


def test_workers_paused_for_memory_with_nothing_to_run_stop_the_build_with_one_line(
    built, corpus, tmp_path, capsys
):
    """Dask pauses a worker at a fraction of its memory_limit and waits for memory to fall, without end
    if it never does. Here every worker is paused from its start (the pause fraction at 1 %): the build
    stops after cluster.stall_timeout with one line naming the memory and the keys to change, leaves
    nothing half-written, and the same config with room then builds every row."""
    import dask
    import distributed  # noqa: F401  (its config defaults loaded before the set below, which would drop them on exit)

    from etl.cli import main

    from ..cluster.test_cluster import dataset_content
    from ..conftest import write_config

    out = tmp_path / "out"
    cfg = write_config(
        corpus,
        out,
        cluster={
            "n_workers": 2,
            "dashboard_address": None,
            "memory_limit": "4GiB",
            "stall_timeout": 3,
        },
    )
    tight = {
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": 0.01,
    }  # a nanny hands its config to its worker
    with dask.config.set(tight):
        assert main(["build", cfg]) == 2
    err = capsys.readouterr().err
    [line] = [ln for ln in err.splitlines() if ln.startswith("etl: error:")]
    assert "every worker (2) has been paused for memory with nothing to run" in line
    assert (
        "memory_limit 4,096 MB" in line
        and "cluster.memory_limit" in line
        and "cluster.stall_timeout" in line
    )
    assert "waiting up to cluster.stall_timeout (3 s)" in err  # said before it stopped
    assert "Traceback" not in err
    assert not list(out.glob("data/*.parquet"))
    assert main(["build", cfg]) == 0
    assert dataset_content(out) == dataset_content(built["out"])


@pytest.mark.parametrize("command", ["plan", "sample"])
def test_plan_and_sample_on_workers_paused_for_memory_stop_with_the_same_one_line(
    corpus, tmp_path, capsys, command
):
    """``etl plan`` and ``etl sample`` wait on the same paused workers: the same one line, exit 2."""
    import dask
    import distributed  # noqa: F401  (its config defaults loaded before the set below, which would drop them on exit)

    from etl.cli import main

    from ..conftest import write_config

    cfg = write_config(
        corpus,
        tmp_path / "o",
        cluster={
            "n_workers": 1,
            "dashboard_address": None,
            "memory_limit": "4GiB",
            "stall_timeout": 3,
        },
    )
    extra = ["--out", str(tmp_path / "review")] if command == "sample" else []
    with dask.config.set(
        {
            "distributed.worker.memory.target": False,
            "distributed.worker.memory.spill": False,
            "distributed.worker.memory.pause": 0.01,
        }
    ):
        assert main([command, cfg, *extra]) == 2
    err = capsys.readouterr().err
    [line] = [
        ln
        for ln in err.splitlines()
        if ln.startswith(("etl: error:", "etl sample: error:", "etl plan: error:"))
    ]
    assert (
        "every worker (1) has been paused for memory with nothing to run" in line
        and "cluster.stall_timeout" in line
    )
    assert "Traceback" not in err


_KEPT = []  # on the worker: what fragment_heap keeps alive


def fragment_heap(dask_worker=None) -> int:
    """On a worker: ~200 MB of 2-KB objects freed but every 64th, so glibc keeps nearly all of it (it
    only trims the top of its heap by itself). The process RSS after."""
    import psutil

    objs = [bytes(2000) + bytes([i % 256]) for i in range(100_000)]
    _KEPT.extend(objs[::64])
    del objs
    return psutil.Process().memory_info().rss


def test_a_worker_paused_by_memory_the_allocator_kept_is_unpaused_and_the_build_finishes(
    built, corpus, tmp_path, capsys
):
    """Memory freed by Python but kept by the allocator pauses a worker that Dask alone never resumes:
    etl's watch asks it to give the memory back (``stall.release_memory``), and the build goes on."""
    from etl.cluster.session import ClusterSession
    from etl.cluster.stall import release_memory
    from etl.commands.build import build
    from etl.config import load_config

    from ..cluster.test_cluster import dataset_content
    from ..conftest import write_config

    out = tmp_path / "out"
    cluster = {
        "n_workers": 1,
        "dashboard_address": None,
        "memory_limit": "4GiB",
        "stall_timeout": 60,
    }
    cfg = load_config(write_config(corpus, out, cluster=cluster))
    with ClusterSession(cfg.cluster) as session:
        client = session.client
        # the worker as a build leaves it (its modules loaded, its caches filled), so the pause
        # below is against what the build itself needs, not against a fresh worker's memory
        build(load_config(write_config(corpus, tmp_path / "warm", cluster=cluster)), client)
        client.run(release_memory)
        [high] = client.run(fragment_heap).values()
        limit = 4 * 2**30
        # paused from now on: its memory is 100 MB over the pause threshold, until it gives some back
        client.run(
            lambda dask_worker: setattr(
                dask_worker.memory_manager, "memory_pause_fraction", (high - (100 << 20)) / limit
            )
        )
        deadline = time.time() + 10
        while not [
            w for w in client.scheduler_info()["workers"].values() if w["status"] == "paused"
        ]:
            assert time.time() < deadline, "the worker did not pause"
            time.sleep(0.1)
        report = build(cfg, client)
        [after] = client.run(lambda: __import__("psutil").Process().memory_info().rss).values()
    assert report["rows_in"] == built["report"]["rows_in"]
    assert dataset_content(out) == dataset_content(built["out"])
    assert after < high - (100 << 20)
    assert "paused for memory" not in capsys.readouterr().err  # freed at the first look: no warning


def _tone_corpus(folder, seconds: float, segs, memory_limit) -> str:
    """FOLDER/audio/long.wav (16 kHz mono, SECONDS long, SEGS its tones), its rows and a 1-worker
    config with MEMORY_LIMIT; the config's path."""
    from etl.testing.synth import write_tone_recording

    (folder / "audio").mkdir(parents=True)
    write_tone_recording(str(folder / "audio" / "long.wav"), seconds, segs, 16000, 1)
    rows = [
        {"id": f"long-{k}", "recording": "long", "start": s.start, "end": s.end, "text": f"t {k}"}
        for k, s in enumerate(segs)
    ]
    (folder / "alignment.json").write_text(json.dumps(rows))
    cluster = {"n_workers": 1, "memory_limit": memory_limit, "dashboard_address": None}
    doc = {
        "input": {"alignment": "alignment.json", "audio": "audio"},
        "output": {"path": "out"},
        "splits": {"dev_size": 2},
        "cluster": {**cluster, "stall_timeout": 120},  # a stall fails with its line, not a timeout
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(doc))
    return str(folder / "c.yaml")


def test_a_memory_limit_far_below_a_long_recordings_decoded_size_still_processes_it(tmp_path):
    from etl.cluster.session import ClusterSession
    from etl.cluster.stall import release_memory
    from etl.commands.build import build
    from etl.config import load_config
    from etl.testing.synth import tone_segments

    # the worker's memory as a build leaves it: a short build of the same kind on a roomy worker
    warm = load_config(_tone_corpus(tmp_path / "warm", 20.0, tone_segments(3, length=3.0), "4GB"))
    with ClusterSession(warm.cluster) as _s_probe:
        build(warm, _s_probe.client)
        idle = max(_s_probe.client.run(release_memory).values())
    limit = idle + (120 << 20)  # dask pauses a worker at 80% of it and kills it at 95%
    decoded_per_hour = 16000 * 2 * 3600  # 16 kHz int16 mono: 115 MB an hour
    hours = math.ceil(2 * limit / decoded_per_hour * 2) / 2  # decoded size at least twice the limit
    seconds = hours * 3600
    segs = tone_segments(12, first_start=0, length=3.0, gap=0, base_freq=300.0, step=60.0)
    for k, s in enumerate(segs):  # spread over the whole recording, the last at its very end
        s.start = round((seconds - 4.0) * k / (len(segs) - 1), 3)
        s.end = round(s.start + 3.0, 3)
    folder = tmp_path / "long"
    try:
        cfg = load_config(_tone_corpus(folder, seconds, segs, int(limit)))
        with ClusterSession(cfg.cluster) as session:
            client = session.client
            before = client.run(os.getpid)
            report = build(cfg, client)
            after = client.run(os.getpid)
            peak = max(
                client.run(
                    lambda dask_worker: max(dask_worker.monitor.quantities["memory"])
                ).values()
            )
    finally:
        (folder / "audio" / "long.wav").unlink()
    assert before == after, "the worker was restarted (killed for memory)"
    assert report["rows_out"] == len(segs) and report["rows_rejected"] == 0
    assert report["hours_decoded"] == pytest.approx(hours, abs=0.01)
    assert peak < limit < decoded_per_hour * hours / 2
    clips = {}
    for part in (folder / "out" / "data").glob("*.parquet"):
        for row in pq.read_table(part, columns=["id", "audio"]).to_pylist():
            x, sr = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="int16", always_2d=True)
            clips[row["id"]] = dominant_frequency(x[:, 0], sr)
    assert sorted(clips) == sorted(f"long-{k}" for k in range(len(segs)))
    for k, s in enumerate(segs):
        assert abs(clips[f"long-{k}"] - s.freq) < 3.0
    print(
        f"idle worker {idle / 2**20:.0f} MB, limit {limit / 2**20:.0f} MB, peak {peak / 2**20:.0f} MB, "
        f"recording {hours} h = {decoded_per_hour * hours / 2**20:.0f} MB decoded"
    )


# ---------------------------------------------------------------- safety

HOSTILE = [
    "$(touch PWNED)",
    "`touch PWNED`",
    "; touch PWNED;",
    "| touch PWNED",
    "-y",
    "-i",
    "file:x",
    "concat:a|b",
]


def test_recording_ids_never_reach_a_shell_or_become_ffmpeg_options(corpus, tmp_path, monkeypatch):
    import shutil

    from etl.ingest.recordings import list_audio

    monkeypatch.chdir(tmp_path)  # where a shell would have run `touch PWNED`
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    src = corpus["root"] / "audio" / "wav_16k_mono.wav"
    seg = next(r for r in corpus["rows"] if r["id"] == "wav_16k_mono-0")
    for name in HOSTILE:
        shutil.copy(src, audio_dir / f"{name}.wav")
    listing = list_audio(str(audio_dir))
    (tmp_path / "out" / ".parts").mkdir(parents=True)
    rows = pd.DataFrame(
        [
            {
                "id": f"h{k}",
                "recording": name,
                "start": seg["start"],
                "end": seg["end"],
                "duration": seg["end"] - seg["start"],
                "text": "a",
                "text_raw": "a",
                "hypothesis": "a",
                "similarity": 1.0,
                "split": "train",
            }
            for k, name in enumerate(HOSTILE)
        ]
    )
    res = run_shard(
        ShardTask(
            index=0,
            recordings=[(n, listing.files[f"{n}.wav"]) for n in HOSTILE],
            rows=rows,
            seconds=60.0,
            out=str(tmp_path / "out"),
        )
    )
    assert res.rejects == []
    clips = _clips(tmp_path / "out")
    assert sorted(clips) == sorted(f"h{k}" for k in range(len(HOSTILE)))
    assert all(abs(freq - corpus["freqs"]["wav_16k_mono-0"]) < 3.0 for _, freq in clips.values())
    assert not list(tmp_path.rglob("PWNED")) and not os.path.exists("PWNED")
