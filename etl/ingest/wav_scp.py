"""Kaldi ``wav.scp`` entries: a file, or a command pipe of a known form read as the file and channel
it names. etl never runs a command.

LDC recipes write ``sw02001-A /opt/kaldi/tools/sph2pipe -f wav -p -c 1 /corpora/swb1/sw02001.sph |``:
the pipe decodes channel 1 of a SPHERE file to WAV on stdout, which etl's decoders do themselves.
The forms read (parsed with ``shlex``, the program by its base name, any folder):

- ``sph2pipe [-f wav|rif|riff] [-p] [-c N] FILE |``
- ``sox [-t TYPE] FILE [-t wav] [-r R] [-b B] [-e E] [-c 1] - [remix N|-] [rate R] [channels 1] |``
- ``ffmpeg [-i FILE] [-f wav] [-ar R] [-ac 1] [-acodec C] [-map_channel 0.0.N] … - |``
- ``cat FILE |``

Every option that would change which samples come out (a time range, another effect, a second
input, a second pipe) makes the entry an ``UnreadPipe``: its rows are rejected, naming the command.
Rates, sample formats and downmixes need no option: etl resamples and downmixes anyway.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class ScpFile:
    """What an entry names: its file (as written: resolved by ``table.read_wav_scp``) and its channel
    (from 1; None: all channels, downmixed)."""

    path: str
    channel: int | None = None


@dataclass(frozen=True)
class UnreadPipe:
    """A command pipe of no known form: never run, its rows rejected with ``detail``."""

    command: str

    @property
    def detail(self) -> str:
        return (
            f"wav.scp entry is a command pipe etl does not read ({self.command[:200]}); etl never "
            "runs commands, it reads sph2pipe, sox, ffmpeg and cat pipes of one file"
        )


def parse_entry(target: str) -> ScpFile | UnreadPipe:
    """One wav.scp target (what follows the recording id): a path, or a pipe ending in ``|``."""
    target = target.strip()
    if not target.endswith("|"):
        return ScpFile(target)
    try:
        words = shlex.split(target[:-1])
    except ValueError:  # an unclosed quote
        words = []
    named = _PROGRAMS.get(posixpath.basename(words[0])) if words else None
    found = named(words[1:]) if named is not None and "|" not in words else None
    return found if found is not None else UnreadPipe(target)


def _sph2pipe(args: list[str]) -> ScpFile | None:
    files, channel, i = [], None, 0
    while i < len(args):
        a = args[i]
        if a == "-f" and i + 1 < len(args) and args[i + 1] in ("wav", "rif", "riff"):
            i += 1
        elif a == "-c" and i + 1 < len(args) and args[i + 1].isdigit():
            channel, i = int(args[i + 1]), i + 1
        elif a in ("-p",):
            pass
        elif a.startswith("-"):
            return None  # -t/-s (a time range), -h (a header file), -u/-a (another coding) ...
        else:
            files.append(a)
        i += 1
    return ScpFile(files[0], channel or None) if len(files) == 1 else None  # 2: an output file


_SOX_FORMAT_OPTIONS = ("-t", "-r", "-b", "-e", "-c")


def _sox(args: list[str]) -> ScpFile | None:
    """``sox [-t TYPE] FILE [format options] - [effects]``: the first '-' is the output (stdout)."""
    if "-" not in args:
        return None
    head, effects = args[: args.index("-")], args[args.index("-") + 1 :]
    files, i = [], 0
    while i < len(head):
        if head[i] in _SOX_FORMAT_OPTIONS and i + 1 < len(head):
            if head[i] == "-c" and head[i + 1] != "1":
                return None
            i += 2
        elif head[i].startswith("-"):
            return None
        else:
            files.append(head[i])
            i += 1
    channel = _sox_effects(effects)
    if len(files) != 1 or channel is False:
        return None
    return ScpFile(files[0], channel or None)


def _sox_effects(effects: list[str]) -> int | None | bool:
    """The channel ``remix N`` picks (None: none picked); False for any effect that changes the samples
    otherwise (trim, gain, tempo ...)."""
    channel, i = None, 0
    while i < len(effects):
        e, arg = effects[i], effects[i + 1] if i + 1 < len(effects) else ""
        if e == "remix" and (arg.isdigit() or arg == "-"):
            channel = int(arg) if arg.isdigit() else None
        elif e == "rate" and arg.replace(".", "", 1).rstrip("k").isdigit():
            pass
        elif e == "channels" and arg == "1":
            pass
        else:
            return False
        i += 2
    return channel


_FFMPEG_FLAGS = ("-hide_banner", "-nostdin", "-y", "-vn", "-nostats")
_FFMPEG_VALUES = ("-f", "-ar", "-acodec", "-c:a", "-codec:a", "-loglevel", "-v", "-sample_fmt")


def _ffmpeg(args: list[str]) -> ScpFile | None:
    files, channel, out, i = [], None, [], 0
    while i < len(args):
        a, value = args[i], args[i + 1] if i + 1 < len(args) else None
        if a in _FFMPEG_FLAGS:
            i += 1
            continue
        if value is None and a.startswith("-") and a != "-":
            return None
        if a == "-i":
            files.append(value)
        elif a == "-ac" and value == "1":
            pass
        elif a == "-map_channel" and value and value.startswith("0.0.") and value[4:].isdigit():
            channel = int(value[4:]) + 1  # ffmpeg counts channels from 0
        elif a in _FFMPEG_VALUES:
            pass
        elif a in ("-", "pipe:", "pipe:1"):
            out.append(a)
            i += 1
            continue
        else:
            return None  # -ss/-t (a time range), -af (a filter), a second output ...
        i += 2
    ok = len(files) == 1 and len(out) == 1 and files[0] is not None
    return ScpFile(str(files[0]), channel) if ok else None


def _cat(args: list[str]) -> ScpFile | None:
    return ScpFile(args[0]) if len(args) == 1 and not args[0].startswith("-") else None


_PROGRAMS = {"sph2pipe": _sph2pipe, "sox": _sox, "ffmpeg": _ffmpeg, "cat": _cat}
