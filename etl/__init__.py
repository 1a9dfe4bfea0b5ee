"""etl: long recordings + an alignment table -> a 16 kHz mono ASR dataset on Dask."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `etl.load` imported lazily: the CLI must not pay for importing `datasets` at start-up.
    # (Its module is etl/loading.py: a submodule named `load` would shadow the function.)
    if name == "load":
        from .loading import load

        return load
    raise AttributeError(f"module 'etl' has no attribute {name!r}")
