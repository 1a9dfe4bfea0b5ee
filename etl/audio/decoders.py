"""Swappable decoders: one small interface, three backends (``audio.decoder``).

A decoder turns one recording into a stream of int16 ``(frames, channels)`` chunks at the output rate,
ready for ``audio.cut``, and names itself (``identity``) so a build can record, fingerprint and check
across the cluster exactly which library produced its samples.

- ``av`` (default): PyAV decodes, downmixes and resamples (libswresample) in the worker process, with
  the FFmpeg libraries bundled in its wheel. Samples are placed by the frames' timestamps, as the
  ``ffmpeg -i REC -ac 1 -ar 16000`` command places them (encoder priming, edit lists).
- ``ffmpeg``: one streaming ffmpeg subprocess per recording (``audio.stream_ffmpeg``).
- ``pydub``: the whole recording in memory (``audio.stream_pydub``).

Every backend opens only the audio demuxers of ``audio.AUDIO_DEMUXERS`` and only local files (remote
recordings arrive through fsspec file objects): playlists, images, devices and network protocols are
refused, and the rows of such a file become ``unreadable_audio`` with a detail that says why.
"""
from __future__ import annotations

import functools
import os
import subprocess
from fractions import Fraction
from typing import Iterator

import numpy as np

from . import media as audio
from .media import DecodeError, DecoderUnavailable


class Decoder:
    """A recording -> int16 (frames, channels) chunks. Subclasses set ``name`` and implement both methods."""

    name = ""

    def __init__(self, ffmpeg: str | None = None):
        self.ffmpeg = ffmpeg  # audio.ffmpeg: the binary of the CLI backends (None: the bundled one)

    def identity(self) -> str:
        """The library versions that decide the samples (one line)."""
        raise NotImplementedError

    def stream(self, url: str, sampling_rate: int = 16000, channels: int = 1) -> Iterator[np.ndarray]:
        raise NotImplementedError


class AvDecoder(Decoder):
    name = "av"

    def identity(self) -> str:
        return _av_identity()

    def stream(self, url, sampling_rate=16000, channels=1):
        return stream_av(url, sampling_rate, channels)


class FfmpegDecoder(Decoder):
    name = "ffmpeg"

    def identity(self) -> str:
        return ffmpeg_identity(audio.ffmpeg_binary(self.ffmpeg))

    def stream(self, url, sampling_rate=16000, channels=1):
        return audio.stream_ffmpeg(url, sampling_rate, channels, self.ffmpeg)


class PydubDecoder(Decoder):
    name = "pydub"

    def identity(self) -> str:
        from importlib.metadata import version

        return f"pydub {version('pydub')}; {ffmpeg_identity(audio.ffmpeg_binary(self.ffmpeg))}"

    def stream(self, url, sampling_rate=16000, channels=1):
        return audio.stream_pydub(url, sampling_rate, channels, self.ffmpeg)


DECODERS: dict[str, type[Decoder]] = {"av": AvDecoder, "ffmpeg": FfmpegDecoder, "pydub": PydubDecoder}


def get_decoder(name: str, ffmpeg: str | None = None) -> Decoder:
    return DECODERS[name](ffmpeg)


@functools.lru_cache(maxsize=None)
def decoder_identity(name: str, ffmpeg: str | None = None) -> str:
    """``get_decoder(name, ffmpeg).identity()``, once per process (also what ``client.run`` asks workers)."""
    return get_decoder(name, ffmpeg).identity()


def _av_identity() -> str:
    try:
        import av
    except ImportError as e:
        raise DecoderUnavailable(f"audio.decoder av needs PyAV (pip install av): {e}") from None
    return f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})"


@functools.lru_cache(maxsize=None)
def ffmpeg_identity(binary: str) -> str:
    """The first line of ``ffmpeg -version`` without its copyright, e.g. ``ffmpeg version n9.0.2``."""
    try:
        out = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise DecoderUnavailable(f"cannot run ffmpeg {binary!r}: {getattr(e, 'strerror', None) or e}") from None
    first = (out.splitlines() or [f"{binary}: no version"])[0]
    return first.split(" Copyright")[0].strip()


