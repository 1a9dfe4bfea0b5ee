"""The input resolved once, on the client, before anything is read: which format the alignment is
in, the columns its reader gives, whether it names speakers, and a Kaldi dir's ``wav.scp``.

``resolve_input`` looks at the file system (the alignment's extension or folder, a JSON file's first
line, Kaldi's speaker files, ``wav.scp``); the stages take the ``ResolvedInput`` it returns instead of
working any of it out again. Whether the table holds its own ids is known once its columns are
(``ResolvedInput.own_ids``): planning reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import INPUT_FORMATS, ColumnsConfig, InputConfig, InputFormat, SplitsConfig
from ..errors import UserError
from . import table
from .wav_scp import UnreadPipe


@dataclass(frozen=True)
class ResolvedInput:
    config: InputConfig  # the input section: the alignment's path, the readers' options
    format: str  # the alignment's format (input.format, or detected): a key of INPUT_FORMATS
    columns: ColumnsConfig  # the reader's columns: the user's for a table, fixed for the others
    speaker: bool  # it names speakers: the dataset and the rejects carry ``speaker``
    # a Kaldi dir's (``table.read_wav_scp``): its files, or with input.audio, the files it names there
    wav_scp: dict[str, str | UnreadPipe] | None = None

    @property
    def spec(self) -> InputFormat:
        return INPUT_FORMATS[self.format]

    @property
    def reader_extras(self) -> bool:
        """An aligner's reader (``etl.ingest.formats``): its ``speaker`` and ``words`` are kept."""
        return self.spec.kind == "aligner"

    def own_ids(self, present: list[str]) -> bool:
        """Whether the table, of these columns, holds its own segment ids (kept as ``source_id``)."""
        return table.has_own_ids(self.format, present, self.columns)

    def read_raw(self):
        """The table as a lazy dask frame (``table.read_raw``)."""
        return table.read_raw(self.config.alignment, self.format, self.config)


def resolve_input(inp: InputConfig) -> ResolvedInput:
    fmt = table.detect_format(inp.alignment, inp.format)
    wav_scp = table.read_wav_scp(inp.alignment) if fmt == "kaldi" else None
    return ResolvedInput(
        config=inp,
        format=fmt,
        columns=table.reader_columns(fmt, inp.columns),
        speaker=table.has_speaker(inp, fmt),
        wav_scp=wav_scp,
    )


def check_speakers(splits: SplitsConfig, resolved: ResolvedInput) -> None:
    """``splits.by: speaker`` needs speakers: a mapped column, or a format that names them."""
    if splits.by == "speaker" and not resolved.speaker:
        raise UserError(
            "config key 'splits.by' is speaker but the alignment has no speakers "
            "(input.columns.speaker names no column; a Kaldi dir needs utt2spk)"
        )
