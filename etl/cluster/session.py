"""Opening a Dask client: an existing scheduler (address or scheduler file), SLURM jobs through
dask-jobqueue, or a LocalCluster sized to the machine. The only module that knows cluster kinds.

``ClusterSession`` is how a command uses one: ``with ClusterSession(cfg.cluster) as s:`` gives
``s.client``; the session keeps the cluster it started and the client's ``stall.StallWatch``, turns
an error the watch caused into its one line, and closes client and cluster on the way out."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
from collections.abc import Callable
from typing import Any

from ..audio import allocator
from ..config import ClusterConfig
from ..errors import UserError
from .logs import DaskLogs, redirect_workers


def local_worker_count(cfg_cluster: ClusterConfig, n_tasks: int | None = None) -> int:
    n = cfg_cluster.n_workers or os.cpu_count() or 1
    if n_tasks is not None:
        n = max(1, min(n, n_tasks))  # idle workers only cost start-up time
    return n


class ClusterSession:
    """A Dask client for the time of a ``with`` block: ``s.client``, the cluster etl started for it
    (``s.cluster``; None when it connected to a scheduler) and its stall watch (``s.watch``).

    ``client``: use that one instead (borrowed: not watched, not closed). ``start()`` opens the
    client on a thread while the caller goes on; ``with`` waits for it. Leaving the block on an error
    raises the stall's one line instead if the watch stopped the work (a ``KeyboardInterrupt`` passes
    as it is), and always closes what the session opened."""

    def __init__(
        self,
        cfg_cluster: ClusterConfig,
        n_tasks: int | None = None,
        client: Any = None,
        log_dir: str | None = None,
    ):
        self.cfg_cluster, self.n_tasks = cfg_cluster, n_tasks
        # the Dask logs of a cluster etl starts: cluster.log_dir, else the command's (logs.py)
        self.logs = DaskLogs(cfg_cluster.log_dir or log_dir)
        self.client: Any = client
        self.cluster: Any = None
        self.watch: Any = None  # stall.StallWatch
        self.owned = client is None
        self._opening: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, then: Callable[[Any], None] | None = None) -> ClusterSession:
        """Open the client on a thread (``then(client)`` once open); ``__enter__`` waits for it."""
        if self.owned and self._opening is None:
            self._opening = threading.Thread(target=self._open, args=(then,), daemon=True)
            self._opening.start()
        return self

    def _open(self, then: Callable[[Any], None] | None = None) -> None:
        try:
            self.logs.start()  # before the cluster: its first records are not the terminal's either
            self.client, self.cluster = _take_early(self.cfg_cluster, self.n_tasks) or _open_client(
                self.cfg_cluster, self.n_tasks
            )
            if self.logs.log_dir is not None and self.cfg_cluster.kind == "local" and self.cluster:
                redirect_workers(self.client, self.logs.log_dir)  # they share our terminal
            from .stall import StallWatch

            self.watch = StallWatch(self.client, self.cfg_cluster.stall_timeout).start()
            if then is not None:
                then(self.client)
        except BaseException as e:
            self._error = e

    def __enter__(self) -> ClusterSession:
        if self.owned and self._opening is None:
            self._open()
        elif self._opening is not None:
            try:
                self._opening.join()
            except BaseException:  # interrupted while it starts: close it once it is there
                self._opening.join()
                self.close(quiet=True)
                raise
        if self._error is not None:
            self.close(remove_logs=isinstance(self._error, UserError))
            raise self._error
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if isinstance(exc, Exception):
                self.raise_if_stalled()  # every worker paused for memory: one line, not the wait's
        finally:
            self.close(quiet=exc is not None, remove_logs=isinstance(exc, UserError))

    def raise_if_stalled(self) -> None:
        if self.watch is not None:
            self.watch.raise_if_stalled()

    def close(self, quiet: bool = False, remove_logs: bool = False) -> None:
        """Close the client, and the cluster if etl started it (``quiet``: an error while closing is
        not raised: the block's own error is the one that matters). A borrowed client stays open.
        The Dask logs stop once all is closed (``remove_logs``: a user error leaves none)."""
        if not self.owned:
            return
        try:
            if self.client is not None:
                close_client(self.client, self.cluster, self.watch)
        except Exception:
            if not quiet:
                raise
        finally:
            self.client = self.cluster = self.watch = None
            self.logs.stop(remove=remove_logs)


def _open_client(cfg_cluster: ClusterConfig, n_tasks: int | None = None) -> tuple[Any, Any]:
    """A connected ``distributed.Client`` and the cluster started for it (None: an existing one)."""
    from distributed import Client, LocalCluster

    if cfg_cluster.address:
        where = cfg_cluster.address
        return _connect("cluster.address", where, address=where), None
    if cfg_cluster.scheduler_file:
        path = cfg_cluster.scheduler_file
        if not os.path.isfile(path):  # Client would wait for it to appear until its timeout
            raise UserError(f"cluster.scheduler_file not found: {path}")
        return _connect("cluster.scheduler_file", path, scheduler_file=path), None
    if cfg_cluster.kind == "slurm":
        cluster = slurm_cluster(cfg_cluster)
        if shutil.which(cluster.job_cls.submit_command) is None:
            cluster.close()
            raise UserError(
                f"cluster.kind: slurm needs '{cluster.job_cls.submit_command}' on PATH: "
                "run etl on a SLURM login node"
            )
        cluster.scale(jobs=cfg_cluster.jobs or 1)
    else:
        cluster = _local_cluster(cfg_cluster, n_tasks, LocalCluster)
    return quiet_user_errors(Client(cluster)), cluster


def _local_cluster(cfg_cluster: ClusterConfig, n_tasks: int | None, LocalCluster):
    with _worker_config(cfg_cluster):  # a Nanny hands the config of its creation to its worker
        return LocalCluster(
            n_workers=local_worker_count(cfg_cluster, n_tasks),
            threads_per_worker=cfg_cluster.threads_per_worker,
            processes=True,
            host="127.0.0.1",  # scheduler and workers on loopback: nothing listens on the network
            dashboard_address=cfg_cluster.dashboard_address or None,
            # no dashboard: the scheduler's HTTP server (health, metrics) would still take 8787
            scheduler_kwargs=None
            if cfg_cluster.dashboard_address
            else {"dashboard_address": "127.0.0.1:0"},
            memory_limit=cfg_cluster.memory_limit or "auto",
            silence_logs=logging.ERROR,
            # a forked worker has the fork server's environment, which may be older than ours:
            # it gets ours as it is now (credentials, HF_* ...), as a spawned one would
            env=dict(os.environ) if _forked(cfg_cluster) else None,
        )


# The workers' statistical profiler samples every thread's stack 100 times a second: ~3 % of a
# decoding worker's CPU (BENCHMARKS.md). Off unless ``cluster.profile``, in clusters etl starts; a
# cluster etl only connects to keeps its own settings.
PROFILE_KEY = "distributed.worker.profile.enabled"


# What a worker imports to plan and decode: with ``cluster.start_method: forkserver`` one process
# imports them once and each LocalCluster worker is forked from it, instead of every worker importing
# them itself (~2 s of CPU each; BENCHMARKS.md). A module that fails to import is skipped.
WORKER_MODULES = (
    "distributed",
    "dask.dataframe",
    "pandas",
    "pyarrow.parquet",
    "fsspec",
    "av",
    "soundfile",
    "etl.commands.build",
    "etl.shards.task",
    "etl.planning.client",
    "etl.planning.worker",
    "etl.planning.store",
    "etl.cluster.frozen",  # last: freezes what the others imported (no copy-on-write by the GC)
)
START_METHOD_KEY = "distributed.worker.multiprocessing-method"


def _worker_config(cfg_cluster: ClusterConfig):
    """The Dask config a LocalCluster's nannies start their workers with (set while it starts)."""
    import dask

    settings: dict[str, object] = {PROFILE_KEY: bool(cfg_cluster.profile)}
    settings.update(
        {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in ALLOCATOR_ENV.items()}
    )
    if _forked(cfg_cluster):
        settings[START_METHOD_KEY] = "forkserver"
        # the nanny sets these in the environment it starts the fork server with
        settings.update(
            {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in FORK_SERVER_ENV.items()}
        )
        _preload_worker_modules()
    return dask.config.set(settings)


def _forked(cfg_cluster: ClusterConfig) -> bool:
    return cfg_cluster.start_method == "forkserver" and _forkserver_available()


def _forkserver_available() -> bool:
    """Linux only: on macOS a fork after system frameworks are loaded (PyAV's FFmpeg links some) can
    crash, which is why Python spawns there by default; elsewhere workers are spawned."""
    import multiprocessing
    import sys

    return (
        sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods()
    )


# The fork server forks from a single thread: PyArrow's bundled jemalloc would otherwise start a
# background thread when the library loads (PyArrow allocates with mimalloc, so jemalloc's thread
# has nothing to do), and a fork next to a running thread is where fork-safety bugs live.
FORK_SERVER_ENV = {"JE_ARROW_MALLOC_CONF": "background_thread:false"}
# glibc's thresholds for the workers, from their start (``audio/allocator.py``): Dask's nanny would
# start them with MALLOC_TRIM_THRESHOLD_=65536, which freezes the mmap threshold at 128 KiB
ALLOCATOR_ENV = {
    "MALLOC_TRIM_THRESHOLD_": str(allocator.TRIM_THRESHOLD),
    "MALLOC_MMAP_THRESHOLD_": str(allocator.MMAP_THRESHOLD),
}
# What Dask's nanny puts in the environment before it starts a worker (the defaults of
# distributed.nanny.pre-spawn-environ, and the PYTHONHASHSEED it sets), and FORK_SERVER_ENV: read
# when a process starts, so the fork server must start with them. Values already set win, as in Dask.
WORKER_START_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    **ALLOCATOR_ENV,
    "PYTHONHASHSEED": "6640",
    **FORK_SERVER_ENV,
}


