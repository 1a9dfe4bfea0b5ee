"""Audio fingerprints of recordings: spectral peak pairs (landmarks, Wang 2003, as Shazam and
audfprint make them) computed block by block on the decoded 16 kHz mono stream.

A spectrogram (1024-sample Hann window, 512-sample hop: one frame is 32 ms) is taken from 150 Hz to
4 kHz; its peaks are the points that are the maximum of their neighbourhood (±``PEAK_FRAMES`` frames,
±``PEAK_BINS`` bins) and louder than ``FLOOR_DB`` (silence and the zeros of skipped stretches have
none). Each peak (the anchor) is paired with the next ``FAN_OUT`` peaks in its target zone (1 to
``MAX_DT`` frames later, within ±``MAX_DF`` bins, never its own bin: a held pitch, a tone or hum,
would give the same hashes in every recording that holds it); a pair's hash packs (f1, f2 - f1, dt) into a
uint32, and its time is the anchor's frame. The hashes depend on where peaks sit in time and
frequency, not on level (gain), codec or source rate, and two copies' hashes agree at one constant
frame offset whatever the offset of the copy: matching (``etl/planning/duplicates.py``) counts the
hashes two recordings share at each offset.

Memory: the samples of 16 s (``BATCH``: the FFT is taken in batches of frames), a few frames of context and the peaks found (about 20 per second,
8 bytes each); the hashes (about ``FAN_OUT`` per peak) are the result. The fingerprint is defined on
16 kHz audio: a stream at another rate is not fingerprinted (``Fingerprinter.usable``).
"""

from __future__ import annotations

import numpy as np

RATE = 16000
N_FFT = 1024
HOP = 512
FRAME_SECONDS = HOP / RATE  # 0.032 s: the unit of a hash's time
LOW_BIN = 10  # 156 Hz: below, hum and the voice's fundamental
HIGH_BIN = 256  # 4 kHz: telephone and low-bitrate codecs keep this band
PEAK_FRAMES = 6  # a peak is the maximum over ±6 frames (±192 ms) ...
PEAK_BINS = 10  # ... and ±10 bins (±156 Hz)
FLOOR_DB = -55.0  # relative to a full-scale sine: quieter peaks are silence, hiss or skipped audio
FAN_OUT = 3  # targets per anchor
MAX_DT = 40  # target zone: up to 40 frames (1.28 s) after the anchor ...
MAX_DF = 63  # ... within ±63 bins (±984 Hz)
# samples gathered before a spectrum is taken: numpy's FFT costs ~2.5x as much per frame in calls
# of a 2-s block's 61 frames as in calls of 500 (measured: 1.5 against 0.6 CPU s per hour)
BATCH = 16 * RATE
HASH_DTYPE = np.dtype([("hash", "<u4"), ("t", "<i4")])
# what decides the hashes: fingerprints made with other settings are never compared
VERSION = (
    f"landmarks-2 (df 0 dropped) rate={RATE} fft={N_FFT}/{HOP} bins={LOW_BIN}-{HIGH_BIN} "
    f"peak={PEAK_FRAMES}x{PEAK_BINS} floor={FLOOR_DB} fan={FAN_OUT} zone={MAX_DT}x{MAX_DF}"
)

_WINDOW = np.hanning(N_FFT).astype(np.float32)
# the power of a peak FLOOR_DB below a full-scale int16 sine's (Hann-windowed)
_FLOOR_POWER = float((32767 * _WINDOW.sum() / 2) ** 2 * 10 ** (FLOOR_DB / 10))


