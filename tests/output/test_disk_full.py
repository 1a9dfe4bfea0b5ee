"""A full disk, on a real small file system (a tmpfs mounted for the test): a dataset that cannot fit
is refused before decoding, in one line; one that fills the disk anyway (the check off) ends in one
line without a traceback from any process, leaves no half-written file, and resumes once there is
space, into the same dataset as a clean build."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from etl.output import storage
from etl.testing.synth import tone_segments

from ..conftest import config_file

pytestmark = pytest.mark.cluster

SECONDS = 100.0  # per recording; 4 recordings: ~10 MB of WAV clips, more than the 8 MB disk


def _mount(path, size: str, remount: bool = False):
    opts = f"remount,size={size}" if remount else f"size={size}"
    args = ["mount", "-o", opts, str(path)] if remount else ["mount", "-t", "tmpfs"]
    args += [] if remount else ["-o", opts, "tmpfs", str(path)]
    return subprocess.run(args, capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs at tmp_path/small (skipped where mounting is not permitted); unmounted after."""
    where = tmp_path / "small"
    where.mkdir()
    r = _mount(where, "8m")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {r.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    (root / "audio").mkdir()
    rng = np.random.default_rng(3)
    rows = []
    for r in range(4):
        segs = tone_segments(30, length=(2.0, 3.0), gap=0.3, rng=rng)
        # noise: no codec and no Parquet compression makes it smaller than its estimate
        noise = rng.integers(-8000, 8000, int(SECONDS * 16000), dtype=np.int16)
        sf.write(str(root / "audio" / f"rec{r}.wav"), noise, 16000, subtype="PCM_16")
        rows += [
            {
                "id": f"rec{r}-{k}",
                "recording": f"rec{r}",
                "start": s.start,
                "end": s.end,
                "text": "a b",
            }
            for k, s in enumerate(segs)
        ]
    (root / "alignment.json").write_text(json.dumps(rows))
    return root


def _config(tones, out, **output) -> str:
    doc = {
        "input": {"alignment": str(tones / "alignment.json"), "audio": str(tones / "audio")},
        "output": {"path": str(out), "audio_format": "wav", "shard_hours": 0.01, **output},
        "splits": {"dev_size": 4},
        "cluster": {"n_workers": 2, "dashboard_address": None},
        "filters": {"min_similarity": None},
    }
    return str(config_file(out.parent, doc, f"{out.name}.yaml"))


def _etl(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("ETL_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "etl", *args], capture_output=True, text=True, env=env, timeout=600
    )


def _previous_dataset(out) -> dict:
    """A stand-in previous dataset in OUT: its files must survive every failed build."""
    (out / storage.DATA_DIR).mkdir(parents=True)
    files = {
        storage.join(storage.DATA_DIR, storage.final_name("train", 0, 1)): b"old shard",
        storage.REPORT_JSON: b'{"fingerprint": "old"}',
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    return files


def _half_written(out) -> list[str]:
    return [
        os.path.join(d, f)
        for d, _, names in os.walk(out)
        for f in names
        if storage.TMP_MARK in f or f.endswith(".tmp")
    ]


def test_a_dataset_too_big_for_the_disk_is_refused_before_decoding_in_one_line(tones, small_disk):
    out = small_disk / "out"
    r = _etl("build", _config(tones, out))
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("etl: error: output.path") and "MB free" in err and "needs about" in err
    assert "Traceback" not in r.stderr
    assert not list(out.glob(f"{storage.PARTS_DIR}/*-shard*.parquet"))  # nothing was decoded


def test_a_disk_that_fills_ends_in_one_line_and_a_rerun_with_space_resumes(
    tones, small_disk, tmp_path
):
    out = small_disk / "out"
    previous = _previous_dataset(out)
    cfg = _config(tones, out, check_space=False)
    r = _etl("build", cfg)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "No space left" in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("etl: failed:")
    assert not _half_written(out)
    for name, data in previous.items():  # the previous dataset is intact
        assert (out / name).read_bytes() == data
    done_before = len(list((out / storage.PARTS_DIR).glob("*.done.json")))

    assert _mount(small_disk, "64m", remount=True).returncode == 0
    r = _etl("build", cfg)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    if done_before:
        assert f"({done_before} done by an earlier run)" in r.stderr
    clean = tmp_path / "clean"
    assert _etl("build", _config(tones, clean)).returncode == 0
    resumed = json.loads((out / storage.REPORT_JSON).read_text())
    assert (
        resumed["content_hash"]
        == json.loads((clean / storage.REPORT_JSON).read_text())["content_hash"]
    )
    assert resumed["rows_out"] == json.loads((clean / storage.REPORT_JSON).read_text())["rows_out"]
