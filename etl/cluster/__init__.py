"""Cluster plumbing: opening and closing a Dask client (``session``), the watch for workers all
paused for memory (``stall``), and the one-build-per-output-folder lease (``lease``)."""
