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
import math
import os
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from . import media as audio
from .media import DecodeError, DecoderUnavailable

if TYPE_CHECKING:
    import av


class Decoder:
    """A recording -> int16 (frames, channels) chunks. Subclasses set ``name`` and implement both methods."""

    name = ""

    def __init__(self, ffmpeg: str | None = None):
        self.ffmpeg = ffmpeg  # audio.ffmpeg: the binary of the CLI backends (None: the bundled one)

    def identity(self) -> str:
        """The library versions that decide the samples (one line)."""
        raise NotImplementedError

    def stream(
        self,
        url: str,
        sampling_rate: int = 16000,
        channels: int = 1,
        need: list | None = None,
        stats: dict | None = None,
    ) -> Iterator[np.ndarray]:
        """``need``: sorted (first, stop) output sample spans the caller will cut (None: all). A
        backend may skip decoding outside them; it then yields zeros there (so every sample keeps its
        index) and adds the seconds it skipped to ``stats["skipped_seconds"]``. Inside the spans the
        samples are those of a full decode, bit for bit."""
        raise NotImplementedError


class AvDecoder(Decoder):
    name = "av"

    def identity(self) -> str:
        return _av_identity()

    def stream(self, url, sampling_rate=16000, channels=1, need=None, stats=None):
        return stream_av(url, sampling_rate, channels, need=need, stats=stats)


class FfmpegDecoder(Decoder):
    name = "ffmpeg"

    def identity(self) -> str:
        return ffmpeg_identity(audio.ffmpeg_binary(self.ffmpeg))

    def stream(self, url, sampling_rate=16000, channels=1, need=None, stats=None):
        return audio.stream_ffmpeg(url, sampling_rate, channels, self.ffmpeg)


class PydubDecoder(Decoder):
    name = "pydub"

    def identity(self) -> str:
        from importlib.metadata import version

        return f"pydub {version('pydub')}; {ffmpeg_identity(audio.ffmpeg_binary(self.ffmpeg))}"

    def stream(self, url, sampling_rate=16000, channels=1, need=None, stats=None):
        return audio.stream_pydub(url, sampling_rate, channels, self.ffmpeg)


DECODERS: dict[str, type[Decoder]] = {
    "av": AvDecoder,
    "ffmpeg": FfmpegDecoder,
    "pydub": PydubDecoder,
}


def get_decoder(name: str, ffmpeg: str | None = None) -> Decoder:
    return DECODERS[name](ffmpeg)


@functools.cache
def decoder_identity(name: str, ffmpeg: str | None = None) -> str:
    """``get_decoder(name, ffmpeg).identity()``, once per process (also what ``client.run`` asks workers)."""
    return get_decoder(name, ffmpeg).identity()


def _av_identity() -> str:
    try:
        import av
    except ImportError as e:
        raise DecoderUnavailable(f"audio.decoder av needs PyAV (pip install av): {e}") from None
    return f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})"


@functools.cache
def ffmpeg_identity(binary: str) -> str:
    """The first line of ``ffmpeg -version`` without its copyright, e.g. ``ffmpeg version n9.0.2``."""
    try:
        out = subprocess.run(
            [binary, "-version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise DecoderUnavailable(
            f"cannot run ffmpeg {binary!r}: {getattr(e, 'strerror', None) or e}"
        ) from None
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
    out = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(x[:, skip * ch : keep * ch]),
        format=frame.format.name,
        layout=frame.layout.name,
    )
    out.sample_rate, out.time_base = frame.sample_rate, tb
    if frame.pts is not None:
        out.pts = frame.pts + int(round(Fraction(skip, frame.sample_rate) / tb))
    return out


