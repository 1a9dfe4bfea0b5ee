"""Opening a Dask client: a LocalCluster sized to the machine, or an existing scheduler."""
from __future__ import annotations

import logging
import os


def local_worker_count(cfg_cluster: dict, n_tasks: int | None = None) -> int:
    n = cfg_cluster.get("n_workers") or os.cpu_count() or 1
    if n_tasks is not None:
        n = max(1, min(n, n_tasks))  # idle workers only cost start-up time
    return n


def open_client(cfg_cluster: dict, n_tasks: int | None = None):
    """A connected ``distributed.Client``. ``client.close()`` also closes a cluster we started."""
    from distributed import Client, LocalCluster

    if cfg_cluster.get("address"):
        try:
            return Client(cfg_cluster["address"], timeout="30s")
        except OSError as e:
            from .config import ConfigError

            raise ConfigError(f"cluster.address: cannot reach the Dask scheduler at "
                              f"{cfg_cluster['address']}: {e}") from None
    cluster = LocalCluster(
        n_workers=local_worker_count(cfg_cluster, n_tasks),
        threads_per_worker=cfg_cluster.get("threads_per_worker", 1),
        processes=True,
        dashboard_address=cfg_cluster.get("dashboard_address") or None,
        memory_limit=cfg_cluster.get("memory_limit") or "auto",
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    client._etl_owns_cluster = cluster
    return client


def close_client(client) -> None:
    cluster = getattr(client, "_etl_owns_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()
