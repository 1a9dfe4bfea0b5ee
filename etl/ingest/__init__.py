"""Stage 1, table -> rows: the alignment readers (``formats``: CSV/TSV/JSON/Parquet/Kaldi in ``table``,
TextGrid, CTM, NeMo, lhotse, subtitles), the audio listing and its join (``recordings``), text
normalization (``text``), word-level segmentation, and the per-row checks that give each bad row
its reason (``rows``). Pure functions on pandas frames: they run per partition on the workers."""
