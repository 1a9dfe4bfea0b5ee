"""Data flows one way, and the folders of etl/ show it. The stages, in import order:

    base (schema, records, config, errors) -> audio -> ingest -> curate -> output -> cluster
        -> planning -> shards -> review -> commands -> top

``audio`` holds primitives with no knowledge of tables, so every stage may use it. ``output`` is the
output folder's layout and writers, used by every stage that writes. ``commands`` orchestrate: they
drive planning, the shard tasks and finalize in order. No module imports one of a later stage."""

from __future__ import annotations

import ast
import pathlib

BASE = {"schema", "records", "config", "errors"}
FOLDERS = [
    "audio",
    "ingest",
    "curate",
    "output",
    "cluster",
    "planning",
    "shards",
    "review",
    "commands",
]
TOP = {"cli", "loading", "demo", "__init__", "__main__", "testing"}
ORDER = ["base", *FOLDERS, "top"]
ETL = pathlib.Path(__file__).resolve().parent.parent / "etl"


def _stage(parts: tuple[str, ...]) -> str:
    """The stage of the module etl/<parts...> (``parts`` without the .py suffix)."""
    head = parts[0]
    if head in FOLDERS:
        return head
    if head in BASE:
        return "base"
    assert head in TOP, (
        f"etl/{'/'.join(parts)}: put it in a stage folder (or in BASE/TOP of tests/test_layers.py)"
    )
    return "top"


def _imported(path: pathlib.Path) -> set[tuple[str, ...]]:
    """The etl modules a file imports, as paths under etl/ (relative imports resolved)."""
    pkg = list(path.relative_to(ETL).parent.parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = base + (node.module.split(".") if node.module else [])
            elif (node.module or "").startswith("etl."):
                mod = node.module.split(".")[1:]
            else:
                continue
            out.update([tuple(mod)] if mod else [(a.name,) for a in node.names])
        elif isinstance(node, ast.Import):
            out.update(
                tuple(a.name.split(".")[1:]) for a in node.names if a.name.startswith("etl.")
            )
    return {m for m in out if m and m[0] != "__version__"}


def test_no_module_imports_a_later_stage():
    wrong = []
    for path in sorted(ETL.rglob("*.py")):
        me = _stage(path.relative_to(ETL).with_suffix("").parts)
        for dep in sorted(_imported(path)):
            if ORDER.index(_stage(dep)) > ORDER.index(me):
                wrong.append(
                    f"etl/{path.relative_to(ETL)} ({me}) imports etl.{'.'.join(dep)} ({_stage(dep)})"
                )
    assert not wrong, wrong


def test_the_folders_show_the_flow():
    assert sorted(
        p.name for p in ETL.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    ) == sorted(FOLDERS + ["testing"])
