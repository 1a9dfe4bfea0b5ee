"""The typed config: defaults, YAML loading, ``--set`` overrides, and one clear error per bad key.

``conf/default.yaml`` is the documented copy of ``DEFAULTS`` (a test keeps them equal).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import yaml

from .errors import UserError

_NUM = (int, float)

DEFAULTS: dict[str, Any] = {
    "input": {
        "alignment": "alignment.json",
        "audio": "audio/",
        "format": None,
        "columns": {
            "id": "id",
            "recording": "recording",
            "start": "start",
            "end": "end",
            "text": "text",
            "hypothesis": None,
            "speaker": None,
        },
        "id_template": "{recording}_{start:.1f}-{end:.1f}",
        "recording_pattern": None,
        "segmentation": {"max_pause": 0.5, "max_duration": 20.0},
        "textgrid": {"tier": "words", "hypothesis_tier": None},
        "ctm": {"hypothesis": None},
        "subtitles": {"language": None, "hypothesis_language": None},
    },
    "output": {"path": "out/", "audio_format": "flac", "shard_hours": 2.0, "arrow": False},
    "audio": {"sampling_rate": 16000, "channels": 1, "decoder": "av", "ffmpeg": None},
    "text": {"lowercase": True, "strip_punctuation": True, "unicode_form": "NFC"},
    "filters": {
        "min_similarity": 0.8,
        "min_duration": 0.0,
        "max_duration": 20.0,
        "chars_per_second": None,
        "min_rms_db": -70.0,
        "max_clipped_fraction": None,
        "max_silence_fraction": None,
    },
    "splits": {
        "seed": 0,
        "by": "segment",
        "dev_size": 500,
        "dev_hours": None,
        "test_ids": None,
        "exclude_ids": [],
        "low_similarity": "drop",
        "keep_previous_dev": True,
    },
    "budget": {"train_hours": None, "total_gb": None},
    "cluster": {
        "kind": "local",
        "address": None,
        "scheduler_file": None,
        "n_workers": None,
        "threads_per_worker": 1,
        "dashboard_address": "127.0.0.1:8787",
        "memory_limit": "auto",
        "jobs": 1,
        "slurm": None,
        "profile": False,
        "start_method": "spawn",
        "stall_timeout": 600,
    },
}

# Allowed types per leaf; a leaf listed with None also accepts null.
_TYPES: dict[str, tuple] = {
    "input.alignment": (str,),
    "input.audio": (str, None),
    "input.format": (str, None),
    "input.columns.id": (str, None),
    "input.columns.recording": (str,),
    "input.columns.start": (str,),
    "input.columns.end": (str,),
    "input.columns.text": (str,),
    "input.columns.hypothesis": (str, None),
    "input.columns.speaker": (str, None),
    "input.id_template": (str,),
    "input.recording_pattern": (str, None),
    "input.segmentation.max_pause": _NUM,
    "input.segmentation.max_duration": _NUM,
    "input.textgrid.tier": (str,),
    "input.textgrid.hypothesis_tier": (str, None),
    "input.ctm.hypothesis": (str, None),
    "input.subtitles.language": (str, None),
    "input.subtitles.hypothesis_language": (str, None),
    "output.path": (str,),
    "output.audio_format": (str,),
    "output.shard_hours": _NUM,
    "output.arrow": (bool,),
    "audio.sampling_rate": (int,),
    "audio.channels": (int,),
    "audio.decoder": (str,),
    "audio.ffmpeg": (str, None),
    "text.lowercase": (bool,),
    "text.strip_punctuation": (bool,),
    "text.unicode_form": (str,),
    "filters.min_similarity": _NUM + (None,),
    "filters.min_duration": _NUM + (None,),
    "filters.max_duration": _NUM + (None,),
    "filters.chars_per_second": (list, None),
    "filters.min_rms_db": _NUM + (None,),
    "filters.max_clipped_fraction": _NUM + (None,),
    "filters.max_silence_fraction": _NUM + (None,),
    "splits.seed": (int,),
    "splits.by": (str,),
    "splits.dev_size": (int,),
    "splits.dev_hours": _NUM + (None,),
    "splits.test_ids": (str, None),
    "splits.exclude_ids": (list, str),
    "splits.low_similarity": (str,),
    "splits.keep_previous_dev": (bool,),
    "budget.train_hours": _NUM + (None,),
    "budget.total_gb": _NUM + (None,),
    "cluster.address": (str, None),
    "cluster.n_workers": (int, None),
    "cluster.threads_per_worker": (int,),
    "cluster.dashboard_address": (str, None),
    "cluster.memory_limit": (str, int, None),
    "cluster.kind": (str,),
    "cluster.scheduler_file": (str, None),
    "cluster.jobs": (int,),
    "cluster.slurm": (dict, None),  # free-form: passed through to dask_jobqueue.SLURMCluster
    "cluster.profile": (bool,),
    "cluster.start_method": (str,),
    "cluster.stall_timeout": _NUM + (None,),
}
_CHOICES = {
    "output.audio_format": ("flac", "wav"),
    "audio.decoder": ("av", "ffmpeg", "pydub"),
    "input.format": (
        None,
        "csv",
        "tsv",
        "json",
        "jsonl",
        "parquet",
        "kaldi",
        "textgrid",
        "ctm",
        "nemo",
        "lhotse",
        "subtitles",
    ),
    "cluster.kind": ("local", "slurm"),
    "cluster.start_method": ("forkserver", "spawn"),
    "splits.by": ("segment", "recording", "speaker"),
    "splits.low_similarity": ("drop", "split"),
    "text.unicode_form": ("NFC", "NFKC"),
}
_PATH_KEYS = (
    "input.alignment",
    "input.audio",
    "output.path",
    "audio.ffmpeg",
    "cluster.scheduler_file",
    "splits.test_ids",
    "input.ctm.hypothesis",
)


def is_url(path: str) -> bool:
    return "://" in str(path)


def _type_name(types: tuple) -> str:
    names = {
        int: "integer",
        float: "number",
        str: "string",
        bool: "true/false",
        dict: "a mapping",
        list: "a list",
        None: "null",
    }
    return " or ".join(dict.fromkeys(names[t] for t in types))


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
        types = _TYPES[dotted]
        ok = (value is None and None in types) or (
            value is not None
            and isinstance(value, tuple(t for t in types if t is not None))
            and not (isinstance(value, bool) and bool not in types)
        )
        if not ok:
            raise UserError(f"config key '{dotted}' must be {_type_name(types)}, got {value!r}")
        if dotted in _CHOICES and value not in _CHOICES[dotted]:
            choices = " | ".join(str(c) for c in _CHOICES[dotted] if c is not None)
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
    path: str | os.PathLike | None, overrides: list[str] = (), check_inputs: bool = True
) -> dict:
    """Defaults <- YAML file <- ``--set`` overrides; validated; relative paths resolved against the
    config file's folder (the working directory when there is no file)."""
    user: dict = {}
    base_dir = os.getcwd()
    if path is not None:
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
        base_dir = os.path.dirname(os.path.abspath(path))
    for item in overrides:
        _apply_set(user, item)
    _check(user, DEFAULTS)
    cfg = _merge(DEFAULTS, user)
    if isinstance(cfg["splits"]["exclude_ids"], str):  # one file needs no list
        cfg["splits"]["exclude_ids"] = [cfg["splits"]["exclude_ids"]]
    bad = [p for p in cfg["splits"]["exclude_ids"] if not isinstance(p, str) or not p]
    if bad:
        raise UserError(f"config key 'splits.exclude_ids' must list files, got {bad[0]!r}")
    for key in _PATH_KEYS:
        value = _get(cfg, key)
        if value and not is_url(value):
            _put(cfg, key, _resolve(base_dir, value))
    cfg["splits"]["exclude_ids"] = [
        _resolve(base_dir, p) if not is_url(p) else p for p in cfg["splits"]["exclude_ids"]
    ]
    _check_values(cfg)
    if check_inputs:
        check_inputs_exist(cfg)
    return cfg


