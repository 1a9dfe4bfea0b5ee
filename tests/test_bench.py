"""Smoke test of the benchmark harness: `python -m benchmarks.bench --quick` runs end to end and writes every
figure. No timing assertions: only that each method, the loading figures and the targets are there."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cluster

METHODS = ("floor", "floor_tuned", "floor_av", "etl_flac", "etl_wav", "naive", "seek")
ROOT = os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))
)  # benchmarks/ is imported from the checkout


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_zero_copy(loading):
    z = loading["zero_copy"]
    for key in (
        "etl_load_s",
        "load_from_disk_s",
        "peak_rss_after_load_mb",
        "extra_disk_mb",
        "clips_per_s",
    ):
        assert _number(z[key]), (key, z.get(key))
    assert z["memory_mapped_in_place"] is True and z["hf_cache_growth_bytes"] == 0
    assert z["rows"] == z["rows_load_from_disk"] == z["clips"] == loading["rows"]
    assert loading["hf_cache_growth_bytes"] > 0  # from_parquet copies


def test_loading_only_compares_from_parquet_and_zero_copy_on_an_existing_output(built, tmp_path):
    data = tmp_path / "ds"
    shutil.copytree(built["out"], data)  # arrow/ gets exported into it: not into the shared fixture
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench",
            "--loading-only",
            str(data),
            "--out",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "b" / "loading.json").read_text())
    assert res["loading"]["rows"] == built["report"]["splits"]["train"]["rows"]
    _check_zero_copy(res["loading"])
    assert _number(res["loading"]["zero_copy"]["export_s_in_process"])
    assert "zero-copy" in proc.stdout and res["machine"]["nproc"] >= 1


def test_quick_bench_writes_every_figure(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())

    assert res["machine"]["nproc"] >= 1 and res["machine"]["ffmpeg"].startswith("ffmpeg version")
    assert res["parameters"]["quick"] is True
    assert res["corpus"]["recordings"] >= 2 and res["corpus"]["segments"] > 0

    methods = res["methods"]
    for m in METHODS:
        assert m in methods, m
        for key in (
            "wall_s",
            "cpu_s",
            "hours_per_core_hour",
            "ratio_to_floor",
            "ratio_to_best_floor",
        ):
            assert _number(methods[m][key]) and methods[m][key] > 0, (m, key, methods[m].get(key))
        assert methods[m]["extrapolated"] is (m in ("naive", "seek")), m
    for m in ("etl_flac", "etl_wav"):
        assert methods[m]["rows_out"] > 0
        assert methods[m]["rows_in"] == methods[m]["rows_out"] + methods[m]["rows_rejected"]

    loading = res["loading"]
    for key in ("from_parquet_s", "peak_rss_mb", "hf_cache_growth_mb", "clips_per_s", "iterate_s"):
        assert _number(loading[key]), (key, loading.get(key))
    assert loading["clips"] == loading["rows"] > 0
    _check_zero_copy(loading)

    rss = res["worker_rss"]
    assert _number(rss["short"]["peak_rss_mb"]) and _number(rss["long"]["peak_rss_mb"])
    assert _number(res["scaling"]["speedup"])

    targets = {t["name"]: t for t in res["targets"]}
    # plain floor, tuned floor, PyAV CPU, both beyond the per-build cost, the per-build cost and the
    # three rebuild targets, the fingerprints' cost, naive, seek, RSS, scaling, plan
    assert len(targets) == 15
    fps = methods["etl_fingerprints"]
    assert fps["fingerprint_cpu_s"] > 0 and fps["hours_fingerprinted"] > 0 and fps["hashes"] >= 0
    assert targets["rebuild after a text-normalization change: hours decoded"]["value"] == 0
    assert methods["etl_rebuild_grow"]["hours_decoded"] < methods["etl_flac"]["hours_decoded"]
    assert {
        "etl wall / tuned ffmpeg floor wall",
        "etl CPU / PyAV decode-only CPU",
        "etl CPU per audio hour beyond the per-build cost / PyAV decode-only",
    } <= set(targets)
    assert methods["etl_fixed"]["rows_out"] > 0 and methods["etl_fixed"]["audio_hours"] < 0.01
    assert res["plan"]["rows_in"] == res["plan"]["rows"] > 0
    assert res["listing"]["files"] == 500 and _number(res["listing"]["list_and_resolve_s"])
    for t in targets.values():
        assert _number(t["value"]) and _number(t["threshold"]) and isinstance(t["met"], bool), t
    assert "PASS" in proc.stdout or "MISS" in proc.stdout
    assert (out / "results.md").exists()
