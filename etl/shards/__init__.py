"""Shards: recordings packed into tasks (``pack``) and the task that decodes, cuts, encodes and
writes one shard on a worker (``task``)."""
