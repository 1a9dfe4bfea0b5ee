"""The typed config: one frozen dataclass per section, its defaults declared on its fields, YAML
loading, ``--set`` overrides, and one clear error per bad key.

A key is declared once, as a field: its type (``Literal[...]`` for a choice) and its default.
``DEFAULTS`` (the nested dict of every default) is derived from ``Config()``; ``conf/default.yaml``
is its documented copy (a test keeps them equal). ``load_config`` checks the YAML's tree against the
fields' types, merges it over the defaults and returns a ``Config``; ``dataclasses.asdict(cfg)`` is
the same nested dict as the YAML (report.json's "config", the build's fingerprint).

The input formats (``input.format``) are the registry ``INPUT_FORMATS``: one entry per format.
"""

from __future__ import annotations

import codecs
import copy
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from .errors import UserError

_NUM = (int, float)


# ---------------------------------------------------------------- the input formats


@dataclass(frozen=True)
class InputFormat:
    """One alignment format etl reads: its ``input.format`` name and what a reader of it gives.

    Adding a format is one entry here plus its reader in ``etl.ingest`` (``table.READERS``, and for
    an aligner's output ``ingest.formats.PARTITIONS``); an import-time check keeps them equal."""

    name: str
    # who names the columns: "table" (the user's, through input.columns), "kaldi" (the data dir's
    # segments/text/utt2spk), "aligner" (a reader of etl.ingest.formats: canonical names, words)
    kind: Literal["table", "kaldi", "aligner"]
    extensions: tuple[str, ...] = ()  # file extensions that decide the format alone (lowercase)
    # where speakers come from: "column" (input.columns.speaker), "files" (Kaldi's utt2spk or
    # spk2utt, when there), "always" (the files name them), "never"
    speakers: Literal["column", "files", "always", "never"] = "never"
    own_ids: bool = True  # may hold its own segment ids (kept as source_id); else input.id_template


INPUT_FORMATS: dict[str, InputFormat] = {
    f.name: f
    for f in (
        InputFormat("csv", "table", (".csv",), speakers="column"),
        InputFormat("tsv", "table", (".tsv",), speakers="column"),
        InputFormat("json", "table", (".json",), speakers="column"),  # also nemo/lhotse, sniffed
        InputFormat("jsonl", "table", (".jsonl", ".ndjson"), speakers="column"),
        InputFormat("parquet", "table", (".parquet", ".pq"), speakers="column"),
        InputFormat("kaldi", "kaldi", speakers="files"),  # a folder holding `segments`
        InputFormat("textgrid", "aligner", (".textgrid",), speakers="always", own_ids=False),
        InputFormat("ctm", "aligner", (".ctm",), own_ids=False),
        InputFormat("nemo", "aligner", own_ids=False),  # a .json(l) manifest, by its first line
        InputFormat("lhotse", "aligner", speakers="always"),  # supervisions .jsonl(.gz), ditto
        InputFormat("subtitles", "aligner", (".vtt", ".srt"), own_ids=False),
    )
}


# ---------------------------------------------------------------- the sections
#
# A field's annotation is the type it holds once loaded, and (as ``_accepts`` reads it) the YAML types
# it accepts: ``float`` takes an integer too, ``X | None`` takes null. ``accepts`` metadata overrides
# that; ``choices`` metadata lists the values of a field that is not a Literal.


def _default(factory):
    return field(default_factory=factory)


@dataclass(frozen=True)
class ColumnsConfig:
    """``input.columns``: the table's column of each canonical column (tables only)."""

    id: str | None = "id"
    recording: str = "recording"
    start: str = "start"
    end: str = "end"
    text: str = "text"
    hypothesis: str | None = None
    speaker: str | None = None


@dataclass(frozen=True)
class SegmentationConfig:
    """``input.segmentation``: word-level inputs -> segments."""

    max_pause: float = 0.5
    max_duration: float = 20.0


@dataclass(frozen=True)
class TextGridConfig:
    tier: str = "words"
    hypothesis_tier: str | None = None


@dataclass(frozen=True)
class CtmConfig:
    hypothesis: str | None = None


