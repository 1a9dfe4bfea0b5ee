"""glibc's allocator tuned for decoding (``etl/audio/allocator.py``): under the environment a Dask
nanny gives its workers, a 1-MB array allocated and freed again and again faults in fresh pages each
time; once tuned it reuses them. etl's LocalCluster workers start with the tuned thresholds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from etl.audio import allocator

_FAULTS = """
import resource, numpy as np
from etl.audio import allocator
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        np.ones(1 << 17)  # 1 MiB, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
untuned = faults()
assert allocator.tune()
print(untuned, faults())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_tuned_process_reuses_its_memory_instead_of_faulting_in_fresh_pages():
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}  # what Dask's nanny sets
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True
    )
    untuned, tuned = map(int, out.stdout.split())
    assert untuned >= 200 * 200  # ~256 pages of 4 KiB per MiB, every time
    assert tuned < untuned / 20


@pytest.mark.cluster
def test_etls_local_workers_start_with_the_tuned_thresholds():
    from etl.cluster.session import ClusterSession
    from etl.config import ClusterConfig

    cfg = ClusterConfig(n_workers=1, dashboard_address=None)
    with ClusterSession(cfg) as s:
        [env] = s.client.run(lambda: {k: os.environ.get(k) for k in allocator_env_keys()}).values()
    assert env == {
        "MALLOC_TRIM_THRESHOLD_": str(allocator.TRIM_THRESHOLD),
        "MALLOC_MMAP_THRESHOLD_": str(allocator.MMAP_THRESHOLD),
    }


def allocator_env_keys() -> list[str]:
    return ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"]
