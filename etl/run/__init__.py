"""The only Dask code: the cluster (``cluster``), planning the table on it (``cluster_plan``, with the
placed rows on storage in ``plan_store``), the shard tasks that decode, cut and write (``shards``),
and the commands that drive the stages in order (``build``, ``plan``). ``planning`` is the one-frame
reference planner the tests compare the cluster path with. ``lease``: one build per output folder."""
