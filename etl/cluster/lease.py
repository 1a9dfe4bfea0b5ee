"""One build per output folder: a lease file ``OUT/.lease.json`` (local or any fsspec store, S3 too).

The lease holds the build's host, pid, process start time, start time and a heartbeat that a
background thread refreshes every ``HEARTBEAT_S`` seconds. A second build into the same folder stops
at once with one line naming the running one. A lease is stale, and is taken over (with a log line),
when its process is gone (same host: no such pid, or a pid reused by another process) or when its
heartbeat is older than ``STALE_AFTER_S`` (another host that died). `etl plan` and `etl sample` only
read, and take no lease.

Taking a lease, and taking a stale one over, is atomic, and a takeover is never overwritten by the
build it replaced:

- a local disk: an exclusive create (the lease written whole beside, then hard-linked into place;
  a stale one is first renamed aside, which only one of two builds taking it over can do). The
  heartbeat never rewrites the file: it sets its modification time (``os.utime``), which is the
  heartbeat a reader sees; a beat that races a takeover touches the new lease, which is harmless.
- S3: conditional writes. A lease is created with ``If-None-Match: *``, a stale one is replaced
  with ``If-Match`` of the ETag it was read with, and each heartbeat rewrites it with ``If-Match``
  of the ETag of the build's own last write: a lease another build wrote in between fails the
  write (412), and this build knows it lost the lease.
- any other fsspec store (no exclusive or conditional write through fsspec): write, wait
  ``SETTLE_S``, and read back: the build whose token is there holds it. Such a store does not
  protect a takeover against a heartbeat racing it.

Each heartbeat checks the token is still this build's; ``ensure_held`` is called before the output
is replaced.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time
import uuid

import psutil

from ..errors import UserError
from ..output import storage

HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0  # a heartbeat this old: the build (on another host) is gone
SETTLE_S = 2.0  # object stores: how long a write is given before it is read back


class LeaseHeld(UserError):
    """Another build is running into the same output folder (one line, exit code 2)."""


def _now() -> float:
    return time.time()


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def describe(lease: dict) -> str:
    age = max(0.0, _now() - float(lease.get("heartbeat", 0)))
    return (
        f"pid {lease.get('pid')} on {lease.get('host')}, started {_stamp(float(lease.get('started', 0)))}, "
        f"heartbeat {age:.0f} s ago"
    )


def stale_reason(lease: dict, now: float | None = None) -> str | None:
    """Why ``lease`` no longer protects a running build, or None if it does."""
    now = _now() if now is None else now
    age = now - float(lease.get("heartbeat", 0))
    if lease.get("host") == socket.gethostname():
        pid = lease.get("pid")
        try:
            p = psutil.Process(int(pid))  # type: ignore[arg-type]  # None: TypeError, gone
            gone = (
                p.status() == psutil.STATUS_ZOMBIE
                or abs(p.create_time() - float(lease.get("pid_started", 0))) > 1
            )
        except (psutil.Error, TypeError, ValueError):
            gone = True
        if gone:
            return f"its process (pid {pid} on this host) is gone"
    if age > STALE_AFTER_S:
        return f"its heartbeat is {age:.0f} s old (more than {STALE_AFTER_S:.0f} s)"
    return None


class Lease:
    """The lease of one build on ``url`` (output.path). Use as a context manager, or acquire/release."""

    def __init__(self, url: str, log=None):
        self.url = url
        self.fs, root = storage.fs_and_path(url)
        self.path = storage.join(root, storage.LEASE_FILE)
        self.root = root
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        me = psutil.Process()
        self.record = {
            "token": uuid.uuid4().hex,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_started": me.create_time(),
            "started": _now(),
            "heartbeat": _now(),
            "command": " ".join(me.cmdline()[:6])[:200],
        }
        self.lost: dict | None = None  # the lease that replaced ours, if any
        self._tag: str | None = None  # S3: the ETag of the lease as last read or written
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading and writing the lease file --
    def read(self) -> dict | None:
        """The lease there (None: none; {}: unreadable). Local: its heartbeat is the file's mtime."""
        lease, _ = self._read_tagged()
        return lease

    def _read_tagged(self) -> tuple[dict | None, str | None]:
        """The lease and, on S3, the ETag it was read with (for a conditional replace)."""
        if not storage.is_local(self.fs):
            self.fs.invalidate_cache(self.path)
        try:
            tag = str(self.fs.info(self.path).get("ETag")) if storage.is_s3(self.fs) else None
            with self.fs.open(self.path, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
            if storage.is_local(self.fs) and isinstance(doc, dict):
                beat = os.stat(self.path).st_mtime
                doc["heartbeat"] = max(float(doc.get("heartbeat", 0)), beat)
            return (doc if isinstance(doc, dict) else {}), tag
        except FileNotFoundError:
            return None, None
        except (ValueError, UnicodeDecodeError):
            return (
                {},
                None,
            )  # unreadable: half-written by a killed writer, on a store without atomic writes

    def _data(self) -> bytes:
        return json.dumps(self.record).encode()

    def _create_exclusive(self) -> bool:
        """Local disks: the lease written whole beside, then hard-linked into place (atomic, and fails
        if a lease is there), so a reader never sees it half-written. False if a lease is there."""
        tmp = f"{self.path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(self._data())
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            os.remove(tmp)

    def _take(self, old: dict | None) -> bool:
        """Write our lease over nothing (``old`` None) or over the stale ``old``; True if we hold it."""
        self.fs.makedirs(self.root, exist_ok=True)
        if storage.is_local(self.fs):
            if (
                old is not None
            ):  # move the stale lease aside: of two builds taking it over, one moves it
                aside = f"{self.path}.stale-{uuid.uuid4().hex[:8]}"
                try:
                    os.rename(self.path, aside)
                except FileNotFoundError:
                    return False
                with contextlib.suppress(OSError):
                    os.remove(aside)
            return self._create_exclusive()
        if storage.is_s3(self.fs):  # over nothing, or over the very lease that was read stale
            return self._put_s3(mode="create") if old is None else self._put_s3(IfMatch=self._tag)
        storage.write_bytes(self.fs, self.path, self._data())
        time.sleep(SETTLE_S)  # a build that wrote at the same moment has written by now
        return (self.read() or {}).get("token") == self.record["token"]

    def _put_s3(self, **condition) -> bool:
        """A conditional put of our lease; False when its condition failed (another build's lease
        is there). Keeps the ETag of our write: the next heartbeat's condition."""
        condition = {k: v for k, v in condition.items() if v is not None}  # no ETag known: plain
        try:
            out = self.fs.pipe_file(self.path, self._data(), **condition)
        except FileExistsError:
            return False
        except OSError as e:  # s3fs: 412 PreconditionFailed is EINVAL
            if e.errno == errno.EINVAL:
                return False
            raise
        self._tag = str((out or {}).get("ETag")) if out else None
        self.fs.invalidate_cache(self.path)
        return True

    # -- the public life cycle --
    def acquire(self) -> Lease:
        self._made_root = storage.is_local(self.fs) and not self.fs.exists(self.root)
        for _ in range(3):  # a lease can vanish between reading and taking it: look again
            current, self._tag = self._read_tagged()
            if current is None:
                if self._take(None):
                    break
                continue
            why = stale_reason(current)
            if why is None:
                raise LeaseHeld(
                    f"output.path {self.url} is being built by another etl build "
                    f"({describe(current)}); wait for it to finish, or stop it"
                )
            if self._take(current):
                self.log(
                    f"took over the lease on {self.url} from a build that is no longer running "
                    f"({describe(current)}): {why}"
                )
                break
        else:
            raise LeaseHeld(
                f"output.path {self.url} is being built by another etl build "
                f"({describe(self.read() or {})}); wait for it to finish, or stop it"
            )
        self._thread = threading.Thread(target=self._beat, name="etl-lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.heartbeat()
            except Exception as e:  # a store hiccup: the next beat tries again
                self.log(f"lease heartbeat on {self.url} failed: {type(e).__name__}: {e}")

    def heartbeat(self) -> None:
        """Refresh the lease, never over another build's (see the module's doc)."""
        current = self.read()
        if current is not None and current.get("token") not in (None, self.record["token"]):
            self._lose(current)
            return
        self.record["heartbeat"] = _now()
        if storage.is_local(self.fs):
            try:
                os.utime(self.path)
            except FileNotFoundError:  # removed by hand: written again, exclusively
                self._create_exclusive()
        elif storage.is_s3(self.fs):
            if not self._put_s3(IfMatch=self._tag):
                self._lose(self.read() or {})
        else:
            storage.write_bytes(self.fs, self.path, self._data())

    def _lose(self, current: dict) -> None:
        self.lost = current
        self._stop.set()

    def ensure_held(self) -> None:
        """Raise if another build took the lease over (then this one must not touch the output)."""
        current = self.read()
        if (
            self.lost is None
            and current is not None
            and current.get("token") != self.record["token"]
        ):
            self.lost = current
        if self.lost is not None:
            raise LeaseHeld(
                f"output.path {self.url}: the lease was taken over by another build "
                f"({describe(self.lost)}); this build stops without touching the dataset"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(Exception):
            if (self.read() or {}).get("token") == self.record["token"]:
                self.fs.rm(self.path)
        if getattr(self, "_made_root", False):  # a build that wrote nothing leaves no empty folder
            with contextlib.suppress(OSError):
                os.rmdir(self.root)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
