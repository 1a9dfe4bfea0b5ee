"""Thin command line: parse, load the config, call the library, print."""
from __future__ import annotations

import argparse
import os
import sys

from .config import ConfigError, load_config


def _summary(report: dict, out: str) -> str:
    lines = [f"rows in: {report['rows_in']}   kept: {report['rows_out']}   rejected: {report['rows_rejected']}"]
    for s, v in report["splits"].items():
        lines.append(f"  {s:<16} {v['rows']:>8} rows {v['hours']:>9.3f} h  {v['files']} file(s)")
    for r, n in report["rejects"].items():
        if n:
            lines.append(f"  rejected {r:<20} {n:>8}")
    t = report["timings"]
    lines.append(f"decoded {report['hours_decoded']:.3f} h of recordings in {t['total_s']:.1f} s")
    lines.append(f"dataset: {out}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="etl", description="Long recordings + alignment table -> ASR dataset.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"etl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the dataset described by a config file")
    b.add_argument("config", help="YAML config (see conf/default.yaml)")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set splits.dev_size=100 (repeatable)")
    pl = sub.add_parser("plan", help="dry run: rows, hours and estimated size per split, decoding nothing")
    pl.add_argument("config")
    pl.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    pl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    try:
        cfg = load_config(args.config, args.overrides)
        if args.command == "plan":
            from .plan import format_plan, plan, plan_json

            p = plan(cfg)
            print(plan_json(p) if args.json else format_plan(p))
            return 0
        from .build import build

        report = build(cfg)
    except ConfigError as e:
        print(f"etl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("etl: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # not the user's mistake: one line, the traceback on request
        if os.environ.get("ETL_DEBUG"):
            raise
        print(f"etl: failed: {type(e).__name__}: {e} (set ETL_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    print(_summary(report, cfg["output"]["path"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
