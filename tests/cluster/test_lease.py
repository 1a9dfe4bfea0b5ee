"""One build per output folder: the lease (local and S3), takeover of a dead build's lease, two
identical builds started together, and the progress bar that grows instead of overshooting."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import warnings

import pytest

from etl.cli import main
from etl.cluster import lease as leases
from etl.cluster.lease import Lease, LeaseHeld
from etl.commands.build import advance
from etl.output.storage import LEASE_FILE as LEASE

from ..conftest import write_config
from ..output.test_s3 import s3  # noqa: F401  (the moto S3 server fixture)

pytestmark = pytest.mark.cluster


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_second_lease_on_the_same_folder_is_refused_in_one_line_naming_the_first(tmp_path):
    out = str(tmp_path / "out")
    with Lease(out):
        with pytest.raises(LeaseHeld) as e:
            Lease(out).acquire()
        msg = str(e.value)
        assert (
            "\n" not in msg and f"pid {os.getpid()} on {socket.gethostname()}" in msg and out in msg
        )
    assert not os.path.exists(os.path.join(out, LEASE))
    assert not os.path.exists(out)  # a build that wrote nothing leaves no empty folder
    with Lease(out):  # released: free again
        pass


@pytest.mark.parametrize("kind", ["dead process", "old heartbeat"])
def test_a_stale_lease_is_taken_over_and_the_takeover_is_logged(tmp_path, kind):
    out = tmp_path / "out"
    out.mkdir()
    now = time.time()
    old = {
        "token": "old",
        "host": socket.gethostname(),
        "pid": _dead_pid(),
        "pid_started": now - 60,
        "started": now - 60,
        "heartbeat": now,
    }
    if kind == "old heartbeat":  # a build on another host that stopped beating
        old.update(host="some-other-node", pid=1, heartbeat=now - leases.STALE_AFTER_S - 10)
    (out / LEASE).write_text(json.dumps(old))
    os.utime(out / LEASE, (old["heartbeat"], old["heartbeat"]))  # a local lease beats by its mtime
    said = []
    with Lease(str(out), said.append) as lease:
        assert json.loads((out / LEASE).read_text())["token"] == lease.record["token"]
    assert len(said) == 1 and "took over the lease" in said[0]
    assert ("is gone" in said[0]) if kind == "dead process" else ("heartbeat is" in said[0])


def test_the_heartbeat_refreshes_the_lease_and_notices_a_takeover(tmp_path, monkeypatch):
    monkeypatch.setattr(leases, "HEARTBEAT_S", 0.05)
    out = tmp_path / "out"
    with Lease(str(out)) as lease:
        first = Lease(str(out)).read()["heartbeat"]
        deadline = time.time() + 60
        while Lease(str(out)).read()["heartbeat"] == first and time.time() < deadline:
            time.sleep(0.05)
        assert Lease(str(out)).read()["heartbeat"] > first  # the file's time: its bytes stay
        lease.ensure_held()
        # stop the beats first, so the takeover below is not overwritten by a beat that read the file
        # just before it (a race only a 0.05 s heartbeat makes likely); ensure_held must see it alone
        lease._stop.set()
        lease._thread.join()
        other = {**lease.record, "token": "someone-else", "pid": 4242}
        (out / LEASE).write_text(json.dumps(other))
        with pytest.raises(LeaseHeld, match="taken over by another build"):
            lease.ensure_held()
    assert (
        json.loads((out / LEASE).read_text())["token"] == "someone-else"
    )  # never removes another's lease


HOLDER = """
import sys, time
from etl.cluster import lease as leases
leases.HEARTBEAT_S = 0.002  # a beat every 2 ms: any read-check-write would race the takeover
with leases.Lease(sys.argv[1]) as lease:
    print("held", flush=True)
    deadline = time.time() + 30
    while lease.lost is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # beats that raced the takeover have landed by now
    print("lost" if lease.lost is not None else "held on", flush=True)
