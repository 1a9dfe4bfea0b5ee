"""Will the dataset fit? The size estimate of what a build has left to write, against the free space
of the output's file system, told before anything is decoded (``output.check_space``)."""

from __future__ import annotations

from ..audio.media import estimated_clip_bytes
from ..config import Config
from ..errors import UserError
from . import storage


def _size(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def needed_bytes(cfg: Config, splits: dict) -> float:
    """The estimated bytes of the split files (and ``arrow/``, as big again) of ``splits``
    ({split: (clips, seconds)}, the plan's counts): ``audio.media.estimated_clip_bytes``."""
    a = cfg.audio
    clips = sum(n for n, _ in splits.values())
    seconds = sum(sec for _, sec in splits.values())
    one = estimated_clip_bytes(seconds, clips, a.sampling_rate, a.channels, cfg.output.audio_format)
    return float(one) * (2 if cfg.output.arrow else 1)


def check_space(cfg: Config, splits: dict) -> None:
    """Stop with one line when the estimate of what is left to write exceeds the free space. The
    shard files already under ``OUT/.parts`` are done (a resume) or removed before a new build
    starts: either way they need no space again. An object store is not checked."""
    if not cfg.output.check_space:
        return
    fs, root = storage.fs_and_path(cfg.output.path)
    free = storage.free_bytes(fs, root)
    if free is None:
        return
    done = storage.written_bytes(fs, root) if fs.exists(root) else 0
    left = needed_bytes(cfg, splits) - done
    if left > free:
        raise UserError(
            f"output.path {cfg.output.path}: the dataset needs about {_size(left)} more "
            f"({cfg.output.audio_format}), its file system has {_size(free)} free; free some space or "
            f"choose another output.path (--set output.check_space=false skips this check)"
        )