def _starts_local(cfg_cluster: ClusterConfig) -> bool:
    """Whether etl starts a LocalCluster for ``cfg_cluster`` (not a scheduler it connects to, not SLURM)."""
    return not (cfg_cluster.address or cfg_cluster.scheduler_file or cfg_cluster.kind != "local")


def start_forkserver(cfg_cluster: ClusterConfig) -> None:
    """Start the fork server now, so it imports WORKER_MODULES while this process still imports its
    own (the CLI calls this first): the LocalCluster started later forks its workers from it at once.
    Does nothing unless etl will start a LocalCluster with ``start_method: forkserver``."""
    if not _starts_local(cfg_cluster) or not _forked(cfg_cluster):
        return
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(WORKER_MODULES))
    added = [k for k in WORKER_START_ENV if k not in os.environ]
    os.environ.update({k: WORKER_START_ENV[k] for k in added})
    try:
        with _sigint_ignored():
            forkserver.ensure_running()
    finally:
        for k in added:
            del os.environ[k]


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored while the fork server starts (a fork and an exec: milliseconds). A terminal's
    Ctrl-C reaches its whole process group: the fork server, and the workers forked from it, would
    each print a KeyboardInterrupt traceback (the server's while it imports WORKER_MODULES, seconds;
    Python ignores SIGINT only after that). A process started with SIGINT ignored keeps it ignored
    (Python installs no KeyboardInterrupt handler then), and the fork server hands its workers the
    disposition it started with: they end when their nanny or this process ends them, and this
    process alone answers the Ctrl-C (``cli.main``: one line, exit 130)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers are the main thread's to set
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# A LocalCluster opened ahead of its command (``open_early``): (its config, the opening thread, what
# it opened: {"opened": (client, cluster)} or {"error": e}), until a ClusterSession takes it.
_EARLY: list[tuple[ClusterConfig, threading.Thread, dict]] = []