def stream_av(
    url: str,
    sampling_rate: int = 16000,
    channels: int = 1,
    chunk_seconds: float = audio.CHUNK_SECONDS,
    need: list | None = None,
    stats: dict | None = None,
) -> Iterator[np.ndarray]:
    """Yield int16 arrays of shape (frames, channels): PyAV decode + libswresample, in this process.
    With ``need`` (see ``Decoder.stream``), codecs of ``SKIPPABLE_CODECS`` skip the packets no span
    needs (``decode_regions``), and every codec stops after the last needed sample. A
    ``media.with_channel`` URL gives that channel of the file alone (``_Output``), not the downmix."""
    url, channel = audio.split_channel(url)
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
            raise DecodeError(
                audio.refusal_detail(
                    _head(url, f), f"its format is not on the demuxer whitelist ({e.strerror})"
                )
            ) from None
        with container:
            if not container.streams.audio:
                raise DecodeError("no audio stream")
            stream = container.streams.audio[0]
            if stream.codec_context is None:  # a codec this FFmpeg cannot decode
                why = None if f is not None else audio.sphere_refusal(url.removeprefix("file://"))
                raise DecodeError(why or "no decoder for the audio stream's codec")
            stream.thread_type = "NONE"  # one core per worker: frame threads only add hand-offs
            out = _Output(sampling_rate, channels, chunk_seconds, channel)
            skippable = (
                stream.codec_context.name in SKIPPABLE_CODECS
                and not container.format.name.startswith("mov")
            )
            regions = decode_regions(need, sampling_rate) if need and skippable else None
            if stats is not None:
                stats.setdefault("skipped_seconds", 0.0)
            if not worth_skipping(regions):
                edit_lists = container.format.name.startswith("mov")
                frames = _trimmed(
                    container.decode(stream), stream.time_base, stream.start_time, edit_lists
                )
                yield from out.convert(frames, flush=True)
            else:
                assert regions is not None  # worth_skipping(None) is False
                yield from _decode_regions(
                    container, stream, regions, out, {} if stats is None else stats
                )
    except (DecodeError, DecoderUnavailable):
        raise
    except av.error.FFmpegError as e:
        if isinstance(
            e, OSError
        ):  # av's FileNotFoundError, PermissionError ...: the caller decides
            raise
        raise DecodeError(
            audio.refusal_detail(_head(url, f)) or f"{type(e).__name__}: {e.strerror or e}"[:500]
        ) from None
    finally:
        if f is not None:
            f.close()


# ----------------------------------------------------------------------------------------------------
# Decoding only what the rows need


# Codecs whose decode, restarted PREROLL_S before a sample, gives that sample bit for bit as a full
# decode does (tests/audio/test_decoders.py checks it on real files). AAC (priming, edit lists) and Opus
# (its state converges but is not exact) are decoded whole, up to the last needed sample.
SKIPPABLE_CODECS = ("mp3", "mp3float", "mp2", "mp2float", "vorbis")
PREROLL_S = 0.25  # decoded before a region and thrown away: the codec's and the resampler's warm-up
TAIL_S = 0.25  # decoded after a region's last needed sample
MIN_SKIP_S = 2.0  # a shorter stretch is decoded: a restart costs about this much
MIN_SKIP_FRACTION = 0.1


def decode_regions(need: list, sampling_rate: int) -> list[tuple[float, float]]:
    """Needed output spans -> the stretches of the recording to decode, in seconds: each span widened
    by PREROLL_S and TAIL_S, and stretches less than MIN_SKIP_S apart merged."""
    regions: list[list[float]] = []
    for first, stop in sorted(need):
        a, b = max(0.0, first / sampling_rate - PREROLL_S), stop / sampling_rate + TAIL_S
        if regions and a - regions[-1][1] < MIN_SKIP_S:
            regions[-1][1] = max(regions[-1][1], b)
        else:
            regions.append([a, b])
    if regions and regions[0][0] < MIN_SKIP_S:
        regions[0][0] = 0.0  # decode from the start rather than restart within the first seconds
    return [(a, b) for a, b in regions]


def worth_skipping(regions: list | None) -> bool:
    """Whether the regions leave out at least MIN_SKIP_FRACTION of the audio up to the last of them
    (a decode by regions costs a little per packet; the plain decode stops after the last one too)."""
    if not regions:
        return False
    covered = sum(b - a for a, b in regions)
    return covered <= (1 - MIN_SKIP_FRACTION) * regions[-1][1]


