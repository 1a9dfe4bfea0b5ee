"""Thin command line: parse, load the config, call the library, print."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from .cluster import session as cluster_session
from .config import load_config
from .errors import UserError
from .records import Report


def _summary(report: Report, out: str) -> str:
    lines = [
        f"rows in: {report['rows_in']}   kept: {report['rows_out']}   rejected: {report['rows_rejected']}"
    ]
    for s, v in report["splits"].items():
        lines.append(f"  {s:<16} {v['rows']:>8} rows {v['hours']:>9.3f} h  {v['files']} file(s)")
    for r, n in report["rejects"].items():
        if n:
            lines.append(f"  rejected {r:<20} {n:>8}")
    if set(report.get("alignment_encodings") or {}) - {"utf-8"}:  # a file was not UTF-8
        from .commands.plan import format_encodings

        lines.append(f"  {format_encodings(report['alignment_encodings'])}")
    t = report["timings"]
    if not report.get("up_to_date"):
        lines.append(
            f"decoded {report['hours_decoded']:.3f} h of recordings, reused "
            f"{report.get('hours_reused', 0.0):.3f} h of clips from the dataset there, "
            f"in {t['total_s']:.1f} s"
        )
    lines.append(
        f"content hash: {report.get('content_hash', '-')}   (rows, splits and audio bytes)"
    )
    lines.append(f"dataset: {out}")
    return "\n".join(lines)


def _add_review_commands(sub) -> None:
    sa = sub.add_parser(
        "sample", help="cut a seeded sample of rows into clips/ + review.xlsx for human review"
    )
    sa.add_argument("config")
    sa.add_argument("--n", type=int, default=1000, help="rows to sample (default 1000)")
    sa.add_argument(
        "--seed", type=int, default=0, help="the same seed gives the same sample (default 0)"
    )
    sa.add_argument(
        "--out", required=True, help="folder for clips/, sampled_ids.txt and review.xlsx"
    )
    sa.add_argument(
        "--where",
        help="pandas query choosing among all cuttable rows, kept or filtered, e.g. "
        "'similarity < 0.8' (columns: id recording start end duration similarity chars_per_second text "
        "text_raw hypothesis split reason; 'recording in @suspects': the build's suspect recordings); "
        "default: the rows the build keeps",
    )
    sa.add_argument(
        "--force", action="store_true", help="replace an earlier sample (and its verdicts) in --out"
    )
    sa.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    rv = sub.add_parser("review", help="read a reviewed spreadsheet back").add_subparsers(
        dest="review", required=True
    )
    ri = rv.add_parser("import", help="ids with verdict 'bad' -> an id list for splits.exclude_ids")
    ri.add_argument("xlsx")
    ri.add_argument("--out", help="the id list (default: bad_ids.txt beside the workbook)")
    rp = sub.add_parser("report", help="write OUT/report.html again from a built dataset")
    rp.add_argument("out", help="the dataset folder (output.path)")


def _run_without_config(args) -> str:
    if args.command == "review":
        from .review.spreadsheet import format_import, import_verdicts

        return format_import(import_verdicts(args.xlsx, args.out))
    from .output.report_html import write_report_html

    return f"report: {write_report_html(args.out)}"


def run() -> None:
    """The ``etl`` command (and ``python -m etl``): ``main``, then the exit without the interpreter's
    teardown. Once ``main`` returns, every file etl wrote is closed and its cluster is closed; the
    exit handlers still run (logging's flush, Dask's, multiprocessing's), and only the freeing of
    every module and object one by one is skipped (~0.3 s of a build's per-build cost)."""
    import atexit

    try:
        code = main()
    except SystemExit as e:  # argparse: --help, --version, a usage error
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (etl plan | head): nothing more to say
            pass
    os._exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etl", description="Long recordings + alignment table -> ASR dataset."
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"etl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the dataset described by a config file")
    b.add_argument("config", help="YAML config (see conf/default.yaml)")
    b.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set splits.dev_size=100 (repeatable)",
    )
    b.add_argument(
        "--force",
        action="store_true",
        help="start clean: discard an unfinished build of another config, rebuild a complete one",
    )
    pl = sub.add_parser(
        "plan", help="dry run: rows, hours and estimated size per split, decoding nothing"
    )
    pl.add_argument("config")
    pl.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    pl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_review_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    interrupted = False
    try:
        if args.command in ("review", "report"):  # they read what etl wrote, not a config
            print(_run_without_config(args))
            return 0
        text = _run_with_config(args)
    except UserError as e:
        print(f"etl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = _interrupted(interrupted)
        return 130
    except Exception as e:  # not the user's mistake: one line, the traceback on request
        if os.environ.get("ETL_DEBUG"):
            raise
        print(
            f"etl: failed: {type(e).__name__}: {e} (set ETL_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        try:  # a cluster opened early that no command took (after a Ctrl-C: no waiting for it)
            cluster_session.close_early(wait=not interrupted)
        except KeyboardInterrupt:  # Ctrl-C while it closes: left to end with this process
            interrupted = _interrupted(interrupted)
    if interrupted:
        return 130
    print(text)
    return 0


def _run_with_config(args) -> str:
    """build, plan or sample: the config read, the cluster started while the command's modules
    import (a Ctrl-C meanwhile is raised after them), the command run; what it prints."""
    with _ctrl_c_after_imports():
        cfg = load_config(args.config, args.overrides)
        cluster_session.start_forkserver(cfg.cluster)  # the workers' imports, while we do ours
        cluster_session.open_early(cfg.cluster)  # the cluster starts while we import the command
        command = _command(args)
    return command(cfg)


def _command(args):
    """The command ``args`` names, its modules imported: a function of the config to its output."""
    if args.command == "sample":
        from .commands.sample import sample
        from .review.sample import format_sample

        return lambda cfg: format_sample(
            sample(cfg, args.n, args.seed, args.out, args.where, args.force)
        )
    if args.command == "plan":
        from .commands.plan import format_plan, plan, plan_json

        return lambda cfg: (plan_json if args.json else format_plan)(plan(cfg))
    from .commands.build import build

    return lambda cfg: _summary(build(cfg, force=args.force), cfg.output.path)


@contextlib.contextmanager
def _ctrl_c_after_imports():
    """A Ctrl-C while the command's modules import is raised once they are imported: a
    KeyboardInterrupt inside the import machinery can be swallowed ("Exception ignored"), print
    a traceback, or leave a module lock held that the thread opening the cluster then waits on."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hit: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda *_: hit.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if hit:
        raise KeyboardInterrupt


def _interrupted(already: bool) -> bool:
    """A Ctrl-C: one line, the first time. SIGINT is ignored from then on: this process is ending,
    and a second Ctrl-C while it closes would be a traceback (what is left to close ends with it:
    its workers watch it)."""
    import signal
    import threading

    if not already:
        print("etl: interrupted", file=sys.stderr)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return True


if __name__ == "__main__":
    run()
