"""The terminal shows etl's lines only: no traceback from Dask, tornado or a worker while clusters open
and close on a machine whose every core is busy, whether the work succeeds, raises the user's error
or fails, or is interrupted (Ctrl-C); the Dask logs go to the log folder instead."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from etl.output import storage

from ..conftest import write_config

pytestmark = pytest.mark.cluster

CYCLES = textwrap.dedent(
    """
    import sys
    from etl.cli import main
    from etl.cluster.session import ClusterSession
    from etl.config import ClusterConfig
    from etl.errors import UserError

    def fail(kind):
        if kind == 1:
            raise UserError("a user's mistake")
        if kind == 2:
            raise RuntimeError("a bug")
        return kind

    for i in range(5):  # success, a user error, a failure: each ends by closing the cluster
        try:
            with ClusterSession(ClusterConfig(n_workers=1, dashboard_address=None), log_dir=sys.argv[2]) as s:
                s.client.submit(fail, i % 3, pure=False).result()
        except (UserError, RuntimeError) as e:
            print(f"ended: {type(e).__name__}", file=sys.stderr)
    sys.exit(main(["build", sys.argv[1]]))
    """
)


def _busy_loops() -> list[subprocess.Popen]:
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 1)
    ]


def test_no_traceback_reaches_the_terminal_under_cpu_contention(corpus, tmp_path):
    out = tmp_path / "out"
    cfg = write_config(corpus, out)
    logs = tmp_path / "logs"
    busy = _busy_loops()
    try:
        r = subprocess.run(
            [sys.executable, "-c", CYCLES, cfg, str(logs)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
            timeout=600,
        )
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("ended: UserError") == 2 and r.stderr.count("ended: RuntimeError") == 1
    for word in ("Traceback", "CancelledError", "CommClosedError", "distributed."):
        assert word not in r.stderr, r.stderr
    assert (out / storage.REPORT_JSON).exists()
    # the failure's worker log is kept (a user error leaves none); the build's went with .parts
    kept = "".join(p.read_text() for p in logs.glob("*.log"))
    assert "a bug" in kept and "a user's mistake" not in kept
    assert not (out / storage.PARTS_DIR).exists()


def _group_gone(pgid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("after", [0.3, 1.0, 2.0])
def test_ctrl_c_while_the_workers_start_is_one_line_and_exit_130(corpus, tmp_path, after):
    """A terminal's Ctrl-C reaches the whole foreground process group: etl, its fork server (which
    imports the workers' modules for seconds) and the workers forked from it. etl alone answers: one
    line, exit 130, no traceback from any of them; and none of them outlives it."""
    cfg = write_config(corpus, tmp_path / "out")
    p = subprocess.Popen(
        [sys.executable, "-m", "etl", "build", cfg],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        time.sleep(after)
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 130, err
        assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, err
        assert err.strip().splitlines()[-1] == "etl: interrupted"
        assert _group_gone(p.pid, 10), "a process of etl's outlived it"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
