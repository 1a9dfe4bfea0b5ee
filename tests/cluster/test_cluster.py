"""Clusters: a real scheduler and workers in their own processes (address and scheduler file), the
SLURM job script, one clear error when SLURM pieces are missing, and nothing listening beyond loopback."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace

import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from etl.cli import main
from etl.cluster.session import ClusterSession, slurm_cluster
from etl.config import DEFAULTS, ClusterConfig, load_config
from etl.errors import UserError

from ..conftest import config_file, write_config

pytestmark = pytest.mark.cluster


def dataset_content(out: str) -> list[tuple]:
    """(id, split, audio bytes) of every row of OUT/data, sorted by id: what two builds must share."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(out))
    rows = []
    for path in fs.glob(f"{root.rstrip('/')}/data/*.parquet"):
        split = path.rsplit("/", 1)[-1].split("-", 1)[0]
        with fs.open(path, "rb") as f:
            t = pq.read_table(f, columns=["id", "audio"]).to_pylist()
        rows += [(r["id"], split, r["audio"]["bytes"]) for r in t]
    return sorted(rows)


@contextlib.contextmanager
def dask_processes(tmp_path, n_workers: int = 2, *worker_args: str):
    """``dask scheduler`` and ``n_workers`` ``dask worker`` processes on 127.0.0.1 (free ports, found
    through a scheduler file). Yields (scheduler file, worker Popen list)."""
    from distributed import Client

    sched_file = str(tmp_path / "scheduler.json")
    dask = [sys.executable, "-m", "dask"]
    common = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    procs = [
        subprocess.Popen(
            dask
            + [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                sched_file,
            ],
            **common,
        )
    ]
    try:
        deadline = time.time() + 60
        while not os.path.exists(sched_file):
            assert time.time() < deadline and procs[0].poll() is None, (
                "dask scheduler did not start"
            )
            time.sleep(0.2)
        workers = [
            subprocess.Popen(
                dask
                + [
                    "worker",
                    "--scheduler-file",
                    sched_file,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--name",
                    f"w{k}",
                    *worker_args,
                ],
                **common,
            )
            for k in range(n_workers)
        ]
        procs += workers
        with Client(scheduler_file=sched_file, timeout="30s") as c:
            c.wait_for_workers(n_workers, timeout=60)
        yield sched_file, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_a_build_on_a_separate_scheduler_and_worker_processes_equals_a_local_build(
    built, corpus, tmp_path
):
    with dask_processes(tmp_path) as (sched_file, _):
        address = json.loads(open(sched_file).read())["address"]
        out = tmp_path / "by_address"
        assert main(["build", write_config(corpus, out, cluster={"address": address})]) == 0
        out2 = tmp_path / "by_file"
        assert (
            main(["build", write_config(corpus, out2, cluster={"scheduler_file": sched_file})]) == 0
        )
    expected = dataset_content(built["out"])
    assert len(expected) == built["report"]["rows_out"] > 0
    for o in (out, out2):
        assert dataset_content(o) == expected
        report = json.loads((o / "report.json").read_text())
        assert report["rejects"] == built["report"]["rejects"]
        assert report["content_hash"] == built["report"]["content_hash"]