def open_early(cfg_cluster: ClusterConfig) -> None:
    """Start opening the command's LocalCluster now, on a thread, so that its scheduler and workers
    start while this process still imports the command (the CLI calls this after start_forkserver,
    ~0.5 s of every command's start). The first ClusterSession of the same config takes it;
    ``close_early`` closes it if none did (a build with nothing to do, an error before)."""
    if not _starts_local(cfg_cluster) or _EARLY:
        return
    box: dict = {}

    def run() -> None:
        try:
            box["opened"] = _open_client(cfg_cluster)
        except BaseException as e:  # raised by the session that takes it
            box["error"] = e

    opening = threading.Thread(target=run, daemon=True)
    opening.start()
    _EARLY.append((cfg_cluster, opening, box))


def _take_early(cfg_cluster: ClusterConfig, n_tasks: int | None) -> tuple[Any, Any] | None:
    """The (client, cluster) ``open_early`` opened for this config, once open; None if it opened none
    (or one sized for another number of tasks)."""
    if n_tasks is not None or not _EARLY or _EARLY[0][0] != cfg_cluster:
        return None
    _, opening, box = _EARLY.pop()
    opening.join()
    if "error" in box:
        raise box["error"]
    return box["opened"]


def close_early(wait: bool = True) -> None:
    """Close the cluster ``open_early`` opened if no session took it (after it has opened).
    ``wait=False`` (after a Ctrl-C): a cluster still opening is left to end with this process (its
    thread may never end: an import the Ctrl-C interrupted can leave an import lock held)."""
    while _EARLY:
        _, opening, box = _EARLY.pop()
        opening.join(None if wait else EARLY_CLOSE_WAIT)
        if "opened" in box:
            close_client(*box["opened"])


