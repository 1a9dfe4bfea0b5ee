"""`etl plan`: the build's accounting without decoding anything."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import write_config

pytestmark = pytest.mark.cluster


def test_plan_matches_the_build_without_decoding_or_writing(built, corpus, tmp_path):
    out = tmp_path / "never"
    cfg = write_config(corpus, out)
    r = subprocess.run(
        [sys.executable, "-m", "etl", "plan", cfg, "--json"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    report = built["report"]
    assert p["rows_in"] == report["rows_in"]
    decode_time = report["rejects"]["unreadable_audio"] + report["rejects"]["beyond_end"]
    assert sum(v["rows"] for v in p["splits"].values()) == report["rows_out"] + decode_time
    for reason, n in p["rejects"].items():
        assert n == report["rejects"][reason], reason
    assert p["splits"]["dev"]["rows"] == 4
    assert 0 < p["splits"]["train"]["gb_flac"] < p["splits"]["train"]["gb_wav"]
    assert not out.exists()


def test_plan_prints_a_table(corpus, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "etl", "plan", write_config(corpus, tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split() == ["split", "rows", "hours", "GB", "flac", "GB", "wav"]
    assert "low_similarity" in r.stdout and "beyond_end" in r.stdout


@pytest.mark.parametrize("command", ["plan", "build", "sample"])
def test_split_by_speaker_without_speakers_is_one_line_naming_the_key(corpus, tmp_path, command):
    """A CSV table without input.columns.speaker has no speakers: one line, exit 2, before any work.
    (The config alone cannot tell: lhotse and TextGrid alignments name their own speakers.) It is told
    before a cluster is reached: the scheduler named here does not exist."""
    extra = ["--out", str(tmp_path / "review")] if command == "sample" else []
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            command,
            write_config(corpus, tmp_path / "o"),
            *extra,
            "--set",
            "splits.by=speaker",
            "--set",
            "cluster.address=tcp://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "'splits.by'" in lines[-1] and "no speakers" in lines[-1]
    assert "Traceback" not in r.stderr
