"""The errors etl raises on purpose. Every one pickles (a value a worker cannot unpickle hangs the
task that fetched it, dask/distributed#7060; ``tests/cluster/test_cluster.py`` checks each class).

- ``UserError``: the user's mistake (config, command line, an unreadable input, a folder in use),
  printed as one line, exit code 2. Raised from every stage.
- ``audio.media.DecodeError`` / ``DecoderUnavailable``: a recording that does not decode, a decoder
  that is not there; ``audio.spans.Unreadable``: a recording whose remaining rows are rejected.
"""

from __future__ import annotations


class UserError(Exception):
    """The user's mistake: printed as one line, exit code 2."""
