"""Client memory and wall of `etl plan` and `etl build` on large generated tables (issue 15).

    python -m benchmarks.plan [--rows 250000 1000000 4000000] [--build 250000 4000000] [--out DIR]

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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "run":
        return run(argv[1:])
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