@dataclass(frozen=True)
class SubtitlesConfig:
    language: str | None = None
    hypothesis_language: str | None = None
    # the files' encoding (a Python codec name: gb2312, cp1252 …); None: a BOM's, else UTF-8, else
    # the one charset-normalizer finds (which may misname a short file's)
    encoding: str | None = None


# Labels that mark a pause or noise, not speech, in aligner output (P2FA/FAVE `sp`, HTK/Kaldi `sil`
# `!sil` `<eps>` `<sil>`, MFA `spn` `<unk>`, CMU Sphinx `{SL}`, NeMo/ESPnet `<b>` `<s>` `</s>`): the
# default of ``input.silence_labels``. Matched case-insensitively after strip; a blank label always is one.
SILENCE_LABELS = (
    "sp",
    "sil",
    "!sil",
    "<sil>",
    "<silence>",
    "{SL}",
    "<eps>",
    "spn",
    "<unk>",
    "<b>",
    "<s>",
    "</s>",
)


@dataclass(frozen=True)
class InputConfig:
    alignment: str = "alignment.json"
    audio: str | None = "audio/"
    format: str | None = field(default=None, metadata={"choices": tuple(INPUT_FORMATS)})
    columns: ColumnsConfig = _default(ColumnsConfig)
    id_template: str = "{recording}_{start:.1f}-{end:.1f}"
    recording_pattern: str | None = None
    segmentation: SegmentationConfig = _default(SegmentationConfig)
    textgrid: TextGridConfig = _default(TextGridConfig)
    ctm: CtmConfig = _default(CtmConfig)
    subtitles: SubtitlesConfig = _default(SubtitlesConfig)
    silence_labels: list[str] = field(default_factory=lambda: list(SILENCE_LABELS))


@dataclass(frozen=True)
class OutputConfig:
    path: str = "out/"
    audio_format: Literal["flac", "wav"] = "flac"
    shard_hours: float = 2.0
    arrow: bool = False
    check_space: bool = (
        True  # compare the output's size estimate with the free space before decoding
    )


@dataclass(frozen=True)
class AudioConfig:
    sampling_rate: int = 16000
    channels: int = 1
    decoder: Literal["av", "ffmpeg", "pydub"] = "av"
    ffmpeg: str | None = None


@dataclass(frozen=True)
class TextConfig:
    lowercase: bool = True
    strip_punctuation: bool = True
    unicode_form: Literal["NFC", "NFKC"] = "NFC"


@dataclass(frozen=True)
class FiltersConfig:
    """Row filters (null disables one); those on the cut samples' measures apply in the shard task."""

    min_similarity: float | None = 0.8
    min_duration: float | None = 0.0
    max_duration: float | None = 20.0
    chars_per_second: list | None = None  # [min, max], either may be null
    min_rms_db: float | None = -70.0
    max_clipped_fraction: float | None = None
    max_silence_fraction: float | None = None
    # a later copy's row is duplicate_audio when at least this share of it is audio a kept row of
    # the first copy holds (curate/duplicates.py); null: the copies are only reported
    duplicate_audio: float | None = 0.5


@dataclass(frozen=True)
class SplitsConfig:
    seed: int = 0
    by: Literal["segment", "recording", "speaker"] = "segment"
    dev_size: int = 500
    dev_hours: float | None = None
    test_ids: str | None = None
    # one file needs no list: a string is loaded as a list of one
    exclude_ids: list[str] = field(default_factory=list, metadata={"accepts": (list, str)})
    low_similarity: Literal["drop", "split"] = "drop"
    keep_previous_dev: bool = True


@dataclass(frozen=True)
class BudgetConfig:
    train_hours: float | None = None
    total_gb: float | None = None


