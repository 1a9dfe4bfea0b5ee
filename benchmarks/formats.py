"""Client memory of `etl plan` on alignment formats read by the workers (issue 15, `read_raw`).

    python -m benchmarks.formats [--files 10000] [--lines 1000000] [--out DIR] [--repo PATH]

A folder of ``--files`` MFA TextGrids (40 three-word segments each, over the 2,000 tiny recordings of
``benchmarks.plan``: the rest are ``missing_audio``) and a plain lhotse ``.jsonl`` of ``--lines``
supervisions with word alignments. Each `etl plan` runs as a subprocess (``benchmarks.plan.measured``:
the client's own VmHWM, the workers' peaks); ``--repo`` runs another checkout's etl (from its folder)
on the same inputs, e.g. the code before the change, for a before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

SEGMENTS = 40


def make_textgrids(root: str, n_files: int) -> str:
    import pathlib

    from tests.alignment_writers import textgrids

    folder = os.path.join(root, f"textgrids-{n_files}")
    if not os.path.exists(os.path.join(folder, "done")):
        segs = [
            (f"rec{i:05d}", k * 3.0, k * 3.0 + 2.5, f"dobar dan {k}")
            for i in range(n_files)
            for k in range(SEGMENTS)
        ]
        textgrids(
            pathlib.Path(folder), segs, {f"rec{i:05d}": SEGMENTS * 3.0 for i in range(n_files)}
        )
        open(os.path.join(folder, "done"), "w").close()
    return folder


def make_lhotse(root: str, n_lines: int) -> str:
    path = os.path.join(root, f"supervisions-{n_lines}.jsonl")
    if not os.path.exists(path):
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            for i in range(n_lines):
                rec, s = f"rec{i % 2000:05d}", (i // 2000) * 3.0
                f.write(
                    json.dumps(
                        {
                            "id": f"sup{i:08d}",
                            "recording_id": rec,
                            "start": s,
                            "duration": 2.5,
                            "text": "dobar dan svima",
                            "speaker": f"spk{i % 97}",
                            "alignment": {
                                "word": [
                                    ["dobar", s, 0.5, 1.0],
                                    ["dan", s + 0.6, 0.5, 1.0],
                                    ["svima", s + 1.2, 1.2, 1.0],
                                ]
                            },
                        }
                    )
                    + "\n"
                )
        os.replace(path + ".tmp", path)
    return path


def measured(args: list[str], repo: str) -> dict:
    """``etl ARGS`` of the checkout ``repo`` in a subprocess (``benchmarks.plan run``, from there)."""
    from .bench import run_measured

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = run_measured([sys.executable, "-m", "benchmarks.plan", "run", *args], env=env, cwd=repo)
    if r["rc"] != 0:
        raise RuntimeError(f"etl {' '.join(args)} failed:\n{r['stderr'][-3000:]}")
    client = json.loads(r["stderr"].strip().splitlines()[-1])
    return {
        "wall_s": round(r["wall_s"], 1),
        "cpu_s": round(r["cpu_s"], 1),
        "client_peak_mb": client["client_peak_mb"],
        "workers_peak_mb": r["peak_worker_rss_mb"],
    }


def main(argv: list[str] | None = None) -> int:
    from .plan import make_corpus

    ap = argparse.ArgumentParser(prog="python -m benchmarks.formats")
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench-formats")
    ap.add_argument(
        "--repo", default=None, help="run this checkout's etl instead (from its folder)"
    )
    ap.add_argument("--only", choices=["textgrid", "lhotse"], default=None, help="one input only")
    a = ap.parse_args(argv)
    root = os.path.abspath(a.out)
    os.makedirs(root, exist_ok=True)
    make_corpus(root, 10)  # the audio folder
    inputs = {
        "textgrid": lambda: make_textgrids(root, a.files),
        "lhotse": lambda: make_lhotse(root, a.lines),
    }
    inputs = {k: make() for k, make in inputs.items() if a.only in (None, k)}
    import yaml

    for fmt, path in inputs.items():
        out = os.path.join(root, f"plan-{fmt}")
        with open(out + ".yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(
                {
                    "input": {"alignment": path, "audio": os.path.join(root, "audio")},
                    "output": {"path": out},
                    "splits": {"dev_size": 500},
                    "cluster": {"n_workers": a.workers, "dashboard_address": None},
                },
                f,
            )
        t0 = time.time()
        m = measured(["plan", out + ".yaml", "--json"], os.path.abspath(a.repo or os.getcwd()))
        m.update(
            format=fmt,
            input=os.path.basename(path),
            repo=a.repo or ".",
            load=os.getloadavg(),
            at=time.strftime("%Y-%m-%d %H:%M", time.gmtime(t0)),
        )
        print(json.dumps(m), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