class Fingerprinter:
    """Feed a recording's decoded blocks in order (``feed``), then ``finish`` returns its hashes as a
    structured array (``HASH_DTYPE``: hash uint32, t int32 frames) sorted by time. ``restart``
    forgets everything (a decode that restarts from the beginning)."""

    def __init__(self, sampling_rate: int = RATE):
        self.usable = sampling_rate == RATE
        self.restart()

    def restart(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet in a frame
        self._blocks: list[np.ndarray] = []  # blocks fed since, mono float32
        self._gathered = 0  # samples in _pending and _blocks
        self._context = np.zeros((0, HIGH_BIN - LOW_BIN), dtype=np.float32)  # undecided frames
        self._context_t0 = 0  # frame index of _context[0]
        self._decided = 0  # frames whose peaks are found
        self._peaks: list[np.ndarray] = []  # (t, f) int32 pairs, in time order

    def feed(self, block: np.ndarray) -> None:
        """One decoded block: int16 (frames, channels) or (frames,)."""
        if not self.usable or len(block) == 0:
            return
        x = np.asarray(block, dtype=np.float32)
        mono = x if x.ndim == 1 else x[:, 0] if x.shape[1] == 1 else x.mean(axis=1)
        self._blocks.append(mono.copy() if mono is block else mono)
        self._gathered += len(mono)
        if self._gathered >= BATCH:
            self._flush()

    def finish(self) -> np.ndarray:
        """The hashes of everything fed (the last partial frame is dropped)."""
        if not self.usable:
            return np.zeros(0, dtype=HASH_DTYPE)
        self._flush()
        self._add_frames(np.zeros((0, HIGH_BIN - LOW_BIN), dtype=np.float32), final=True)
        peaks = np.concatenate(self._peaks) if self._peaks else np.zeros((0, 2), dtype=np.int32)
        return landmark_hashes(peaks)

    def _flush(self) -> None:
        """The spectrum of the whole frames of what was fed; the rest waits for the next blocks."""
        pending = np.concatenate([self._pending, *self._blocks])
        self._blocks = []
        n = (len(pending) - N_FFT) // HOP + 1
        if n > 0:
            self._add_frames(_spectrum(pending, n), final=False)
            pending = pending[n * HOP :]
        self._pending, self._gathered = pending, len(pending)

    def _add_frames(self, spec: np.ndarray, final: bool) -> None:
        """Find the peaks of the frames whose neighbourhood is complete; keep the context the next
        frames' peaks need (``PEAK_FRAMES`` either side)."""
        s = np.concatenate([self._context, spec])
        lo = self._decided - self._context_t0  # frames before lo were decided earlier
        hi = len(s) if final else max(lo, len(s) - PEAK_FRAMES)  # frames from hi need later ones
        if hi > lo:
            t, f = _peaks(s, lo, hi)
            peaks = np.stack([t + self._context_t0, f + LOW_BIN], axis=1).astype(np.int32)
            self._peaks.append(peaks)
        cut = max(0, hi - PEAK_FRAMES)
        self._decided = self._context_t0 + hi
        self._context_t0 += cut
        self._context = s[cut:]


def _spectrum(samples: np.ndarray, n: int) -> np.ndarray:
    """(n, bins) power of the first n frames of ``samples`` (peaks are found on power, whose order
    is the dB's: no logarithm is taken)."""
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::HOP][:n]
    spec = np.fft.rfft(frames * _WINDOW, axis=1)[:, LOW_BIN:HIGH_BIN]
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def _running_max(a: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """The maximum over ±radius along ``axis`` (edges padded with 0: power is never negative), by
    doubling windows: out[i] = max(p[i : i + width]) with width 1, 2, 4, ... then one shifted max."""
    p = np.moveaxis(a, axis, 0)
    pad = np.zeros((radius, *p.shape[1:]), dtype=p.dtype)
    out, width = np.concatenate([pad, p, pad]), 1
    while width * 2 <= 2 * radius + 1:
        out = np.maximum(out[:-width], out[width:])
        width *= 2
    n, rest = p.shape[0], 2 * radius + 1 - width
    res = np.maximum(out[:n], out[rest : rest + n]) if rest else out[:n]
    return np.moveaxis(res, 0, axis)


def _peaks(s: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(frame, bin) of the peaks of s[lo:hi], their neighbourhood taken in all of s."""
    a = s[max(0, lo - PEAK_FRAMES) : hi + PEAK_FRAMES]
    off = lo - max(0, lo - PEAK_FRAMES)
    m = _running_max(_running_max(a, PEAK_BINS, axis=1), PEAK_FRAMES, axis=0)
    part, mpart = a[off : off + hi - lo], m[off : off + hi - lo]
    t, f = np.nonzero((part >= mpart) & (part > _FLOOR_POWER))
    return t + lo, f


def landmark_hashes(peaks: np.ndarray) -> np.ndarray:
    """The hashes of (t, f) peaks sorted by time: each anchor with its first ``FAN_OUT`` targets."""
    n = len(peaks)
    out = np.zeros(0, dtype=HASH_DTYPE)
    if n < 2:
        return out
    order = np.lexsort((peaks[:, 1], peaks[:, 0]))
    t, f = peaks[order, 0].astype(np.int64), peaks[order, 1].astype(np.int64)
    taken = np.zeros(n, dtype=np.int64)
    parts = []
    for k in range(1, n):  # the k-th next peak, until no anchor's reaches into its zone
        a = np.arange(n - k)
        dt, df = t[a + k] - t[a], f[a + k] - f[a]
        if not (dt <= MAX_DT).any():
            break
        # df 0: a held pitch (a test tone, mains hum, a music bed's sustained note) paired with
        # itself, the same hash in every recording that holds that pitch: never a landmark
        ok = (dt >= 1) & (dt <= MAX_DT) & (np.abs(df) <= MAX_DF) & (df != 0) & (taken[a] < FAN_OUT)
        a = a[ok]
        taken[a] += 1
        h = (f[a] << 13) | ((df[ok] + MAX_DF) << 6) | dt[ok]
        part = np.zeros(len(a), dtype=HASH_DTYPE)
        part["hash"], part["t"] = _mix(h), t[a]
        parts.append(part)
    out = np.concatenate(parts) if parts else out
    return out[np.argsort(out["t"], kind="stable")]


def _mix(h: np.ndarray) -> np.ndarray:
    """A bijective 32-bit mix of the packed landmark (spreads the hashes evenly over partitions)."""
    x = h.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    x = (x * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    return x.astype(np.uint32)


def fingerprint_samples(samples: np.ndarray, block: int = 32000) -> np.ndarray:
    """The hashes of a whole 16 kHz signal, fed in ``block``-sample blocks (tests, benchmarks)."""
    fp = Fingerprinter()
    for i in range(0, len(samples), block):
        fp.feed(samples[i : i + block])
    return fp.finish()
