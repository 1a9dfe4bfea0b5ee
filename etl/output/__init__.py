"""Stage 4, shards -> the dataset: the one place that knows the output layout (``storage``), resume
records and the content hash (``resume``), the dataset card, report.html, the zero-copy Arrow export.
Everything here writes or reads files of OUT; the orchestration that calls it is in ``run``."""