# The largest block of decoded input handed to the resampler. Larger blocks got fresh pages from
# glibc on every call (an allocation of 128 KiB or more is its own mmap; a Dask nanny's
# MALLOC_TRIM_THRESHOLD_ freezes that threshold), each page faulting: 2-s blocks of 44.1 kHz stereo
# float (705 KB) cost 193,000-214,000 page faults per 20 min of MP3 and ~25 % more CPU than 0.35-s ones.
BLOCK_BYTES = 120 * 1024


class _Output:
    """Resampled int16 output with its position: a fresh resampler per decoded region, zeros for the
    stretches between regions, so each sample keeps the index a full decode gives it.

    Decoded frames reach the resampler through an ``av.AudioFifo`` in blocks of ``chunk_seconds``
    of input, at most BLOCK_BYTES (0.35 s of 44.1 kHz stereo float): one resampler call per block
    instead of one per codec frame (an MP3 frame is 26 ms).
    libswresample's output does not depend on how its input is split (the tests compare clips bit
    for bit), and the calls cost less: decode + resample of a 19.8-min MP3 took 1.9-2.1 CPU s against
    2.2-3.3 s frame by frame (BENCHMARKS.md). Samples were already placed by timestamp upstream
    (``_trimmed``, ``_from_sample``), so the FIFO gets frames without timestamps. With ``channel``
    (from 1), each block read from the FIFO is cut to that channel alone before the resampler
    (``one_channel``)."""

    def __init__(
        self, sampling_rate: int, channels: int, chunk_seconds: float, channel: int | None = None
    ):
        self.rate, self.channels, self.pos = sampling_rate, channels, 0
        self.channel = channel
        self.chunk_seconds = chunk_seconds
        self.frame_size = max(1, int(chunk_seconds * sampling_rate))
        self.resampler: av.AudioResampler | None = None
        self.fifo: av.AudioFifo | None = None
        self.skip = 0
        # (format, layout, rate) of the first frame: the FIFO holds only those
        self.source: tuple[str, str, int] | None = None

    def restart(self, at: int) -> Iterator[np.ndarray]:
        """A new resampler whose first output sample is output index ``at`` (zeros up to it)."""
        import av

        self.resampler = av.AudioResampler(
            format="s16",
            layout="mono" if self.channels == 1 else "stereo",
            rate=self.rate,
            frame_size=self.frame_size,
        )
        self.fifo = av.AudioFifo()
        self.skip = max(0, self.pos - at)  # never move backwards: drop what is already out
        while self.pos < at:
            n = min(self.frame_size, at - self.pos)
            self.pos += n
            yield np.zeros((n, self.channels), dtype=np.int16)

    def convert(self, frames, flush: bool) -> Iterator[np.ndarray]:
        if self.resampler is None:
            yield from self.restart(self.pos)
        resampler, fifo, block = self.resampler, self.fifo, 0
        assert resampler is not None and fifo is not None  # restart() made them
        for frame in frames:
            if not block:
                block = self._block(frame)
            elif (frame.format.name, frame.layout.name, frame.sample_rate) != self.source:
                raise DecodeError(
                    f"the audio changes format mid-stream: {self.source} -> "
                    f"{(frame.format.name, frame.layout.name, frame.sample_rate)}"
                )
            frame.pts = None
            fifo.write(frame)
            while fifo.samples >= block:
                yield from self._emit(resampler.resample(self._pick(fifo.read(block))))
        if flush:
            if fifo.samples:
                yield from self._emit(resampler.resample(self._pick(fifo.read())))
            yield from self._emit(resampler.resample(None))

    def _pick(self, frame):
        return frame if self.channel is None else one_channel(frame, self.channel)

    def _block(self, frame) -> int:
        """Input samples per resampler call, from the first frame (whose format the FIFO keeps):
        ``chunk_seconds`` of input, but at most BLOCK_BYTES of it."""
        source = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self.source is not None and source != self.source:
            raise DecodeError(f"the audio changes format mid-stream: {self.source} -> {source}")
        self.source = source
        per_sample = frame.format.bytes * len(frame.layout.channels)
        return max(1, min(int(self.chunk_seconds * frame.sample_rate), BLOCK_BYTES // per_sample))

    def _emit(self, outs) -> Iterator[np.ndarray]:
        for o in outs:
            x = o.to_ndarray().reshape(-1, self.channels)
            if self.skip:
                k = min(self.skip, len(x))
                x, self.skip = x[k:], self.skip - k
            if len(x):
                self.pos += len(x)
                yield x


def one_channel(frame, channel: int):
    """Channel ``channel`` (from 1) of a decoded audio frame, as a mono frame of the same sample
    format and rate: no downmix. A channel the frame lacks is a DecodeError naming both."""
    import av

    have = len(frame.layout.channels)
    if channel > have:
        raise DecodeError(f"channel {channel} asked for, the recording has {have}")
    x = frame.to_ndarray()  # planar: (channels, samples); packed: (1, samples * channels)
    x = x[channel - 1] if frame.format.is_planar else x.reshape(-1, have)[:, channel - 1]
    out = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(x).reshape(1, -1), format=frame.format.name, layout="mono"
    )
    out.sample_rate = frame.sample_rate
    return out


def _decode_regions(
    container, stream, regions: list, out: _Output, stats: dict
) -> Iterator[np.ndarray]:
    """Decode only the packets of ``regions`` (seconds from the stream's start). A region after a skip
    restarts the codec, and the resampler PREROLL_S/2 into the region at an input sample whose
    output index is whole (so its phase is a full decode's); what comes before is thrown away."""
    from itertools import groupby

    tb, start = stream.time_base, stream.start_time or 0
    rate = stream.codec_context.sample_rate
    grid = rate // math.gcd(rate, out.rate)  # input samples per whole number of output samples
    stats.setdefault("skipped_seconds", 0.0)
    previous_end = 0.0
    for r, packets in groupby(_region_packets(container, stream, regions), key=lambda rp: rp[0]):
        a, b = regions[r]
        s0 = 0
        if a > 0:  # after a skip: the codec forgets what it decoded before
            stream.codec_context.flush_buffers()
            s0 = math.ceil((a + PREROLL_S / 2) * rate / grid) * grid
            stats["skipped_seconds"] += a - previous_end
        previous_end = b
        yield from out.restart(s0 * out.rate // rate)
        frames = (f for _, p in packets for f in stream.decode(p))
        # flushed at the region's end: its last samples, and at the recording's end a full decode's tail
        yield from out.convert(_from_sample(frames, s0, tb, start, rate), flush=True)
    if out.resampler is None:  # nothing was needed within the recording: its length, for beyond_end
        yield from out.restart(
            int(round(float(stream.duration * tb) * out.rate)) if stream.duration else 0
        )


def _region_packets(container, stream, regions: list):
    """(region index, packet) for the packets that overlap a region (timestamps compared as integers)."""
    tb, start = stream.time_base, stream.start_time or 0
    bounds = [(start + int(a / tb), start + int(math.ceil(b / tb))) for a, b in regions]
    r = 0
    for packet in container.demux(stream):
        pts = packet.pts
        if pts is None or packet.size == 0:
            continue
        while pts > bounds[r][1]:
            r += 1
            if r == len(bounds):
                return  # past the last needed sample: the rest is not decoded
        if pts + (packet.duration or 0) >= bounds[r][0]:
            yield r, packet


def _from_sample(frames, s0: int, tb: Fraction, start: int, rate: int) -> Iterator:
    """Decoded frames from input sample ``s0`` on (counted from the stream's start, by timestamp)."""
    num, den = tb.numerator * rate, tb.denominator
    for frame in frames:
        i0 = ((frame.pts - start) * num * 2 + den) // (2 * den) if frame.pts is not None else s0
        if i0 + frame.samples <= s0:
            continue
        yield frame if i0 >= s0 else _slice_frame(frame, s0 - i0, frame.samples, tb)