def test_an_unreachable_scheduler_or_missing_scheduler_file_is_one_clear_error(
    tmp_path, capsys, corpus
):
    with socket.socket() as s:  # a port nothing listens on: a refused connection, at once
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    for cluster, needle in (
        ({"address": f"tcp://127.0.0.1:{free}"}, "cluster.address"),
        ({"scheduler_file": str(tmp_path / "nope.json")}, "cluster.scheduler_file not found"),
    ):
        assert main(["build", write_config(corpus, tmp_path / "out", cluster=cluster)]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err


def test_the_scheduler_file_resolves_against_the_config_folder(tmp_path):
    config_file(tmp_path, {"cluster": {"scheduler_file": "sched.json"}}, "c.yaml")
    cfg = load_config(str(tmp_path / "c.yaml"), check_inputs=False)
    assert cfg.cluster.scheduler_file == str(tmp_path / "sched.json")


SLURM = {
    "cores": 8,
    "memory": "32GB",
    "processes": 2,
    "walltime": "04:00:00",
    "queue": "cpu",
    "account": "asr-lab",
    "job_extra_directives": ["--exclusive", "--constraint=avx2"],
}


def test_slurm_keys_are_passed_through_to_the_job_script():
    cluster = slurm_cluster(ClusterConfig(kind="slurm", slurm=SLURM, dashboard_address=None))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in (
        "#SBATCH -p cpu",
        "#SBATCH -A asr-lab",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH -t 04:00:00",
        "#SBATCH --exclusive",
        "#SBATCH --constraint=avx2",
    ):
        assert line in script.splitlines(), line
    assert "--nworkers 2" in script and "--nthreads 4" in script


@pytest.mark.parametrize("profile", [False, True])
def test_slurm_workers_profile_only_when_asked_and_the_users_prologue_stays(profile):
    slurm = {**SLURM, "job_script_prologue": ["module load ffmpeg"]}
    cluster = slurm_cluster(
        ClusterConfig(kind="slurm", slurm=slurm, dashboard_address=None, profile=profile)
    )
    try:
        lines = cluster.job_script().splitlines()
    finally:
        cluster.close()
    export = "export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False"
    assert "module load ffmpeg" in lines
    assert (export in lines) is not profile
    if not profile:
        assert lines.index("module load ffmpeg") < lines.index(export)


def test_no_dashboard_takes_no_fixed_port():
    """``dashboard_address: null``: no dashboard page, and the scheduler's HTTP server (health,
    metrics) is not on 8787 either, so a second build or a user's own dashboard keeps that port."""
    import urllib.error
    import urllib.request

    with ClusterSession(ClusterConfig(n_workers=1, dashboard_address=None)) as session:
        client = session.client
        ports = {
            c.laddr.port
            for c in psutil.Process().net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        }
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(client.dashboard_link, timeout=30)
    assert 8787 not in ports and ports
    assert e.value.code == 404


@pytest.mark.parametrize("profile", [False, True])
def test_local_workers_profile_only_when_asked(profile):
    """The statistical profiler costs a decoding worker ~3 % of its CPU: off unless cluster.profile."""
    with ClusterSession(
        ClusterConfig(n_workers=1, dashboard_address=None, profile=profile)
    ) as session:
        client = session.client
        running = client.run(lambda dask_worker: "profile" in dask_worker.periodic_callbacks)
    assert list(running.values()) == [profile]


def _how_started() -> dict:
    import psutil

    parent = psutil.Process(os.getppid())
    return {
        "imported": all(m in sys.modules for m in ("av", "dask.dataframe", "etl.shards.task")),
        "parent": " ".join(parent.cmdline()),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "parent_omp": parent.environ().get("OMP_NUM_THREADS"),
        "parent_threads": parent.num_threads(),
    }


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_local_workers_are_forked_with_etl_imported_or_spawned_on_request(method):
    """forkserver (the default): each worker is forked from one process that imported etl's libraries
    once, so a worker costs no imports of its own; spawn: a fresh interpreter, as Dask does. Dask's
    environment for its workers (OMP_NUM_THREADS=1) holds either way, and the fork server (which
    imported numpy) started with it."""
    with ClusterSession(
        ClusterConfig(n_workers=1, dashboard_address=None, start_method=method)
    ) as session:
        client = session.client
        [got] = client.run(_how_started).values()
    assert ("forkserver" in got["parent"]) == (method == "forkserver")
    if method == "forkserver":
        assert got["imported"] and got["parent_omp"] == "1"
        assert (
            got["parent_threads"] == 1
        )  # it forks from its only thread (no jemalloc background thread)
    assert got["omp"] == "1"


# Held by a thread of the client while its cluster starts: a worker forked from the client itself
# would hold it too, for ever (no thread of its own would release it).
CLIENT_LOCK = threading.Lock()


def _client_lock_is_free() -> bool:
    free = CLIENT_LOCK.acquire(blocking=False)
    if free:
        CLIENT_LOCK.release()
    return free


def _worker_gc() -> dict:
    import gc

    import psutil

    before = psutil.Process().memory_full_info().uss
    gc.collect()
    return {
        "frozen": gc.get_freeze_count(),
        "copied": psutil.Process().memory_full_info().uss - before,
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forkserver: Linux only")
def test_default_workers_are_forked_from_a_fresh_server_untouched_by_the_clients_threads():
    """The default cluster forks its workers from the fork server, not from this process: a lock a
    client thread holds while they start is free in them, and its busy thread is not in them. The
    fork server froze what it imported, so a worker's full garbage collection copies nothing of it."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with CLIENT_LOCK:
            held.set()
            release.wait()

    busy = threading.Thread(target=hold, daemon=True)
    busy.start()
    held.wait()
    try:
        with ClusterSession(ClusterConfig(n_workers=2, dashboard_address=None)) as session:
            client = session.client
            started = list(client.run(_how_started).values())
            free = list(client.run(_client_lock_is_free).values())
            gcs = list(client.run(_worker_gc).values())
    finally:
        release.set()
        busy.join()
    assert DEFAULTS["cluster"]["start_method"] == "forkserver"
    assert all("forkserver" in g["parent"] and g["parent_threads"] == 1 for g in started)
    assert free == [True, True]
    assert all(g["frozen"] > 10_000 and g["copied"] < (5 << 20) for g in gcs)


def test_the_cli_starts_the_fork_server_first_with_the_workers_environment(corpus, tmp_path):
    """With forkserver, `etl build` starts the fork server before its own imports (the workers' imports run meanwhile),
    in a fresh process here, with what Dask's nanny gives a starting worker (OMP_NUM_THREADS=1 ...)."""
    code = (
        "import sys, psutil; from etl.cli import main; rc = main(sys.argv[1:]); "
        "kids = [p for p in psutil.Process().children() if 'forkserver' in ' '.join(p.cmdline())]; "
        "print(rc, len(kids), kids[0].environ().get('OMP_NUM_THREADS'), kids[0].environ().get('PYTHONHASHSEED'), "
        "kids[0].num_threads())"
    )
    cfg = write_config(
        corpus,
        tmp_path / "out",
        cluster={"n_workers": 2, "dashboard_address": None, "start_method": "forkserver"},
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "build", cfg], capture_output=True, text=True, timeout=600
    )
    assert r.stdout.splitlines()[-1].split() == ["0", "1", "1", "6640", "1"], r.stderr[-2000:]


def test_the_cli_opens_the_cluster_early_and_closes_it_when_no_command_took_it(corpus, tmp_path):
    """`etl build` opens its LocalCluster while it imports the command, and the build takes that one
    (one cluster opened per command); a build with nothing to do closes it again: no worker is left."""
    code = (
        "import sys, psutil; import etl.cluster.session as s; opened = []; f = s._open_client; "
        "s._open_client = lambda *a: opened.append(1) or f(*a); "
        "from etl.cli import main; rcs = [main(sys.argv[1:]), main(sys.argv[1:])]; "
        "tree = psutil.Process().children(recursive=True); "
        "alive = [p for p in tree if p.status() != psutil.STATUS_ZOMBIE "
        "and 'forkserver' not in ' '.join(p.cmdline()) and 'resource_tracker' not in ' '.join(p.cmdline())]; "
        "print(rcs, len(opened), len(alive))"
    )
    cfg = write_config(
        corpus, tmp_path / "out", cluster={"n_workers": 2, "dashboard_address": None}
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "build", cfg], capture_output=True, text=True, timeout=600
    )
    assert r.stdout.splitlines()[-1] == "[0, 0] 2 0", r.stderr[-2000:]
    assert "nothing to do" in r.stderr


def test_forked_workers_get_the_environment_as_it_is_when_their_cluster_starts(monkeypatch):
    """The fork server keeps the environment it started with; a variable set afterwards (credentials
    in a notebook, here between two clusters) still reaches the workers, as with spawn."""
    cfg = ClusterConfig(n_workers=1, dashboard_address=None, start_method="forkserver")
    with ClusterSession(cfg):  # the fork server runs from here on
        pass
    monkeypatch.setenv("ETL_TEST_LATE_VARIABLE", "set after the fork server started")
    with ClusterSession(cfg) as session:
        client = session.client
        got = list(client.run(lambda: os.environ.get("ETL_TEST_LATE_VARIABLE")).values())
    assert got == ["set after the fork server started"]


def test_a_build_with_forked_workers_equals_one_with_spawned_workers(built, corpus, tmp_path):
    out = tmp_path / "forked"
    assert (
        main(
            [
                "build",
                write_config(
                    corpus,
                    out,
                    cluster={
                        "n_workers": 2,
                        "dashboard_address": None,
                        "start_method": "forkserver",
                    },
                ),
            ]
        )
        == 0
    )
    assert dataset_content(out) == dataset_content(built["out"])
    assert (
        json.loads((out / "report.json").read_text())["content_hash"]
        == built["report"]["content_hash"]
    )


def test_an_unknown_start_method_is_one_clear_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "input": {"alignment": "a.csv"},
                "output": {"path": "out"},
                "cluster": {"start_method": "fork"},
            }
        )
    )
    with pytest.raises(UserError, match="cluster.start_method"):
        load_config(str(cfg))