"""


def test_a_takeover_is_never_overwritten_by_the_heartbeat_of_the_build_it_replaced(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        taker = Lease(str(out))
        assert taker._take(taker.read())  # what acquire does with a lease it found stale
        tokens = set()
        for _ in range(200):  # while the holder beats: the lease stays the taker's
            tokens.add((taker.read() or {}).get("token"))
            time.sleep(0.002)
        assert tokens == {taker.record["token"]}
        assert holder.stdout.readline().strip() == "lost"
        assert taker.read()["token"] == taker.record["token"]
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def s3_alone(s3):  # noqa: F811
    """The moto server is one per process: leave no bucket behind for test_s3's own fixture."""
    yield s3
    s3.rm("etl-test", recursive=True)
    s3.invalidate_cache()


def test_the_lease_works_on_s3(s3_alone):
    s3 = s3_alone  # noqa: F811
    url = "s3://etl-test/lease-out"
    with Lease(url) as lease:
        s3.invalidate_cache()
        assert json.loads(s3.cat(f"etl-test/lease-out/{LEASE}"))["token"] == lease.record["token"]
        with pytest.raises(LeaseHeld, match="being built by another etl build"):
            Lease(url).acquire()
    s3.invalidate_cache()
    assert not s3.exists(f"etl-test/lease-out/{LEASE}")


def test_on_s3_a_takeover_fails_the_heartbeat_of_the_build_it_replaced(s3_alone):
    url = "s3://etl-test/lease-race"
    held = Lease(url).acquire()
    try:
        held.heartbeat()  # a conditional rewrite of its own lease succeeds
        taker = Lease(url)
        current, tag = taker._read_tagged()
        taker._tag = tag
        assert taker._take(current)  # If-Match the lease it read
        second = Lease(url)
        second._tag = tag
        assert not second._take(current)  # a second taker of the same stale lease loses
        held.heartbeat()  # its If-Match fails: it knows, and writes nothing
        assert held.lost is not None and held.lost.get("token") == taker.record["token"]
        assert taker.read()["token"] == taker.record["token"]
        with pytest.raises(LeaseHeld, match="taken over"):
            held.ensure_held()
    finally:
        held.release()
        s3_alone.rm("etl-test/lease-race", recursive=True)


def test_a_build_is_refused_beside_a_running_build_and_plan_still_runs(corpus, tmp_path, capsys):
    from etl.commands.plan import plan
    from etl.config import load_config

    out = tmp_path / "out"
    cfg = write_config(corpus, out)
    with Lease(str(out)):  # a build running there
        assert main(["build", cfg]) == 2
        err = capsys.readouterr().err.strip()
        assert (
            len(err.splitlines()) == 1
            and "being built by another etl build" in err
            and f"pid {os.getpid()}" in err
        )
        assert plan(load_config(cfg))["rows_in"] == len(corpus["rows"])  # plan needs no lease
    assert not out.exists()  # the refused build wrote nothing


def test_two_identical_builds_started_together_give_one_dataset_and_one_refusal(
    built, corpus, tmp_path
):
    out = tmp_path / "out"
    cfg = write_config(corpus, out, cluster={"n_workers": 1})
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "etl", "build", cfg],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    refusal = next(r for r in results if r[0] == 2)[2].strip()
    assert len(refusal.splitlines()) == 1 and "being built by another etl build" in refusal
    winner_pid = str(next(p.pid for p, r in zip(procs, results) if r[0] == 0))
    assert f"pid {winner_pid} on {socket.gethostname()}" in refusal
    report = json.loads((out / "report.json").read_text())
    assert report["content_hash"] == built["report"]["content_hash"]
    assert report["rows_in"] == report["rows_out"] + report["rows_rejected"]
    assert not (out / LEASE).exists() and not (out / ".parts").exists()


def test_the_progress_bar_grows_its_total_instead_of_overshooting():
    from tqdm import tqdm

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm's "clamping frac to range [0, 1]" would raise here
        with tqdm(total=1.0, file=io.StringIO(), mininterval=0, miniters=1) as bar:
            for _ in range(3):
                advance(bar, 0.7)
                bar.refresh()
            assert bar.n == pytest.approx(2.1) and bar.total == pytest.approx(2.1)
