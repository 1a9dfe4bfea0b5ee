"""Resume: completion records, fingerprints, --force, and a whole `etl build` killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from etl.cli import main

from ..conftest import write_config

pytestmark = pytest.mark.cluster


def _report(out) -> dict:
    return json.loads((out / "report.json").read_text())


def test_rerun_of_a_complete_build_is_a_no_op_that_says_so(built, capsys):
    data = built["out"] / "data"
    before = {f: os.stat(data / f).st_mtime_ns for f in os.listdir(data)}
    assert main(["build", built["config"]]) == 0
    err = capsys.readouterr().err
    assert "nothing to do" in err and "--force" in err
    assert {f: os.stat(data / f).st_mtime_ns for f in os.listdir(data)} == before
    assert _report(built["out"])["content_hash"] == built["report"]["content_hash"]


def test_a_complete_output_missing_a_file_is_built_again(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    cfg = write_config(corpus, out, cluster={"n_workers": 1})
    assert main(["build", cfg]) == 0
    first = _report(out)
    victim = sorted((out / "data").iterdir())[0]
    victim.unlink()
    capsys.readouterr()
    assert main(["build", cfg]) == 0
    assert "nothing to do" not in capsys.readouterr().err
    assert victim.exists() and _report(out)["content_hash"] == first["content_hash"]


def test_an_unfinished_build_of_another_config_is_not_mixed_in(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    cfg = write_config(corpus, out)
    parts = out / ".parts"
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text(json.dumps({"fingerprint": "another", "previous_dev": []}))
    (parts / "train-shard00000.parquet").write_bytes(b"from another config")
    assert main(["build", cfg]) == 2
    err = capsys.readouterr().err
    assert err.startswith("etl: error: output.path") and "--force" in err and "Traceback" not in err
    assert (
        parts / "train-shard00000.parquet"
    ).read_bytes() == b"from another config"  # nothing touched
    assert main(["build", cfg, "--force"]) == 0
    assert not parts.exists()
    assert _report(out)["rows_out"] > 0


def test_force_rebuilds_a_complete_output(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    cfg = write_config(corpus, out, cluster={"n_workers": 1})
    assert main(["build", cfg]) == 0
    first = _report(out)
    capsys.readouterr()
    assert main(["build", cfg, "--force"]) == 0
    assert "nothing to do" not in capsys.readouterr().err
    assert _report(out)["content_hash"] == first["content_hash"]


def _kill_build_midway(cfg: str, out) -> bool:
    """Start `etl build` in its own process group and SIGKILL the group (client, nannies, workers)
    once the first shard is recorded as done. False if the build finished first, or had begun to
    finalize (its .parts/ gone, or holding the finalize journal): a folder that held a dataset before
    (a rebuild) has a report.json all along."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "etl", "build", cfg],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    parts = out / ".parts"
    try:
        while proc.poll() is None:
            if parts.is_dir() and any(p.name.endswith(".done.json") for p in parts.iterdir()):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return parts.is_dir() and not (parts / "finalize.json").exists()
            time.sleep(0.005)
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_sigkill_of_the_whole_build_then_rerun_completes_it_equal_to_a_clean_build(
    built, corpus, tmp_path, capsys
):
    out = tmp_path / "out"
    # the same content config as `built`: shards of ~7 s of audio, one worker, so there is a middle to kill in
    cfg = write_config(corpus, out, cluster={"n_workers": 1})
    for _ in range(3):
        if _kill_build_midway(cfg, out):
            break
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    else:
        pytest.skip("the build always finished before it could be killed")
    records = [p for p in (out / ".parts").iterdir() if p.name.endswith(".done.json")]
    assert records and not (out / "report.json").exists()
    assert main(["build", cfg]) == 0
    assert "done by an earlier run" in capsys.readouterr().err
    report = _report(out)
    assert report["content_hash"] == built["report"]["content_hash"]
    assert (
        report["rows_in"] == built["report"]["rows_in"]
        and report["splits"] == built["report"]["splits"]
    )
    assert not (out / ".parts").exists()
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_a_build_killed_while_renaming_its_shards_is_finished_by_a_rerun(
    built, corpus, tmp_path, monkeypatch, capsys
):
    from fsspec.implementations.local import LocalFileSystem

    out = tmp_path / "out"
    cfg = write_config(corpus, out)
    real_mv, calls = LocalFileSystem.mv, []

    def dies_on_the_third_rename(self, *a, **k):
        calls.append(a)
        if len(calls) == 3:
            raise OSError("node lost")
        return real_mv(self, *a, **k)

    monkeypatch.setattr(LocalFileSystem, "mv", dies_on_the_third_rename)
    assert main(["build", cfg]) == 1
    monkeypatch.setattr(LocalFileSystem, "mv", real_mv)
    assert (out / ".parts" / "finalize.json").exists() and len(list((out / "data").iterdir())) == 2
    assert main(["build", cfg]) == 0
    assert "finishing the dataset" in capsys.readouterr().err
    report = _report(out)
    assert (
        report["content_hash"] == built["report"]["content_hash"]
        and report["splits"] == built["report"]["splits"]
    )
    assert not (out / ".parts").exists()
