"""A build that cannot progress says so, instead of waiting forever.

Dask pauses a worker whose process memory passes 80 % of its ``memory_limit`` (``distributed.worker.
memory.pause``): it finishes the task it runs and takes no other until its memory falls. Memory that
Dask does not manage (freed by Python but kept by the allocator, a library's cache) may never fall, and
when every worker is paused the build waits with no message. ``StallWatch`` looks at the workers from
a daemon thread of the client. When every worker is paused with nothing executing, it

1. asks them to give memory back (``release_memory``: a garbage collection, PyArrow's pool, glibc's
   ``malloc_trim``), at every look while they stay so, which often unpauses them: a worker keeps
   ~60 MB the allocator could return after a 4 h build's last tasks;
2. if they stay paused while the client waits for results, says so once after ``warn_after`` seconds
   (what the workers hold against their limit);
3. after ``limit`` seconds (``cluster.stall_timeout``; None: never) closes the client, so the wait
   ends, and ``raise_if_stalled`` (``session.ClusterSession`` calls it) turns the error that
   follows into one line naming the memory and the config keys to change.
"""

from __future__ import annotations

import sys
import threading
import time

from ..errors import UserError


def release_memory(dask_worker=None) -> int:
    """Run on a worker (``client.run``): give freed memory back to the system. Its process RSS after."""
    import ctypes
    import gc

    import psutil

    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    return psutil.Process().memory_info().rss


def look(client) -> dict:
    """What the scheduler knows of the workers, summed up there (a few numbers cross, whatever the
    cluster's size): ``workers``, the ``stuck`` ones (paused, nothing executing), their process
    ``memory`` (min, max) and the largest ``memory_limit``. The function is defined here, inside, so it
    is pickled by value: a scheduler without etl installed runs it."""

    def summary(dask_scheduler) -> dict:
        stuck, mem, limit = [], [], 0
        for addr, ws in dask_scheduler.workers.items():
            executing = (ws.metrics or {}).get("task_counts", {}).get("executing", 0)
            if ws.status.name == "paused" and not executing:
                stuck.append(addr)
            mem.append((ws.metrics or {}).get("memory") or 0)
            limit = max(limit, ws.memory_limit or 0)
        return {
            "workers": len(dask_scheduler.workers),
            "stuck": sorted(stuck),
            "memory": (min(mem, default=0), max(mem, default=0)),
            "memory_limit": limit,
        }

    return client.run_on_scheduler(summary)


def describe(state: dict, seconds: float) -> str:
    """One line: how long, how many workers, and their memory against their limit."""

    def mb(b) -> str:
        return f"{(b or 0) / 2**20:,.0f} MB"

    lo, hi = state["memory"]
    return (
        f"every worker ({state['workers']}) has been paused for memory with nothing to run for {seconds:.0f} s "
        f"(process memory {mb(lo)}–{mb(hi)}, memory_limit {mb(state['memory_limit'])}; Dask pauses a "
        f"worker at distributed.worker.memory.pause of its limit, 80 % by default)"
    )


class StallWatch:
    """Watches ``client``'s workers from a daemon thread (see the module's docstring)."""

    def __init__(self, client, limit: float | None):
        self.client, self.limit = client, limit
        self.warn_after = min(60.0, limit / 2) if limit else 60.0
        self.interval = (
            min(5.0, limit / 3) if limit else 5.0
        )  # a look every 5 s (a short limit: more often)
        self.reason: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="etl-stall-watch", daemon=True)

    def start(self) -> StallWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _waiting(self) -> bool:
        """Whether the client holds results not yet computed."""
        return any(
            getattr(s, "status", None) == "pending" for s in list(self.client.futures.values())
        )

    def _run(self) -> None:
        since, warned, released = None, False, False
        while not self._stop.wait(self.interval):
            try:  # first the cheap question (no log line on the scheduler): is any worker running?
                state = (
                    None
                    if self.client.sync(self.client.scheduler.ncores_running)
                    else look(self.client)
                )
                waiting = self._waiting()
            except Exception:  # the client closing under us (else a lost look: the next one)
                if self.client.status != "running":
                    return
                continue
            if not state or not state["workers"] or len(state["stuck"]) < state["workers"]:
                since, warned, released = None, False, False
                continue
            # at every look, whether or not the client waits yet (a scatter waits for a running
            # worker): a worker unpaused by the last release can be paused again by the next
            # task between two looks, and a release once per stall would leave it there
            try:
                self.client.run(release_memory, workers=state["stuck"], on_error="ignore")
            except Exception:
                pass
            if not released:  # the first look: give the release a look's time to unpause them
                released = True
                continue
            if not waiting:  # the client's own work: not a stall of the build
                since, warned = None, False
                continue
            since = since or time.monotonic()
            stalled = (
                time.monotonic() - since + self.interval
            )  # paused at least since the last look
            if self.limit and stalled >= self.limit:
                self.reason = (
                    describe(state, stalled) + ": stopped; give each worker more memory "
                    "(cluster.memory_limit, or fewer cluster.n_workers), or raise cluster.stall_timeout"
                )
                self.client.close()  # the wait ends; the caller's raise_if_stalled says why
                return
            if stalled >= self.warn_after and not warned:
                warned = True
                print(
                    f"etl: {describe(state, stalled)}; "
                    + (
                        f"waiting up to cluster.stall_timeout ({self.limit:.0f} s) for memory to be freed"
                        if self.limit
                        else "waiting for memory to be freed (cluster.stall_timeout: null)"
                    ),
                    file=sys.stderr,
                    flush=True,
                )

    def raise_if_stalled(self) -> None:
        """In an ``except`` block: the stall (one line, a ``UserError``) if this watch stopped the
        work."""
        if self.reason:
            raise UserError(self.reason) from None