def _resolve(base_dir: str, value: str) -> str:
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def _check_values(cfg: dict) -> None:
    if cfg["audio"]["sampling_rate"] <= 0:
        raise UserError("config key 'audio.sampling_rate' must be positive")
    if cfg["audio"]["channels"] not in (1, 2):
        raise UserError("config key 'audio.channels' must be 1 or 2")
    if cfg["input"]["segmentation"]["max_pause"] < 0:
        raise UserError("config key 'input.segmentation.max_pause' must be >= 0")
    if cfg["input"]["segmentation"]["max_duration"] <= 0:
        raise UserError("config key 'input.segmentation.max_duration' must be positive")
    if cfg["output"]["shard_hours"] <= 0:
        raise UserError("config key 'output.shard_hours' must be positive")
    if cfg["splits"]["dev_size"] < 0:
        raise UserError("config key 'splits.dev_size' must be >= 0")
    for key in ("splits.dev_hours", "budget.train_hours", "budget.total_gb"):
        if _get(cfg, key) is not None and _get(cfg, key) < 0:
            raise UserError(f"config key '{key}' must be >= 0")
    _check_quality_filters(cfg["filters"])
    if cfg["cluster"]["n_workers"] is not None and cfg["cluster"]["n_workers"] < 1:
        raise UserError("config key 'cluster.n_workers' must be >= 1")
    if cfg["cluster"]["threads_per_worker"] < 1:
        raise UserError("config key 'cluster.threads_per_worker' must be >= 1")
    if cfg["cluster"]["jobs"] < 1:
        raise UserError("config key 'cluster.jobs' must be >= 1")
    if cfg["cluster"]["stall_timeout"] is not None and cfg["cluster"]["stall_timeout"] <= 0:
        raise UserError(
            "config key 'cluster.stall_timeout' must be > 0 (seconds), or null to wait without end"
        )
    try:
        cfg["input"]["id_template"].format(recording="r", start=0.0, end=1.0)
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(
            f"config key 'input.id_template' is not a valid template "
            f"(fields: recording, start, end): {e}"
        ) from None
    _check_recording_pattern(cfg["input"]["recording_pattern"])
    # splits.by: speaker without input.columns.speaker is checked against the alignment's format when
    # the table is read (``ingest.table.check_speakers``): lhotse and TextGrid name their own speakers.


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