def test_the_commented_slurm_example_config_is_valid_and_builds_a_job_script():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "slurm.yaml")
    cfg = load_config(path, check_inputs=False)
    assert cfg.cluster.kind == "slurm" and cfg.cluster.jobs >= 1
    cluster = slurm_cluster(
        replace(cfg.cluster, dashboard_address="127.0.0.1:0")
    )  # a free port in tests
    try:
        assert "#SBATCH" in cluster.job_script()
    finally:
        cluster.close()


@pytest.mark.parametrize(
    "slurm, needle",
    [
        ({"cores": 8}, "cores and memory"),
        ({"cores": 8, "memory": "4GB", "memroy": "4GB"}, "memroy"),
    ],
)
def test_bad_slurm_keys_are_one_clear_error(slurm, needle):
    with pytest.raises(UserError, match=needle) as e:
        slurm_cluster(ClusterConfig(kind="slurm", slurm=slurm, dashboard_address=None))
    assert str(e.value).startswith("cluster.slurm: ") and "\n" not in str(e.value)


def test_slurm_without_sbatch_is_one_clear_error(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here (ffmpeg comes from imageio-ffmpeg)
    cfg = write_config(corpus, tmp_path / "out", cluster={"kind": "slurm", "slurm": SLURM})
    assert main(["build", cfg]) == 2
    err = capsys.readouterr().err
    assert "sbatch" in err and "cluster.kind: slurm" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "data").exists()


