"""Client memory and wall of `etl plan` and `etl build` on large generated tables (issue 15).

    python -m benchmarks.plan [--rows 250000 1000000 4000000] [--build 250000 4000000] [--out DIR]
    python -m benchmarks.plan merge-rejects ROWS [WORKERS]   # finalize's rejects.parquet step alone

2,000 recordings of 5 s (tiny WAVs, so a build decodes little: almost every row ends past the end
of its recording and is rejected ``beyond_end``, which stresses the rejects path), and a CSV table of
N rows over them. Each command runs as a subprocess through ``run`` below, which reports the client
process's own peak RSS (VmHWM; the LocalCluster scheduler runs inside it) next to the workers' peaks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

RECORDINGS = 2000
MB = 1 << 20


def make_corpus(root: str, n_rows: int) -> str:
    """The audio folder (once) and the table of ``n_rows`` rows; returns the table's path."""
    import pandas as pd

    from etl.testing.synth import Segment, write_tone_recording

    audio = os.path.join(root, "audio")
    if not os.path.exists(os.path.join(audio, f"rec{RECORDINGS - 1:05d}.wav")):
        os.makedirs(audio, exist_ok=True)
        for i in range(RECORDINGS):
            write_tone_recording(
                os.path.join(audio, f"rec{i:05d}.wav"),
                5.0,
                [Segment(0.5, 4.5, 300.0 + i % 50)],
                16000,
                1,
            )
    table = os.path.join(root, f"table-{n_rows}.csv")
    if not os.path.exists(table):
        rng = np.random.default_rng(n_rows)
        recs = np.array(
            [f"rec{i:05d}" for i in range(RECORDINGS)] + ["missing_a", "missing_b"], dtype=object
        )
        start = rng.uniform(0, 3000, n_rows).round(2)
        start[rng.random(n_rows) < 0.001] = 0.5  # a few rows that really cut
        text = np.array(
            [
                "Dobar dan, poštovani zastupnici!",
                "Sljedeća točka dnevnog reda.",
                "Hvala lijepa na pitanju.",
            ],
            dtype=object,
        )[rng.integers(0, 3, n_rows)]
        pd.DataFrame(
            {
                "id": [f"seg{i:08d}" for i in range(n_rows)],
                "recording": recs[rng.integers(0, len(recs), n_rows)],
                "start": start,
                "end": (start + rng.uniform(1, 3.9, n_rows)).round(2),
                "text": text,
                "hypothesis": [t.lower() for t in text],
            }
        ).to_csv(table + ".tmp", index=False)
        os.replace(table + ".tmp", table)
    return table


def config(root: str, table: str, out: str, workers: int) -> str:
    import yaml

    path = out + ".yaml"
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(
            {
                "input": {
                    "alignment": table,
                    "audio": os.path.join(root, "audio"),
                    "columns": {"hypothesis": "hypothesis"},
                },
                "output": {"path": out},
                "splits": {"dev_size": 500},
                "cluster": {"n_workers": workers, "dashboard_address": None},
            },
            f,
        )
    return path


def measured(args: list[str]) -> dict:
    """``etl ARGS`` in a subprocess; wall, the client's own peak RSS and the workers' peaks."""
    from .bench import run_measured

    load = os.getloadavg()[0]
    r = run_measured([sys.executable, "-m", "benchmarks.plan", "run", *args])
    if r["rc"] != 0:
        raise RuntimeError(f"etl {' '.join(args)} failed:\n{r['stderr'][-3000:]}")
    client = json.loads(r["stderr"].strip().splitlines()[-1])
    # CPU seconds (client, workers) say more than wall on a shared machine: the load average is
    # the 1-minute figure before and after the run
    return {
        "wall_s": round(r["wall_s"], 1),
        "cpu_s": round(r["cpu_s"], 1),
        "cpu_by_kind_s": {
            k: round(v, 1) for k, v in r["cpu_by_kind_s"].items() if k != "processes"
        },
        "client_peak_mb": client["client_peak_mb"],
        "workers_peak_mb": r["peak_worker_rss_mb"],
        "tree_peak_mb": round(r["peak_tree_rss_mb"]),
        "load": [round(load, 1), round(os.getloadavg()[0], 1)],
    }


def run(argv: list[str]) -> int:
    """Run the CLI in this process, then print this process's peak RSS as the last stderr line."""
    from etl.cli import main

    rc = main(argv)
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"client_peak_mb": round(hwm / 1024)}), file=sys.stderr, flush=True)
    return rc