@dataclass(frozen=True)
class ClusterConfig:
    kind: Literal["local", "slurm"] = "local"
    address: str | None = None
    scheduler_file: str | None = None
    n_workers: int | None = None
    threads_per_worker: int = 1
    dashboard_address: str | None = "127.0.0.1:8787"
    memory_limit: str | int | None = "auto"
    jobs: int = 1
    slurm: dict | None = None  # free-form: passed through to dask_jobqueue.SLURMCluster
    profile: bool = False
    start_method: Literal["forkserver", "spawn"] = "forkserver"
    stall_timeout: float | None = 600
    log_dir: str | None = (
        None  # the Dask logs of clusters etl starts (None: OUT/.parts/logs/ when local)
    )


@dataclass(frozen=True)
class Config:
    """The whole config, as ``load_config`` returns it: ``cfg.filters.min_similarity``."""

    input: InputConfig = _default(InputConfig)
    output: OutputConfig = _default(OutputConfig)
    audio: AudioConfig = _default(AudioConfig)
    text: TextConfig = _default(TextConfig)
    filters: FiltersConfig = _default(FiltersConfig)
    splits: SplitsConfig = _default(SplitsConfig)
    budget: BudgetConfig = _default(BudgetConfig)
    cluster: ClusterConfig = _default(ClusterConfig)

    def to_dict(self) -> dict[str, Any]:
        """The nested dict of every key (``dataclasses.asdict``): what report.json records."""
        return dataclasses.asdict(self)


DEFAULTS: dict[str, Any] = Config().to_dict()


def _accepts(hint, meta) -> tuple:
    """The YAML types a leaf accepts (None: null), in the order its annotation names them."""
    if "accepts" in meta:
        return meta["accepts"]
    members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    out: list = []
    for m in members:
        if m is type(None):
            out.append(None)
        elif m is float:
            out += list(_NUM)
        elif typing.get_origin(m) is Literal:
            out.append(type(typing.get_args(m)[0]))
        else:
            out.append(typing.get_origin(m) or m)
    return tuple(out)


def _choices(hint, meta) -> tuple | None:
    if "choices" in meta:
        return meta["choices"]
    members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    lits = [m for m in members if typing.get_origin(m) is Literal]
    return typing.get_args(lits[0]) if lits else None


def _leaf_specs(cls, prefix: str = "") -> tuple[dict[str, tuple], dict[str, tuple]]:
    """Every leaf's dotted key -> the types it accepts, and -> its choices (Literal fields)."""
    accepted: dict[str, tuple] = {}
    choices: dict[str, tuple] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted, hint = prefix + f.name, hints[f.name]
        if dataclasses.is_dataclass(hint):
            sub_types, sub_choices = _leaf_specs(hint, dotted + ".")
            accepted.update(sub_types)
            choices.update(sub_choices)
            continue
        accepted[dotted] = _accepts(hint, f.metadata)
        listed = _choices(hint, f.metadata)
        if listed is not None:
            choices[dotted] = listed
    return accepted, choices


# Allowed types per leaf (a leaf listed with None also accepts null), and the choices of a Literal
# field (or of input.format: the registry's names).
_TYPES, _CHOICES = _leaf_specs(Config)


def _typed(cls, tree: dict):
    """The merged, checked tree as ``cls`` (a section dataclass), sections within it typed too."""
    hints = typing.get_type_hints(cls)
    kw = {
        f.name: _typed(hints[f.name], tree[f.name])
        if dataclasses.is_dataclass(hints[f.name])
        else tree[f.name]
        for f in dataclasses.fields(cls)
    }
    return cls(**kw)


_PATH_KEYS = (
    "input.alignment",
    "input.audio",
    "output.path",
    "audio.ffmpeg",
    "cluster.scheduler_file",
    "cluster.log_dir",
    "splits.test_ids",
    "input.ctm.hypothesis",
)


def is_url(path: str) -> bool:
    return "://" in str(path)


def _type_name(accepted: tuple) -> str:
    names = {
        int: "integer",
        float: "number",
        str: "string",
        bool: "true/false",
        dict: "a mapping",
        list: "a list",
        None: "null",
    }
    return " or ".join(dict.fromkeys(names[t] for t in accepted))