def test_slurm_without_dask_jobqueue_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # what an environment without it sees
    with pytest.raises(UserError, match=r"pip install 'etl\[slurm\]'"):
        with ClusterSession(ClusterConfig(kind="slurm", slurm=SLURM, dashboard_address=None)):
            pass


def _listening(procs) -> set:
    out = set()
    for p in procs:
        with contextlib.suppress(psutil.Error):
            out |= {
                c.laddr for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
            }
    return out


def test_the_local_cluster_and_its_dashboard_listen_on_loopback_only():
    assert DEFAULTS["cluster"]["dashboard_address"].startswith("127.0.0.1:")
    me = psutil.Process()
    before = _listening([me])
    with ClusterSession(ClusterConfig(n_workers=1, dashboard_address="127.0.0.1:0")):
        new = _listening([me, *me.children(recursive=True)]) - before
        assert new, "the scheduler and the dashboard listen somewhere"
        assert {a.ip for a in new} == {"127.0.0.1"}, new


def test_every_exception_etl_defines_survives_the_trip_between_workers():
    """A value a worker cannot unpickle makes the task that fetched it wait forever (dask/distributed#7060):
    a jsonl block's rows once held a ``Malformed`` whose ``__init__`` took two arguments, and the build
    hung whenever the block was read on one worker and numbered on the other. Each exception class in
    etl, made with its own arguments, comes back from pickle as the same type, message and fields."""
    import importlib
    import inspect
    import pickle
    import pkgutil

    import etl

    classes = {}
    for mod in pkgutil.walk_packages(etl.__path__, "etl."):
        if mod.name.endswith("__main__"):
            continue
        for _, cls in inspect.getmembers(importlib.import_module(mod.name), inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__.startswith("etl."):
                classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    assert "etl.ingest.formats.common.Malformed" in classes and len(classes) >= 6
    for name, cls in classes.items():
        params = [p for p in inspect.signature(cls.__init__).parameters.values()][1:]
        required = [
            p
            for p in params
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        err = (
            cls(*[f"value {k}" if k else 7 for k in range(len(required))])
            if required
            else cls("a message")
        )
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is cls and str(back) == str(err) and vars(back) == vars(err), name
