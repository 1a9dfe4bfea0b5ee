"""The review spreadsheet: written by `etl sample`, read back by `etl review import` (openpyxl).

One row per sampled clip with a relative link to ``clips/…wav`` (the folder can be moved or shared
whole), the texts to compare, and empty ``verdict`` (ok/bad dropdown) and ``comment`` columns.
`etl review import` turns the ``bad`` verdicts into an id list for ``splits.exclude_ids``.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

import pandas as pd

from ..curate.splits import id_list_line
from ..errors import UserError
from ..output import storage

SHEET = "review"
# (column, width, number format); "clip" holds the link, "verdict" and "comment" are for the reviewer.
COLUMNS = [
    ("id", 28, None),
    ("clip", 28, None),
    ("recording", 20, None),
    ("start", 9, "0.000"),
    ("end", 9, "0.000"),
    ("duration", 9, "0.000"),
    ("similarity", 10, "0.000"),
    ("split", 7, None),
    ("reason", 14, None),
    ("text_raw", 50, None),
    ("text", 50, None),
    ("hypothesis", 50, None),
    ("verdict", 9, None),
    ("comment", 40, None),
]
VERDICTS = ("ok", "bad")


def write_review_xlsx(f, rows: pd.DataFrame, clip_names: dict, problems: dict, about: dict) -> None:
    """Write the workbook to the binary file ``f``. ``problems[id]``: None when the clip was cut,
    else why not (shown instead of the link, so no sampled row goes missing from the sheet)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    ws.append([c for c, _, _ in COLUMNS])
    for r in rows.to_dict("records"):
        ws.append(
            [
                _cell(r.get(c)) if c not in ("clip", "verdict", "comment") else None
                for c, _, _ in COLUMNS
            ]
        )
        clip = ws.cell(row=ws.max_row, column=2)
        if problems.get(r["id"]) is None:
            name = clip_names[r["id"]]
            clip.value, clip.hyperlink, clip.style = name, f"clips/{quote(name)}", "Hyperlink"
        else:
            clip.value = f"not cut: {problems[r['id']]}"
    last = ws.max_row
    for j, (_, width, fmt) in enumerate(COLUMNS, 1):
        letter = get_column_letter(j)
        ws.column_dimensions[letter].width = width
        if fmt:
            for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                cell.number_format = fmt
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "B2"  # header row and id column stay in view
    ws.auto_filter.ref = ws.dimensions
    verdict = get_column_letter([c for c, _, _ in COLUMNS].index("verdict") + 1)
    dv = DataValidation(
        type="list",
        formula1='"' + ",".join(VERDICTS) + '"',
        allow_blank=True,
        errorStyle="warning",
        error="Expected ok or bad",
        showErrorMessage=True,
    )
    dv.add(f"{verdict}2:{verdict}{max(last, 2)}")
    ws.add_data_validation(dv)
    info = wb.create_sheet("about")
    for k, v in about.items():
        info.append([k, _cell(v)])
    info.append(
        [
            "how",
            "set verdict to ok or bad, then: etl review import review.xlsx  (writes bad_ids.txt "
            "for splits.exclude_ids)",
        ]
    )
    info.column_dimensions["A"].width, info.column_dimensions["B"].width = 12, 90
    wb.save(f)


def _cell(v):
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v.item() if hasattr(v, "item") else v  # numpy scalars -> Python


def read_verdicts(path: str) -> list[tuple[str, str]]:
    """(id, normalized verdict) for every row with an id; verdicts are stripped and lowercased."""
    from openpyxl import load_workbook

    fs, p = storage.fs_and_path(path)
    if not fs.exists(p):
        raise UserError(f"review file not found: {path}")
    with fs.open(p, "rb") as f:  # read_only workbooks read lazily: keep the file open until done
        try:
            wb = load_workbook(f, read_only=True, data_only=True)
        except Exception as e:  # not an xlsx, or a damaged one
            raise UserError(f"{path}: cannot read it as an .xlsx workbook: {e}") from None
        try:
            return _verdict_rows(wb, path)
        finally:
            wb.close()


def _verdict_rows(wb, path: str) -> list[tuple[str, str]]:
    ws = wb[SHEET] if SHEET in wb.sheetnames else wb.worksheets[0]
    rows = ws.iter_rows(values_only=True)
    header = [str(h).strip().lower() if h is not None else "" for h in next(rows, ())]
    missing = [c for c in ("id", "verdict") if c not in header]
    if missing:
        raise UserError(
            f"{path}: sheet '{ws.title}' has no {' and no '.join(repr(c) for c in missing)} "
            f"column in its first row"
        )
    i_id, i_v = header.index("id"), header.index("verdict")
    out = []
    for n, row in enumerate(rows, 2):
        rid = row[i_id] if i_id < len(row) else None
        v = row[i_v] if i_v < len(row) else None
        v = "" if v is None else str(v).strip().lower()
        if rid is None or str(rid).strip() == "":
            if v:
                raise UserError(f"{path}: row {n} has verdict {v!r} but no id")
            continue
        out.append((_id_text(rid), v))
    return out


def _id_text(v) -> str:
    if isinstance(v, float) and v.is_integer():  # a spreadsheet program turned "123" into 123.0
        v = int(v)
    return str(v).strip()


def import_verdicts(path: str, out: str | None = None) -> dict:
    """Write the ids whose verdict is ``bad`` (one per line, each once, in sheet order) to ``out``
    (default: ``bad_ids.txt`` beside the workbook). Returns counts per verdict and the output path."""
    verdicts = read_verdicts(path)
    bad = list(dict.fromkeys(i for i, v in verdicts if v == "bad"))
    out = out or storage.join(path.rsplit("/", 1)[0] if "/" in path else ".", storage.BAD_IDS_FILE)
    fs, p = storage.fs_and_path(out)
    storage.write_bytes(fs, p, "".join(id_list_line(i) for i in bad).encode())
    counts = Counter(v or "(none)" for _, v in verdicts)
    order = [v for v in (*VERDICTS, "(none)") if v in counts] + sorted(
        set(counts) - {*VERDICTS, "(none)"}
    )
    return {
        "out": out,
        "rows": len(verdicts),
        "bad": len(bad),
        "counts": {v: counts[v] for v in order},
    }


def format_import(r: dict) -> str:
    counts = "  ".join(f"{v}: {n}" for v, n in r["counts"].items())
    return f"{r['rows']} reviewed rows   {counts}\n{r['bad']} bad id(s) -> {r['out']}"
