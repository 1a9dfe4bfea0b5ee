"""Session fixtures: a tone corpus made once with the bundled ffmpeg, and builds made from it."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from etl.audio.media import ffmpeg_binary
from etl.testing.synth import Segment, tone_segments, write_tone_recording

# (file, seconds, rate, channels, segments): every container/rate the issue names.
RECORDINGS = [
    ("mp3_48k_stereo.mp3", 30.0, 48000, 2, 7),
    ("m4a_44k_stereo.m4a", 24.0, 44100, 2, 5),
    ("wav_16k_mono.wav", 20.0, 16000, 1, 4),
    ("opus_48k.opus", 16.0, 48000, 2, 3),
]

# id -> reason for the flawed rows added to the table
EXPECTED_REJECTS = {
    "escape": "invalid_recording_id",
    "abs": "invalid_recording_id",
    "slash": "missing_audio",
    "nan-ts": "bad_timestamps",
    "neg-ts": "bad_timestamps",
    "rev-ts": "bad_timestamps",
    "missing": "missing_audio",
    "empty": "empty_text",
    "short": "too_short",
    "long": "too_long",
    "lowsim": "low_similarity",
    "broken": "unreadable_audio",
    "late": "beyond_end",
}


# Fixtures that start a Dask cluster with worker processes (or build through one): a test using any of
# them is marked ``cluster`` (`make test-fast` leaves those out). Modules that start clusters inline
# carry ``pytestmark = pytest.mark.cluster`` themselves.
CLUSTER_FIXTURES = {"built", "dask_client", "client", "real_build"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


def _corpus(root) -> dict:
    audio = root / "audio"
    audio.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows, freqs = [], {}
    base = 250.0
    for name, seconds, rate, ch, n in RECORDINGS:
        segs = tone_segments(n, length=(1.5, 3.0), gap=0.5, base_freq=base, step=50.0, rng=rng)
        base += 50.0 * n
        write_tone_recording(str(audio / name), seconds, segs, rate, ch)
        rec = os.path.splitext(name)[0]
        for k, s in enumerate(segs):
            rid = f"{rec}-{k}"
            freqs[rid] = s.freq
            # whitespace around every id of one recording: the 30% that "would not open"
            rec_in_table = f" {rec}  " if rec.startswith("m4a") else rec
            rows.append(
                {
                    "id": rid,
                    "recording": rec_in_table,
                    "start": s.start,
                    "end": s.end,
                    "text": f"Rečenica broj {k}, snimka {rec}!",
                    "asr": f"rečenica broj {k} snimka {rec}",
                }
            )
    (audio / "broken.mp3").write_bytes(b"\x00garbage" * 500)
    # a real file just outside the audio folder: an escaping id must never reach it
    write_tone_recording(str(root / "outside.wav"), 3.0, [Segment(0.5, 2.5, 999.0)], 16000, 1)
    w = "wav_16k_mono"
    rows += [
        {
            "id": "escape",
            "recording": "../outside",
            "start": 0.5,
            "end": 2.0,
            "text": "a",
            "asr": "a",
        },
        {
            "id": "abs",
            "recording": str(root / "outside"),
            "start": 0.5,
            "end": 2.0,
            "text": "a",
            "asr": "a",
        },
        {"id": "slash", "recording": "sub/rec", "start": 0.5, "end": 2.0, "text": "a", "asr": "a"},
        {"id": "nan-ts", "recording": w, "start": None, "end": 2.0, "text": "a", "asr": "a"},
        {"id": "neg-ts", "recording": w, "start": -1.0, "end": 2.0, "text": "a", "asr": "a"},
        {"id": "rev-ts", "recording": w, "start": 3.0, "end": 2.0, "text": "a", "asr": "a"},
        {
            "id": "missing",
            "recording": "no_such_recording",
            "start": 0.5,
            "end": 2.0,
            "text": "a",
            "asr": "a",
        },
        {"id": "empty", "recording": w, "start": 0.5, "end": 2.0, "text": " ?! … ", "asr": ""},
        {"id": "short", "recording": w, "start": 0.5, "end": 0.6, "text": "a", "asr": "a"},
        {"id": "long", "recording": w, "start": 0.0, "end": 19.9, "text": "a", "asr": "a"},
        {
            "id": "lowsim",
            "recording": w,
            "start": 0.5,
            "end": 2.0,
            "text": "dobar dan",
            "asr": "laku noć svima",
        },
        {"id": "broken", "recording": "broken", "start": 0.5, "end": 2.0, "text": "a", "asr": "a"},
        {"id": "late", "recording": w, "start": 19.0, "end": 22.0, "text": "a", "asr": "a"},
        dict(rows[0]),  # duplicate id: the first is kept
    ]
    (root / "alignment.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return {"root": root, "rows": rows, "freqs": freqs}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    return _corpus(tmp_path_factory.mktemp("corpus"))


def config_file(folder, doc, name: str = "etl.yaml"):
    """Write ``doc`` (a dict, or YAML text as is) to FOLDER/NAME; return its path. Every test's config
    file is written here."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path


def read_splits(out, split: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of OUT/data/*.parquet (of SPLIT only, if given), in file order, with a ``split``
    column taken from each shard's name (``train-00000-of-00002.parquet``)."""
    pattern = f"{split}-*.parquet" if split else "*.parquet"
    frames = [
        pq.read_table(f, columns=columns).to_pandas().assign(split=f.name.split("-", 1)[0])
        for f in sorted((pathlib.Path(out) / "data").glob(pattern))
    ]
    if not frames:
        return pd.DataFrame(columns=[*(columns or []), "split"])
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def dask_client():
    """One LocalCluster with 2 worker processes per test module: the module's tests that run
    ``build(cfg, client=...)`` or planning on a real cluster share it (their own clusters cost
    seconds each). Per module, not per session: it is the default client while it lives, and a
    later module's CLI build (with its own environment, e.g. S3 credentials) must not find it. A
    test that needs its own cluster (a dying worker, an in-process one for ``memory://``) starts
    it itself."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # no dashboard, and the scheduler's HTTP server off 8787 (a test checks that port)
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def write_config(corpus, out, **sections) -> str:
    cfg = {
        "input": {
            "alignment": str(corpus["root"] / "alignment.json"),
            "audio": str(corpus["root"] / "audio"),
            "columns": {"hypothesis": "asr"},
        },
        "output": {"path": str(out), "shard_hours": 0.005},  # ~18 s per shard: several shards
        "filters": {"min_duration": 0.5, "max_duration": 15.0},
        "splits": {"dev_size": 4},
        "cluster": {"n_workers": 2, "dashboard_address": None},
    }
    for k, v in sections.items():
        cfg.setdefault(k, {}).update(v)
    return str(config_file(out.parent, cfg, f"{out.name}.yaml"))


@pytest.fixture(scope="session")
def built(corpus, tmp_path_factory):
    """The corpus built once through the CLI on a LocalCluster with 2 worker processes."""
    from etl.cli import main

    out = tmp_path_factory.mktemp("build2") / "out"
    cfg = write_config(corpus, out)
    assert main(["build", cfg]) == 0
    return {"out": out, "config": cfg, "report": json.loads((out / "report.json").read_text())}


def ffmpeg_reference(path: str, sampling_rate: int = 16000) -> np.ndarray:
    """`ffmpeg -i REC -ac 1 -ar 16000` of the whole recording, as int16."""
    raw = subprocess.run(
        [
            ffmpeg_binary(),
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            path,
            "-ac",
            "1",
            "-ar",
            str(sampling_rate),
            "-f",
            "s16le",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype="<i2")
