"""Data flows one way: base -> ingest -> curate -> run -> output -> review. No module imports one of
a later stage (a new module must be placed in STAGES first)."""
from __future__ import annotations

import ast
import pathlib

STAGES = {
    "base": ["schema", "records", "storage", "text", "audio", "decoders", "measures", "segmentation", "suspects",
             "vocab", "synth"],
    "ingest": ["config", "formats", "table", "recordings", "rows"],
    "curate": ["splits"],
    "run": ["planning", "cluster_plan", "plan_store", "cluster", "shards", "resume", "lease", "arrow_export"],
    "output": ["build", "card", "report_html", "plan"],
    "review": ["sample", "review", "loading", "cli", "demo", "__init__", "__main__"],
}
RANK = {m: i for i, mods in enumerate(STAGES.values()) for m in mods}
ETL = pathlib.Path(__file__).resolve().parent.parent / "etl"


def _imports(path: pathlib.Path) -> set[str]:
    in_formats = path.parent.name == "formats"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            if in_formats and node.level == 1:
                continue  # inside etl/formats
            base = (node.module or "").split(".")[0]
            out.update([base] if base else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("etl."):
            out.add(node.module.split(".")[1])
    return out - {"__version__"}


def test_no_module_imports_a_later_stage():
    wrong = []
    for path in sorted(ETL.rglob("*.py")):
        mod = "formats" if path.parent.name == "formats" else path.stem
        assert mod in RANK, f"etl/{path.relative_to(ETL)}: place it in a stage of tests/test_layers.py"
        wrong += [f"{mod} ({_stage(mod)}) imports {dep} ({_stage(dep)})"
                  for dep in sorted(_imports(path) - {mod}) if RANK[dep] > RANK[mod]]
    assert not wrong, wrong


def _stage(mod: str) -> str:
    return list(STAGES)[RANK[mod]]