def _check(tree: dict, defaults: dict, prefix: str = "") -> None:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if key not in defaults:
            known = ", ".join(f"{prefix}{k}" for k in defaults)
            raise UserError(f"unknown config key '{dotted}' (known here: {known})")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"config key '{dotted}' must be a mapping, got {value!r}")
            _check(value, defaults[key], dotted + ".")
            continue
        accepted = _TYPES[dotted]
        ok = (value is None and None in accepted) or (
            value is not None
            and isinstance(value, tuple(t for t in accepted if t is not None))
            and not (isinstance(value, bool) and bool not in accepted)
        )
        if not ok:
            raise UserError(f"config key '{dotted}' must be {_type_name(accepted)}, got {value!r}")
        if dotted in _CHOICES and value is not None and value not in _CHOICES[dotted]:
            choices = " | ".join(str(c) for c in _CHOICES[dotted])
            raise UserError(f"config key '{dotted}' must be one of {choices}, got {value!r}")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _apply_set(tree: dict, item: str) -> None:
    if "=" not in item:
        raise UserError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    node, parts = tree, key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {key}: '{part}' is not a section")
    node[parts[-1]] = value


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _put(tree: dict, dotted: str, value) -> None:
    *head, last = dotted.split(".")
    for part in head:
        tree = tree[part]
    tree[last] = value


def load_config(
    path: str | os.PathLike | None, overrides: typing.Sequence[str] = (), check_inputs: bool = True
) -> Config:
    """Defaults <- YAML file <- ``--set`` overrides; validated; relative paths resolved against the
    config file's folder (the working directory when there is no file)."""
    user: dict = {} if path is None else _read_yaml(path)
    base_dir = os.getcwd() if path is None else os.path.dirname(os.path.abspath(path))
    for item in overrides:
        _apply_set(user, item)
    _check(user, DEFAULTS)
    tree = _merge(DEFAULTS, user)
    if isinstance(tree["splits"]["exclude_ids"], str):  # one file needs no list
        tree["splits"]["exclude_ids"] = [tree["splits"]["exclude_ids"]]
    bad = [p for p in tree["splits"]["exclude_ids"] if not isinstance(p, str) or not p]
    if bad:
        raise UserError(f"config key 'splits.exclude_ids' must list files, got {bad[0]!r}")
    for key in _PATH_KEYS:
        value = _get(tree, key)
        if value and not is_url(value):
            _put(tree, key, _resolve(base_dir, value))
    tree["splits"]["exclude_ids"] = [
        _resolve(base_dir, p) if not is_url(p) else p for p in tree["splits"]["exclude_ids"]
    ]
    cfg = _typed(Config, tree)
    _check_values(cfg)
    if check_inputs:
        check_inputs_exist(cfg)
    return cfg


def _read_yaml(path: str | os.PathLike) -> dict:
    if not os.path.isfile(path):
        raise UserError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            user = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"config file {path} is not valid YAML{at}: {problem}") from None
    if not isinstance(user, dict):
        raise UserError(f"config file {path} must hold a mapping of sections")
    return user


def _resolve(base_dir: str, value: str) -> str:
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def _check_encoding(name: str | None) -> None:
    try:
        if name is not None:
            codecs.lookup(name)
    except LookupError:
        raise UserError(
            f"config key 'input.subtitles.encoding': {name!r} is not an encoding Python knows"
        ) from None