def _check_quality_filters(f: dict) -> None:
    cps = f["chars_per_second"]
    if cps is not None:
        ok = len(cps) == 2 and all(
            v is None or (isinstance(v, _NUM) and not isinstance(v, bool)) for v in cps
        )
        if not ok or (None not in cps and cps[0] > cps[1]):
            raise UserError(
                f"config key 'filters.chars_per_second' must be [min, max] (numbers or null, "
                f"min <= max), got {cps!r}"
            )
    for key in ("max_clipped_fraction", "max_silence_fraction"):
        if f[key] is not None and not 0 <= f[key] <= 1:
            raise UserError(
                f"config key 'filters.{key}' must be a fraction in [0, 1], got {f[key]!r}"
            )


def check_inputs_exist(cfg: dict) -> None:
    import fsspec

    def exists(url: str) -> bool:
        fs, p = fsspec.core.url_to_fs(url)
        return fs.exists(p)

    align = cfg["input"]["alignment"]
    if not exists(align):
        raise UserError(f"input.alignment not found: {align}")
    audio = cfg["input"]["audio"]
    if audio is not None and not exists(audio):
        raise UserError(f"input.audio not found: {audio}")
    for key, files in (
        ("splits.test_ids", [cfg["splits"]["test_ids"]]),
        ("splits.exclude_ids", cfg["splits"]["exclude_ids"]),
        ("input.ctm.hypothesis", [cfg["input"]["ctm"]["hypothesis"]]),
    ):
        for f in files:
            if f is not None and not exists(f):
                raise UserError(f"{key}: file not found: {f}")
    ff = cfg["audio"]["ffmpeg"]
    if ff is not None and not os.path.isfile(ff):
        raise UserError(f"audio.ffmpeg not found: {ff}")
    out = cfg["output"]["path"]
    if not is_url(out) and os.path.isfile(out):
        raise UserError(f"output.path is a file, not a folder: {out}")
