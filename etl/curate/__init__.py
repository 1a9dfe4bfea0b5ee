"""Stage 2, rows -> splits: seeded train/dev/test assignment and budgets (``splits``), the CTC
vocabulary (``vocab``) and suspect recordings (``suspects``). Pure policy: no I/O, no Dask."""
