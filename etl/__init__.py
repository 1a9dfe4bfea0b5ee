"""etl: long recordings + an alignment table -> a 16 kHz mono ASR dataset on Dask."""
__version__ = "0.1.0"
