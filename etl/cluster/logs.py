"""Where the Dask logs of a cluster etl starts go: into files of a log folder, never the terminal.

The terminal shows etl's own lines only. While a session lives, this process's Dask, tornado, bokeh
and asyncio records (the scheduler and nannies of a LocalCluster run here), and exceptions nobody
could raise (a thread's, an "Exception ignored"), go to ``client-<pid>.log``; each LocalCluster
worker process writes its stderr (its log handler and anything else) to ``worker-<pid>.log``. The
dashboard keeps its own copy of each worker's log. Without a folder these records are dropped. A
write that fails (a full disk) is dropped too: it never becomes a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading

# The loggers distributed's logging config gives a stderr handler, and asyncio (the root's).
DASK_LOGGERS = ("distributed", "tornado", "tornado.application", "bokeh", "asyncio")
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


class _QuietFile(logging.FileHandler):
    """A log file whose write errors (a full disk) are dropped, not printed with a traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        try:  # FileHandler opens its file (delay=True) outside its own error handling
            super().emit(record)
        except Exception:
            pass

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def worker_log_path(log_dir: str) -> str:
    return os.path.join(log_dir, f"worker-{os.getpid()}.log")


def redirect_stderr(log_dir: str) -> None:
    """This process's file descriptors 1 and 2 into its log file (a worker's: what it prints never
    reaches the terminal it was started from). Idempotent per process."""
    os.makedirs(log_dir, exist_ok=True)
    fd = os.open(worker_log_path(log_dir), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)


def redirect_workers(client, log_dir: str) -> None:
    """Every worker of ``client`` (and each one started later) writes its stderr to ``log_dir``."""
    from distributed import WorkerPlugin

    class WorkerLogs(WorkerPlugin):
        name = "etl-worker-logs"

        def __init__(self, log_dir: str):
            self.log_dir = log_dir

        def setup(self, worker):
            with contextlib.suppress(OSError):  # no folder: the worker logs as Dask does
                redirect_stderr(self.log_dir)

    client.register_plugin(WorkerLogs(log_dir))


class DaskLogs:
    """The routing of this process's Dask records for one session: ``start()``, then ``stop()``."""

    def __init__(self, log_dir: str | None):
        self.log_dir = log_dir
        self._handler: logging.Handler = logging.NullHandler()
        self._saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []
        self._hooks: tuple = ()
        self._made: list[str] = []  # the folders this session created (removed again when empty)
        self._before: set[str] = set()  # the files already in log_dir (another run's: kept)

    def start(self) -> DaskLogs:
        if self.log_dir is not None:
            with contextlib.suppress(OSError):
                self._makedirs(self.log_dir)
                self._before = set(os.listdir(self.log_dir))
                path = os.path.join(self.log_dir, f"client-{os.getpid()}.log")
                self._handler = _QuietFile(path, delay=True)
                self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
        for name in DASK_LOGGERS:
            log = logging.getLogger(name)
            self._saved.append((log, list(log.handlers), log.propagate))
            for h in list(log.handlers):
                if isinstance(h, logging.StreamHandler) and h.stream in (sys.stderr, sys.stdout):
                    log.removeHandler(h)
            log.addHandler(self._handler)
            log.propagate = False
        self._hooks = (sys.unraisablehook, threading.excepthook)
        sys.unraisablehook = self._unraisable
        threading.excepthook = self._thread_exception
        return self

    def _makedirs(self, path: str) -> None:
        missing = []
        p = os.path.abspath(path)
        while not os.path.exists(p):
            missing.append(p)
            p = os.path.dirname(p)
        os.makedirs(path, exist_ok=True)
        self._made = missing  # deepest first

    def _unraisable(self, u) -> None:
        logging.getLogger("distributed").error(
            "%s: %s", u.err_msg or "Exception ignored in", u.object, exc_info=u.exc_value
        )

    def _thread_exception(self, args) -> None:
        if args.exc_type is SystemExit:
            return
        logging.getLogger("distributed").error(
            "exception in thread %s",
            getattr(args.thread, "name", "?"),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    def stop(self, remove: bool = False) -> None:
        """Restore this process's logging; ``remove``: delete the session's log files (a user error
        is one line: it leaves no folder behind). Empty log files and folders are removed."""
        if self._hooks:
            sys.unraisablehook, threading.excepthook = self._hooks
            self._hooks = ()
        for log, handlers, propagate in self._saved:
            log.removeHandler(self._handler)
            for h in handlers:
                if h not in log.handlers:
                    log.addHandler(h)
            log.propagate = propagate
        self._saved = []
        self._handler.close()
        if self.log_dir is not None:
            self._tidy(self.log_dir, remove)

    def _tidy(self, log_dir: str, remove: bool) -> None:
        with contextlib.suppress(OSError):
            for name in set(os.listdir(log_dir)) - self._before:
                p = os.path.join(log_dir, name)
                if remove or os.path.getsize(p) == 0:
                    os.remove(p)
        for d in self._made:
            with contextlib.suppress(OSError):
                os.rmdir(d)
