"""The decode-span loop: one recording decoded once, each wanted span yielded once, a transient read
error retried from the start without losing or repeating a clip, corrupt data raised as
``Unreadable``. Used by the shard task and by `etl sample`.
"""

from __future__ import annotations

import logging
import time

from . import allocator, decoders
from . import media as audio

# A read error of a recording (network, object store) is retried after these pauses, restarting its
# decode; errors that cannot get better are not. Corrupt data (DecodeError) is never retried.
READ_RETRY_DELAYS = (0.5, 2.0, 5.0)
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
log = logging.getLogger("etl.audio.spans")


class Unreadable(Exception):
    """A recording that cannot be read or decoded: its remaining rows become ``unreadable_audio``."""


def decode_spans(
    url: str,
    spans: list,
    decoder: str = "av",
    ffmpeg: str | None = None,
    sampling_rate: int = 16000,
    channels: int = 1,
    tolerance: int = 0,
    stats: dict | None = None,
    tap=None,
):
    """``audio.cut`` of one recording, each span yielded once as ``(index, samples or None, total)``.
    A transient read error restarts the decode from the beginning (after a pause), skipping the spans
    already yielded, so no clip is lost or written twice; corrupt data raises ``Unreadable`` at once.
    Errors in the caller (writing the output) are not caught here. ``stats``: the decoder's
    (``skipped_seconds``: audio no span needed, not decoded). ``tap``: an object with ``restart()``
    and ``feed(block)`` that sees every decoded block in order (a fingerprinter), restarted with the
    decode; skipped stretches reach it as the decoder's zeros. Used by the shard task and
    ``etl sample``."""
    allocator.tune()  # a worker's decode reuses its memory instead of faulting in fresh pages
    dec = decoders.get_decoder(decoder, ffmpeg)
    stats = {} if stats is None else stats
    done: set = set()
    for attempt in range(len(READ_RETRY_DELAYS) + 1):
        stats["skipped_seconds"] = 0.0
        try:
            chunks = dec.stream(url, sampling_rate, channels, need=spans, stats=stats)
            if tap is not None:
                tap.restart()
                chunks = _tapped(chunks, tap)
            for i, samples, total in audio.cut(chunks, spans, tolerance):
                if i not in done:
                    done.add(i)
                    yield i, samples, total
            return
        except audio.DecoderUnavailable:
            raise  # a setup problem: stop the build, do not blame the recordings
        except audio.DecodeError as e:  # corrupt data: rejected at once, never retried
            raise Unreadable(str(e)) from None
        except OSError as e:  # storage or network: retried unless it cannot get better
            if isinstance(e, _PERMANENT) or attempt == len(READ_RETRY_DELAYS):
                raise Unreadable(f"{type(e).__name__}: {e}") from None
            log.warning(
                "reading %s failed (%s: %s); retry %d in %.1f s",
                url,
                type(e).__name__,
                e,
                attempt + 1,
                READ_RETRY_DELAYS[attempt],
            )
            time.sleep(READ_RETRY_DELAYS[attempt])
        except Exception as e:
            raise Unreadable(f"{type(e).__name__}: {e}") from None


def _tapped(chunks, tap):
    """``chunks``, each also fed to ``tap``; closing this closes the decoder's stream."""
    try:
        for chunk in chunks:
            tap.feed(chunk)
            yield chunk
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