EARLY_CLOSE_WAIT = 2.0  # seconds


def _preload_worker_modules() -> None:
    """Have the fork server (started with the first worker, kept for this process) import
    WORKER_MODULES. Dask sets its own list the first time it makes the context; ours replaces it."""
    import dask
    from distributed.utils import get_mp_context

    with dask.config.set({START_METHOD_KEY: "forkserver"}):
        get_mp_context().set_forkserver_preload(list(WORKER_MODULES))


def _connect(key: str, where: str, **how):
    from distributed import Client

    try:
        return quiet_user_errors(Client(timeout="30s", **how))
    except OSError as e:
        raise UserError(f"{key}: cannot reach the Dask scheduler at {where}: {e}") from None


def quiet_user_errors(client):
    """A task that raises the user's error (``UserError``: e.g. a tier no TextGrid has, read on a
    worker) reaches the user as one line through the client; its workers do not log it as a failed
    task too. Other failures are logged as before."""
    from distributed import WorkerPlugin

    class QuietUserErrors(WorkerPlugin):
        name = "etl-quiet-user-errors"

        def setup(self, worker):
            log = logging.getLogger("distributed.worker")
            if not any(isinstance(f, UserErrorLogFilter) for f in log.filters):
                log.addFilter(UserErrorLogFilter())

    client.register_plugin(QuietUserErrors())
    return client


class UserErrorLogFilter(logging.Filter):
    """Drops a worker's "Compute Failed" record whose exception is a ``UserError``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (
            str(record.msg).startswith("Compute Failed")
            and len(args) > 3
            and str(args[3]).startswith(UserError.__name__ + "(")
        )


def slurm_cluster(cfg_cluster: ClusterConfig):
    """A ``dask_jobqueue.SLURMCluster`` from ``cluster.slurm`` (passed through), no jobs submitted yet:
    ``cluster.job_script()`` shows what ``sbatch`` would get."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise UserError(
            "cluster.kind: slurm needs dask-jobqueue: pip install 'etl[slurm]'"
        ) from None
    opts = dict(cfg_cluster.slurm or {})
    # The dashboard stays on loopback unless configured (reach it with an ssh tunnel); the scheduler
    # itself must listen where the compute nodes can reach it (dask-jobqueue's default, or `interface`).
    opts.setdefault("scheduler_options", {}).setdefault(
        "dashboard_address", cfg_cluster.dashboard_address or "127.0.0.1:0"
    )
    if not cfg_cluster.profile:
        _no_profiler_in_jobs(opts)
    try:
        return SLURMCluster(**opts)
    except (TypeError, ValueError) as e:  # an unknown keyword, a missing cores/memory
        first = str(e).splitlines()[0].split(". Very likely")[0].split(", for example")[0]
        raise UserError(f"cluster.slurm: {first}") from None


def _no_profiler_in_jobs(opts: dict) -> None:
    """A job's worker reads its config from its environment: one more prologue line, after the
    user's own (given as ``job_script_prologue``, the older ``env_extra``, or the jobqueue config)."""
    import dask

    prologue = opts.get("job_script_prologue")
    if prologue is None:
        prologue = opts.pop(
            "env_extra", None
        )  # ignored by dask-jobqueue once job_script_prologue is set
    if prologue is None:
        prologue = dask.config.get("jobqueue.slurm.job-script-prologue", None) or dask.config.get(
            "jobqueue.slurm.env-extra", None
        )
    env = "export DASK_" + PROFILE_KEY.upper().replace(".", "__").replace("-", "_") + "=False"
    opts["job_script_prologue"] = [*(prologue or []), env]


def close_client(client, cluster=None, watch=None) -> None:
    """Close the client, and ``cluster`` if we started it. By then the work is done and written: a
    close that times out (workers slow to exit on a loaded machine) does not fail the command; the
    worker processes end with this process."""
    if watch is not None:
        watch.stop()
    try:
        client.close()
        if cluster is not None:
            cluster.close()
    except (TimeoutError, OSError) as e:
        logging.getLogger("etl").warning("closing the Dask cluster: %s: %s", type(e).__name__, e)