def fake_plan(out: str, n_rows: int, partitions: int = 32, shards: int = 64) -> list[str]:
    """OUT/.parts/plan as the benchmark's build leaves it for finalize: 10 % of ``n_rows`` rejected
    before decoding (``partitions`` files), the rest ``beyond_end`` in ``shards`` late files."""
    import pandas as pd
    import pyarrow.parquet as pq

    from etl.planning import store
    from etl.schema import DatasetShape

    rng = np.random.default_rng(0)
    shape = DatasetShape()
    df = pd.DataFrame(
        {
            "id": np.char.add("seg", np.arange(n_rows).astype(str)).astype(object),
            "recording": np.char.add("rec", (np.arange(n_rows) % RECORDINGS).astype(str)),
            "start": rng.uniform(0, 3000, n_rows),
            "end": rng.uniform(0, 3000, n_rows),
            "text_raw": "Dobar dan, poštovani zastupnici!",
            "reason": "beyond_end",
            "detail": "the recording ends before the segment",
            "row": np.arange(n_rows),
        }
    )
    early = rng.random(n_rows) < 0.1
    df.loc[early, "reason"] = "missing_audio"
    d = os.path.join(store.plan_dir(out), "rejects")
    os.makedirs(d, exist_ok=True)
    e = df[early]
    for p, idx in enumerate(np.array_split(np.arange(len(e)), partitions)):
        table = store._rejects_table(e.iloc[idx], shape.rejects_schema())
        pq.write_table(table, os.path.join(d, f"part-{p:05d}.parquet"))
    late = df[~early]
    shard = late.index.to_numpy() % shards
    return [
        store.write_late_rejects(out, s, late[shard == s].to_dict("records"), shape)
        for s in range(shards)
    ]


def merge_rejects(n_rows: int, workers: int, root: str) -> dict:
    """rejects.parquet from a fake plan of ``n_rows`` rows on ``workers`` workers: wall, and each
    task's time (the longest is the step's critical piece)."""
    import shutil

    from distributed import Client, LocalCluster, get_task_stream

    from etl.planning import store
    from etl.schema import DatasetShape

    out = os.path.join(root, f"merge-rejects-{n_rows}")
    shutil.rmtree(out, ignore_errors=True)
    late = fake_plan(out, n_rows)
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as c:
        with Client(c) as client, get_task_stream(client) as ts:
            t0 = time.perf_counter()
            counts = store.submit_merge_rejects(client, out, late, DatasetShape()).result()
            wall = time.perf_counter() - t0
    tasks = sorted(
        (sum(x["stop"] - x["start"] for x in t["startstops"] if x["action"] == "compute"))
        for t in ts.data
    )
    return {
        "step": "merge_rejects",
        "rows": n_rows,
        "workers": workers,
        "wall_s": round(wall, 2),
        "tasks": len(tasks),
        "longest_task_s": round(tasks[-1], 2),
        "task_s_total": round(sum(tasks), 2),
        "rejects": sum(counts.values()),
        "load": round(os.getloadavg()[0], 1),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "run":
        return run(argv[1:])
    if (
        argv and argv[0] == "merge-rejects"
    ):  # python -m benchmarks.plan merge-rejects ROWS [WORKERS]
        workers = int(argv[2]) if len(argv) > 2 else 2
        print(json.dumps(merge_rejects(int(argv[1]), workers, os.path.abspath("bench-plan"))))
        return 0
    ap = argparse.ArgumentParser(prog="python -m benchmarks.plan")
    ap.add_argument("--rows", type=int, nargs="*", default=[250_000, 1_000_000, 4_000_000])
    ap.add_argument("--build", type=int, nargs="*", default=[250_000, 4_000_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench-plan")
    a = ap.parse_args(argv)
    root = os.path.abspath(a.out)
    results = []
    for n in sorted(set(a.rows) | set(a.build)):
        table = make_corpus(root, n)
        for cmd in (["plan"] if n in a.rows else []) + (["build"] if n in a.build else []):
            out = os.path.join(root, f"{cmd}-{n}")
            if cmd == "build" and os.path.exists(out):
                import shutil

                shutil.rmtree(out)
            t0 = time.time()
            m = measured(
                [cmd, config(root, table, out, a.workers)] + (["--json"] if cmd == "plan" else [])
            )
            m.update(
                command=f"etl {cmd}",
                rows=n,
                workers=a.workers,
                at=time.strftime("%Y-%m-%d %H:%M", time.gmtime(t0)),
            )
            print(json.dumps(m), flush=True)
            results.append(m)
    with open(os.path.join(root, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
