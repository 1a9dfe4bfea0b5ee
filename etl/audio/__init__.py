"""Audio primitives, with no knowledge of tables: decoders behind one interface (``decoders``: av,
ffmpeg, pydub), the audio-only demuxer whitelist, cutting a stream into clips and encoding them
(``media``), and the per-clip quality measures (``measures``). Used by ingest (characters per second),
curate (size estimates) and the shard tasks of ``run``."""