# ----------------------------------------------------------------------------------------------------
# PyAV


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _open_av(url: str, f):
    """A container: a local path opened by libav through ``file:`` only, a remote one through its
    fsspec file object ``f`` (libav never sees a URL). Only audio demuxers are allowed."""
    import av

    options = {"format_whitelist": ",".join(audio.AUDIO_DEMUXERS), "protocol_whitelist": "file"}
    if f is None:
        return av.open("file:" + os.path.abspath(url.removeprefix("file://")), options=options)
    return av.open(f, options=options)


def _head(url: str, f) -> bytes:
    """The first bytes of the recording, from the file object already open for a remote one."""
    if f is None:
        return audio.local_head(url.removeprefix("file://"))
    try:
        f.seek(0)
        return f.read(audio.HEAD_BYTES)
    except (OSError, ValueError):
        return b""


def _trimmed(frames, tb: Fraction, start: int | None, edit_lists: bool) -> Iterator:
    """Decoded frames cut to the samples their timestamps cover, as the ffmpeg command cuts them:
    nothing before the stream's start (priming), and in MP4/MOV (``edit_lists``) nothing past a
    frame's duration (the edit list trims the encoder's padding off the last frame). Elsewhere frame
    durations are too coarse (Matroska: milliseconds) or guessed (Ogg Vorbis) to trim by. ``tb``: the
    stream's time base (pts and durations count in it)."""
    for frame in frames:
        pts, n = frame.pts, frame.samples
        skip, keep = 0, n
        if start is not None and pts is not None and pts < start:
            skip = min(n, int(round((start - pts) * tb * frame.sample_rate)))
        if edit_lists and frame.duration:
            keep = min(n, int(round(frame.duration * tb * frame.sample_rate)))
        if skip == 0 and keep == n:
            yield frame
        elif keep > skip:
            yield _slice_frame(frame, skip, keep, tb)


def _slice_frame(frame, skip: int, keep: int, tb: Fraction):
    """Samples [skip, keep) of an audio frame, as a new frame with its timestamp moved accordingly."""
    import av

    x = frame.to_ndarray()
    ch = 1 if frame.format.is_planar else len(frame.layout.channels)  # packed: channels interleaved
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, skip * ch:keep * ch]), format=frame.format.name,
                                     layout=frame.layout.name)
    out.sample_rate, out.time_base = frame.sample_rate, tb
    if frame.pts is not None:
        out.pts = frame.pts + int(round(Fraction(skip, frame.sample_rate) / tb))
    return out


def stream_av(url: str, sampling_rate: int = 16000, channels: int = 1,
              chunk_seconds: float = audio.CHUNK_SECONDS) -> Iterator[np.ndarray]:
    """Yield int16 arrays of shape (frames, channels): PyAV decode + libswresample, in this process."""
    try:
        import av
    except ImportError as e:
        raise DecoderUnavailable(f"audio.decoder av needs PyAV (pip install av): {e}") from None
    f = None
    try:
        if not _is_local(url):
            import fsspec

            f = fsspec.open(url, "rb").open()
        try:
            container = _open_av(url, f)
        except av.error.ArgumentError as e:  # the demuxer is not on the whitelist
            raise DecodeError(audio.refusal_detail(_head(url, f), f"its format is not on the demuxer whitelist "
                                                                  f"({e.strerror})")) from None
        with container:
            if not container.streams.audio:
                raise DecodeError("no audio stream")
            stream = container.streams.audio[0]
            stream.thread_type = "NONE"  # one core per worker: frame threads only add hand-offs
            resampler = av.AudioResampler(format="s16", layout="mono" if channels == 1 else "stereo",
                                          rate=sampling_rate, frame_size=max(1, int(chunk_seconds * sampling_rate)))
            edit_lists = container.format.name.startswith("mov")
            for frame in _trimmed(container.decode(stream), stream.time_base, stream.start_time, edit_lists):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1, channels)
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1, channels)
    except (DecodeError, DecoderUnavailable):
        raise
    except av.error.FFmpegError as e:
        if isinstance(e, OSError):  # av's FileNotFoundError, PermissionError ...: the caller decides
            raise
        raise DecodeError(audio.refusal_detail(_head(url, f)) or f"{type(e).__name__}: {e.strerror or e}"[:500]) from None
    finally:
        if f is not None:
            f.close()
