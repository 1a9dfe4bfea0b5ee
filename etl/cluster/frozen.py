"""Imported last by the fork server (``session.WORKER_MODULES``), and by nothing else: it freezes the
objects the fork server imported, so the garbage collector of a worker forked from it never walks
them. A collection writes into every object it visits, which would copy the worker's share of the
inherited pages (~30 MB each); frozen, they stay shared."""

import gc

gc.freeze()