def _check_values(cfg: Config) -> None:
    if cfg.audio.sampling_rate <= 0:
        raise UserError("config key 'audio.sampling_rate' must be positive")
    if cfg.audio.channels not in (1, 2):
        raise UserError("config key 'audio.channels' must be 1 or 2")
    if cfg.input.segmentation.max_pause < 0:
        raise UserError("config key 'input.segmentation.max_pause' must be >= 0")
    if cfg.input.segmentation.max_duration <= 0:
        raise UserError("config key 'input.segmentation.max_duration' must be positive")
    bad = [x for x in cfg.input.silence_labels if not isinstance(x, str)]
    if bad:
        raise UserError(f"config key 'input.silence_labels' must list strings, got {bad[0]!r}")
    if cfg.output.shard_hours <= 0:
        raise UserError("config key 'output.shard_hours' must be positive")
    if cfg.splits.dev_size < 0:
        raise UserError("config key 'splits.dev_size' must be >= 0")
    for key, value in (
        ("splits.dev_hours", cfg.splits.dev_hours),
        ("budget.train_hours", cfg.budget.train_hours),
        ("budget.total_gb", cfg.budget.total_gb),
    ):
        if value is not None and value < 0:
            raise UserError(f"config key '{key}' must be >= 0")
    _check_quality_filters(cfg.filters)
    _check_encoding(cfg.input.subtitles.encoding)
    if cfg.cluster.n_workers is not None and cfg.cluster.n_workers < 1:
        raise UserError("config key 'cluster.n_workers' must be >= 1")
    if cfg.cluster.threads_per_worker < 1:
        raise UserError("config key 'cluster.threads_per_worker' must be >= 1")
    if cfg.cluster.jobs < 1:
        raise UserError("config key 'cluster.jobs' must be >= 1")
    if cfg.cluster.stall_timeout is not None and cfg.cluster.stall_timeout <= 0:
        raise UserError(
            "config key 'cluster.stall_timeout' must be > 0 (seconds), or null to wait without end"
        )
    try:
        cfg.input.id_template.format(recording="r", speaker="s", start=0.0, end=1.0)
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(
            f"config key 'input.id_template' is not a valid template "
            f"(fields: recording, speaker, start, end): {e}"
        ) from None
    _check_recording_pattern(cfg.input.recording_pattern)
    # splits.by: speaker without input.columns.speaker is checked against the alignment's format when
    # the table is read (``ingest.resolved.check_speakers``): lhotse and TextGrid name their own speakers.


def _check_recording_pattern(pattern: str | None) -> None:
    import re

    if pattern is None:
        return
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise UserError(
            f"config key 'input.recording_pattern' is not a valid regular expression: {e}"
        ) from None
    if "id" not in regex.groupindex:
        raise UserError(
            "config key 'input.recording_pattern' needs a named group 'id', "
            "e.g. '\\[(?P<id>[A-Za-z0-9_-]{11})\\]' for yt-dlp's names"
        )


def _check_quality_filters(f: FiltersConfig) -> None:
    cps = f.chars_per_second
    if cps is not None:
        ok = len(cps) == 2 and all(
            v is None or (isinstance(v, _NUM) and not isinstance(v, bool)) for v in cps
        )
        if not ok or (None not in cps and cps[0] > cps[1]):
            raise UserError(
                f"config key 'filters.chars_per_second' must be [min, max] (numbers or null, "
                f"min <= max), got {cps!r}"
            )
    for key, value in (
        ("max_clipped_fraction", f.max_clipped_fraction),
        ("max_silence_fraction", f.max_silence_fraction),
        ("duplicate_audio", f.duplicate_audio),
    ):
        if value is not None and not 0 <= value <= 1:
            raise UserError(
                f"config key 'filters.{key}' must be a fraction in [0, 1], got {value!r}"
            )


def check_inputs_exist(cfg: Config) -> None:
    import fsspec

    def exists(url: str) -> bool:
        fs, p = fsspec.core.url_to_fs(url)
        return fs.exists(p)

    align = cfg.input.alignment
    if not exists(align):
        raise UserError(f"input.alignment not found: {align}")
    audio = cfg.input.audio
    if audio is not None and not exists(audio):
        raise UserError(f"input.audio not found: {audio}")
    for key, files in (
        ("splits.test_ids", [cfg.splits.test_ids]),
        ("splits.exclude_ids", cfg.splits.exclude_ids),
        ("input.ctm.hypothesis", [cfg.input.ctm.hypothesis]),
    ):
        for f in files:
            if f is not None and not exists(f):
                raise UserError(f"{key}: file not found: {f}")
    ff = cfg.audio.ffmpeg
    if ff is not None and not os.path.isfile(ff):
        raise UserError(f"audio.ffmpeg not found: {ff}")
    out = cfg.output.path
    if not is_url(out) and os.path.isfile(out):
        raise UserError(f"output.path is a file, not a folder: {out}")
