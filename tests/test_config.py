"""The config: documented defaults, validation with one clear message per bad key, --set, paths, CLI errors."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from etl.config import DEFAULTS, load_config
from etl.errors import UserError

from .conftest import config_file

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_YAML = ROOT / "conf" / "default.yaml"


def _leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


_write = config_file


def _error(tmp_path, doc, overrides=()) -> str:
    with pytest.raises(UserError) as e:
        load_config(str(_write(tmp_path, doc)), list(overrides), check_inputs=False)
    return str(e.value)


# ---------------------------------------------------------------- the documented defaults


def test_documented_default_yaml_is_exactly_the_defaults():
    doc = yaml.safe_load(DEFAULT_YAML.read_text(encoding="utf-8"))
    assert doc == DEFAULTS
    assert _leaves(doc).keys() == _leaves(DEFAULTS).keys()
    for key, value in _leaves(
        DEFAULTS
    ).items():  # also the same types (1 != 1.0 would slip through ==)
        assert type(_leaves(doc)[key]) is type(value), key


def test_every_default_key_is_commented_in_default_yaml():
    """Each leaf has a comment on its own line or on its section's line; every leaf is on a line of its own."""
    key_line = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")
    stack: list[tuple[int, str, bool]] = []  # (indent, key, section line has a comment)
    seen = {}
    for lineno, line in enumerate(DEFAULT_YAML.read_text(encoding="utf-8").splitlines(), 1):
        m = key_line.match(line)
        if not m:
            assert not line.strip() or line.lstrip().startswith("#"), f"line {lineno}: {line!r}"
            continue
        indent, rest = len(m["indent"]), m["rest"]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k, _ in stack] + [m["key"]])
        value, _, comment = (
            re.split(r"(\s+#)", rest, maxsplit=1) if re.search(r"\s#", rest) else (rest, "", "")
        )
        has_comment = bool(comment.strip())
        if not value.strip():  # a section
            stack.append((indent, m["key"], has_comment))
            continue
        section_commented = bool(stack) and stack[-1][2]
        assert has_comment or section_commented, (
            f"conf/default.yaml line {lineno}: '{dotted}' has no comment"
        )
        seen[dotted] = lineno
    assert set(seen) == set(_leaves(DEFAULTS)), "every leaf of DEFAULTS on a line of its own"


def test_no_config_file_gives_the_defaults_with_paths_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, check_inputs=False)
    expected = copy.deepcopy(DEFAULTS)
    expected["input"]["alignment"] = str(tmp_path / "alignment.json")
    expected["input"]["audio"] = str(tmp_path / "audio")
    expected["output"]["path"] = str(tmp_path / "out")
    assert asdict(cfg) == expected


def test_loading_does_not_modify_the_defaults(tmp_path):
    before = copy.deepcopy(DEFAULTS)
    load_config(
        str(
            _write(
                tmp_path, {"input": {"columns": {"hypothesis": "asr"}}, "splits": {"dev_size": 3}}
            )
        ),
        ["filters.max_duration=30"],
        check_inputs=False,
    )
    assert DEFAULTS == before


def test_a_partial_section_keeps_the_other_defaults(tmp_path):
    cfg = load_config(
        str(_write(tmp_path, {"input": {"columns": {"hypothesis": "asr"}}})), check_inputs=False
    )
    assert asdict(cfg.input.columns) == {**DEFAULTS["input"]["columns"], "hypothesis": "asr"}
    assert asdict(cfg.filters) == DEFAULTS["filters"]


def test_an_empty_config_file_is_all_defaults(tmp_path):
    cfg = load_config(str(_write(tmp_path, "# nothing\n")), check_inputs=False)
    assert asdict(cfg.splits) == DEFAULTS["splits"]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "doc, key",
    [
        ({"inputs": {}}, "inputs"),
        ({"filters": {"max_durration": 20}}, "filters.max_durration"),
        ({"input": {"columns": {"language": "lang"}}}, "input.columns.language"),
        ({"cluster": {"workers": 4}}, "cluster.workers"),
    ],
)
def test_unknown_key_is_an_error_naming_the_dotted_key(tmp_path, doc, key):
    msg = _error(tmp_path, doc)
    assert f"'{key}'" in msg
    assert "unknown" in msg


def test_unknown_key_error_lists_the_known_keys_of_its_section(tmp_path):
    msg = _error(tmp_path, {"filters": {"max_durration": 20}})
    assert "filters.max_duration" in msg and "filters.min_similarity" in msg


@pytest.mark.parametrize(
    "doc, key",
    [
        ({"splits": {"dev_size": "many"}}, "splits.dev_size"),
        ({"text": {"lowercase": 3}}, "text.lowercase"),
        ({"text": {"strip_punctuation": "yes please"}}, "text.strip_punctuation"),
        ({"splits": {"dev_size": True}}, "splits.dev_size"),  # a bool is not an integer here
        ({"splits": {"dev_size": 1.5}}, "splits.dev_size"),
        ({"filters": {"min_similarity": "high"}}, "filters.min_similarity"),
        ({"filters": {"max_duration": False}}, "filters.max_duration"),
        ({"input": {"alignment": None}}, "input.alignment"),
        ({"input": {"columns": {"recording": None}}}, "input.columns.recording"),
        ({"input": {"columns": {"start": 3}}}, "input.columns.start"),
        ({"audio": {"sampling_rate": 16000.0}}, "audio.sampling_rate"),
        ({"cluster": {"n_workers": "4"}}, "cluster.n_workers"),
        ({"filters": 0.8}, "filters"),  # a section must be a mapping
        ({"input": {"silence_labels": "sp"}}, "input.silence_labels"),  # a list, not one label
        ({"input": {"columns": ["id"]}}, "input.columns"),
    ],
)
def test_wrong_type_is_an_error_naming_the_key(tmp_path, doc, key):
    msg = _error(tmp_path, doc)
    assert f"'{key}'" in msg
    assert "must be" in msg


@pytest.mark.parametrize(
    "doc, key",
    [
        ({"output": {"audio_format": "mp3"}}, "output.audio_format"),
        ({"audio": {"decoder": "sox"}}, "audio.decoder"),
        ({"input": {"format": "xlsx"}}, "input.format"),
        ({"audio": {"sampling_rate": 0}}, "audio.sampling_rate"),
        ({"audio": {"channels": 3}}, "audio.channels"),
        ({"output": {"shard_hours": 0}}, "output.shard_hours"),
        ({"splits": {"dev_size": -1}}, "splits.dev_size"),
        ({"cluster": {"n_workers": 0}}, "cluster.n_workers"),
        ({"cluster": {"threads_per_worker": 0}}, "cluster.threads_per_worker"),
        ({"input": {"id_template": "{recording}_{channel}"}}, "input.id_template"),
        ({"input": {"id_template": "{start:.1q}"}}, "input.id_template"),
        ({"splits": {"by": "language"}}, "splits.by"),
        ({"input": {"silence_labels": ["sp", 3]}}, "input.silence_labels"),
        (
            {"input": {"recording_pattern": "\\[(?P<id>[a-z]+"}},
            "input.recording_pattern",
        ),  # unbalanced
        (
            {"input": {"recording_pattern": "\\[([A-Za-z0-9_-]{11})\\]"}},
            "input.recording_pattern",
        ),  # no group id
        ({"splits": {"low_similarity": "keep"}}, "splits.low_similarity"),
        ({"splits": {"dev_hours": -1}}, "splits.dev_hours"),
        ({"budget": {"total_gb": -5}}, "budget.total_gb"),
        ({"splits": {"exclude_ids": [3]}}, "splits.exclude_ids"),
        ({"splits": {"exclude_ids": {"a": 1}}}, "splits.exclude_ids"),
    ],
)
def test_bad_value_is_an_error_naming_the_key(tmp_path, doc, key):
    assert f"'{key}'" in _error(tmp_path, doc)


def test_id_template_may_name_the_speaker_and_a_bad_field_lists_the_fields(tmp_path):
    doc = {"input": {"id_template": "{recording}_{speaker}_{start:.2f}"}}
    cfg = load_config(str(_write(tmp_path, doc)), check_inputs=False)
    assert cfg.input.id_template == "{recording}_{speaker}_{start:.2f}"
    message = _error(tmp_path, {"input": {"id_template": "{recording}_{channel}"}})
    assert "(fields: recording, speaker, start, end)" in message and "'channel'" in message


def test_values_that_accept_null_or_several_types(tmp_path):
    doc = {
        "filters": {"min_similarity": None, "min_duration": 1, "max_duration": 12.5},
        "input": {"audio": None, "columns": {"id": None}},
        "output": {"shard_hours": 2},
        "cluster": {"memory_limit": 4_000_000_000, "dashboard_address": None},
    }
    cfg = load_config(str(_write(tmp_path, doc)), check_inputs=False)
    assert {k: getattr(cfg.filters, k) for k in doc["filters"]} == {
        "min_similarity": None,
        "min_duration": 1,
        "max_duration": 12.5,
    }
    assert cfg.input.audio is None and cfg.input.columns.id is None
    assert cfg.cluster.memory_limit == 4_000_000_000


def test_invalid_yaml_is_a_config_error(tmp_path):
    assert "not valid YAML" in _error(tmp_path, "input: [unclosed\n")


def test_a_config_that_is_not_a_mapping_is_a_config_error(tmp_path):
    assert "mapping" in _error(tmp_path, "- a\n- b\n")


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(str(tmp_path / "nope.yaml"), check_inputs=False)


def test_every_error_message_is_one_line(tmp_path):
    for doc in ({"filters": {"max_durration": 1}}, {"splits": {"dev_size": "many"}}, "- a\n"):
        assert "\n" not in _error(tmp_path, doc)


def test_invalid_yaml_error_is_one_line(tmp_path):
    msg = _error(tmp_path, "input: [x\n  y: :\n")
    assert "not valid YAML" in msg
    assert "\n" not in msg


# ---------------------------------------------------------------- --set


def test_set_values_are_parsed_as_yaml(tmp_path):
    cfg = load_config(
        str(_write(tmp_path, {})),
        [
            "splits.dev_size=7",
            "cluster.address=null",
            "text.lowercase=false",
            "filters.max_duration=12.5",
            "input.columns.hypothesis=asr",
            "cluster.memory_limit=4GiB",
            "input.id_template={recording}-{start}",
        ],
        check_inputs=False,
    )
    assert cfg.splits.dev_size == 7 and type(cfg.splits.dev_size) is int
    assert cfg.cluster.address is None
    assert cfg.text.lowercase is False
    assert cfg.filters.max_duration == 12.5
    assert cfg.input.columns.hypothesis == "asr"
    assert cfg.cluster.memory_limit == "4GiB"
    assert cfg.input.id_template == "{recording}-{start}"


def test_set_overrides_the_file_and_the_last_set_wins(tmp_path):
    path = _write(tmp_path, {"splits": {"dev_size": 3, "seed": 5}})
    cfg = load_config(str(path), ["splits.dev_size=7", "splits.dev_size=9"], check_inputs=False)
    assert (cfg.splits.dev_size, cfg.splits.seed) == (9, 5)


def test_set_with_an_empty_value_is_null(tmp_path):
    cfg = load_config(str(_write(tmp_path, {})), ["filters.min_similarity="], check_inputs=False)
    assert cfg.filters.min_similarity is None


def test_set_value_containing_equals_signs(tmp_path):
    cfg = load_config(
        str(_write(tmp_path, {})), ["cluster.address=tcp://h:8786?a=b"], check_inputs=False
    )
    assert cfg.cluster.address == "tcp://h:8786?a=b"


@pytest.mark.parametrize(
    "item, key",
    [
        ("filters.max_durration=3", "filters.max_durration"),
        ("splits.dev_size=many", "splits.dev_size"),
        ("text.lowercase=3", "text.lowercase"),
        ("nosection.key=1", "nosection"),
    ],
)
def test_set_is_validated_like_the_file(tmp_path, item, key):
    assert f"'{key}'" in _error(tmp_path, {}, [item])


def test_set_without_equals_sign_is_a_config_error(tmp_path):
    assert "key=value" in _error(tmp_path, {}, ["splits.dev_size"])


def test_set_works_without_a_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["splits.dev_size=7"], check_inputs=False)
    assert cfg.splits.dev_size == 7


# ---------------------------------------------------------------- paths


def test_relative_paths_resolve_against_the_config_files_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anywhere but the config's folder
    conf = tmp_path / "project" / "conf"
    path = _write(
        conf,
        {
            "input": {"alignment": "../data/align.csv", "audio": "audio/"},
            "output": {"path": "out"},
            "audio": {"ffmpeg": "bin/ffmpeg"},
        },
    )
    cfg = load_config(str(path.relative_to(tmp_path)), check_inputs=False)
    assert cfg.input.alignment == str(tmp_path / "project" / "data" / "align.csv")
    assert cfg.input.audio == str(conf / "audio")
    assert cfg.output.path == str(conf / "out")
    assert cfg.audio.ffmpeg == str(conf / "bin" / "ffmpeg")


def test_relative_path_from_set_resolves_against_the_config_files_folder(tmp_path):
    conf = tmp_path / "conf"
    cfg = load_config(str(_write(conf, {})), ["output.path=built"], check_inputs=False)
    assert cfg.output.path == str(conf / "built")


def test_absolute_paths_and_urls_are_kept(tmp_path):
    doc = {
        "input": {"alignment": "memory://bucket/align.csv", "audio": "s3://bucket/audio/"},
        "output": {"path": str(tmp_path / "elsewhere")},
    }
    cfg = load_config(str(_write(tmp_path / "conf", doc)), check_inputs=False)
    assert cfg.input.alignment == "memory://bucket/align.csv"
    assert cfg.input.audio == "s3://bucket/audio/"
    assert cfg.output.path == str(tmp_path / "elsewhere")


def test_home_directory_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = load_config(str(_write(tmp_path, {"output": {"path": "~/ds"}})), check_inputs=False)
    assert cfg.output.path == str(tmp_path / "home" / "ds")


# ---------------------------------------------------------------- inputs must exist


@pytest.mark.parametrize("key,missing", [("alignment", "missing.csv"), ("audio", "no_audio")])
def test_missing_input_is_an_error_naming_the_key_and_path(tmp_path, key, missing):
    (tmp_path / "audio").mkdir()
    (tmp_path / "align.csv").write_text("id,recording,start,end,text\n", encoding="utf-8")
    inputs = {"alignment": "align.csv", "audio": "audio", key: missing}
    path = _write(tmp_path, {"input": inputs})
    with pytest.raises(UserError, match=rf"input\.{key}") as e:
        load_config(str(path))
    assert str(tmp_path / missing) in str(e.value)


def test_id_list_paths_resolve_from_the_config_folder_and_must_exist(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "align.csv").write_text("id,recording,start,end,text\n", encoding="utf-8")
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / "bad_ids.txt").write_text("a\n", encoding="utf-8")
    doc = {
        "input": {"alignment": "align.csv", "audio": "audio"},
        "splits": {"exclude_ids": "review/bad_ids.txt", "test_ids": "review/bad_ids.txt"},
    }
    cfg = load_config(str(_write(tmp_path, doc)))
    assert cfg.splits.exclude_ids == [
        str(tmp_path / "review" / "bad_ids.txt")
    ]  # one file: no list needed
    assert cfg.splits.test_ids == str(tmp_path / "review" / "bad_ids.txt")
    doc["splits"]["exclude_ids"] = ["review/bad_ids.txt", "review/gone.txt"]
    with pytest.raises(UserError, match=r"splits\.exclude_ids: file not found: .*gone\.txt"):
        load_config(str(_write(tmp_path, doc)))


def test_missing_ffmpeg_binary_is_an_error(tmp_path):
    (tmp_path / "align.csv").write_text("id,recording,start,end,text\n", encoding="utf-8")
    path = _write(
        tmp_path,
        {"input": {"alignment": "align.csv", "audio": None}, "audio": {"ffmpeg": "no/ffmpeg"}},
    )
    with pytest.raises(UserError, match=r"audio\.ffmpeg"):
        load_config(str(path))


def test_output_path_that_is_a_file_is_an_error(tmp_path):
    (tmp_path / "align.csv").write_text("id,recording,start,end,text\n", encoding="utf-8")
    (tmp_path / "out").write_text("I am a file", encoding="utf-8")
    path = _write(
        tmp_path, {"input": {"alignment": "align.csv", "audio": None}, "output": {"path": "out"}}
    )
    with pytest.raises(UserError, match=r"output\.path"):
        load_config(str(path))


def test_existing_inputs_pass_the_check(tmp_path):
    (tmp_path / "align.csv").write_text("id,recording,start,end,text\n", encoding="utf-8")
    (tmp_path / "audio").mkdir()
    cfg = load_config(
        str(_write(tmp_path, {"input": {"alignment": "align.csv", "audio": "audio"}}))
    )
    assert cfg.input.alignment == str(tmp_path / "align.csv")


# ---------------------------------------------------------------- through the command line


def _run_cli(tmp_path: Path, doc, *args: str) -> subprocess.CompletedProcess:
    cfg = _write(tmp_path, doc, "cli.yaml")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "etl", "build", str(cfg), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _assert_one_line_error(proc: subprocess.CompletedProcess, *names: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("etl: error:"), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""


@pytest.fixture
def inputs(tmp_path):
    """A valid alignment table and audio folder, so only the one mistake under test is wrong."""
    (tmp_path / "align.csv").write_text(
        "id,recording,start,end,text\nu1,rec,0,1,x\n", encoding="utf-8"
    )
    (tmp_path / "audio").mkdir()
    return {"alignment": "align.csv", "audio": "audio"}


def test_cli_unknown_key_exits_2_with_one_line(tmp_path, inputs):
    doc = {
        "input": inputs,
        "output": {"path": str(tmp_path / "out")},
        "filters": {"max_durration": 20},
    }
    proc = _run_cli(tmp_path, doc)
    _assert_one_line_error(proc, "filters.max_durration")
    assert not (tmp_path / "out").exists()


def test_cli_wrong_type_exits_2_with_one_line(tmp_path, inputs):
    doc = {
        "input": inputs,
        "output": {"path": str(tmp_path / "out")},
        "splits": {"dev_size": "many"},
    }
    proc = _run_cli(tmp_path, doc)
    _assert_one_line_error(proc, "splits.dev_size")
    assert not (tmp_path / "out").exists()


def test_cli_missing_alignment_exits_2_with_one_line(tmp_path, inputs):
    doc = {
        "input": {**inputs, "alignment": "missing.csv"},
        "output": {"path": str(tmp_path / "out")},
    }
    proc = _run_cli(tmp_path, doc)
    _assert_one_line_error(proc, "input.alignment", str(tmp_path / "missing.csv"))
    assert not (tmp_path / "out").exists()


def test_cli_bad_set_override_exits_2_with_one_line(tmp_path, inputs):
    doc = {"input": inputs, "output": {"path": str(tmp_path / "out")}}
    proc = _run_cli(tmp_path, doc, "--set", "text.lowercase=3")
    _assert_one_line_error(proc, "text.lowercase")
    assert not (tmp_path / "out").exists()


def test_cli_invalid_yaml_exits_2_with_one_line(tmp_path):
    proc = _run_cli(tmp_path, "input: [x\n  y: :\n")
    _assert_one_line_error(proc, "cli.yaml", "not valid YAML")


def test_cli_missing_config_file_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "etl", "build", "nope.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    _assert_one_line_error(proc, "nope.yaml")


def test_one_user_error_for_every_stage():
    import etl.config
    import etl.errors

    assert not hasattr(etl.config, "ConfigError")  # one name: UserError, in etl.errors
    assert issubclass(etl.errors.UserError, Exception)


# ---------------------------------------------------------------- the typed values


def test_the_config_is_frozen_typed_values_that_pickle(tmp_path, monkeypatch):
    import dataclasses
    import pickle

    from etl.config import Config, FiltersConfig

    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["filters.min_similarity=0.5"], check_inputs=False)
    assert isinstance(cfg, Config) and isinstance(cfg.filters, FiltersConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.filters.min_similarity = 0.9  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # it travels to the workers
    assert cfg.to_dict() == asdict(cfg) and cfg.to_dict()["filters"]["min_similarity"] == 0.5
    assert DEFAULTS == Config().to_dict()  # the defaults are declared once, on the fields


def test_the_input_formats_are_declared_once_with_one_reader_each():
    from etl.config import _CHOICES, INPUT_FORMATS
    from etl.ingest import formats, table

    names = ("csv", "tsv", "json", "jsonl", "parquet", "kaldi")
    aligners = ("textgrid", "ctm", "nemo", "lhotse", "subtitles")
    assert tuple(INPUT_FORMATS) == names + aligners == _CHOICES["input.format"]
    assert table.READERS.keys() == INPUT_FORMATS.keys()
    assert tuple(formats.PARTITIONS) == aligners
    assert tuple(n for n, f in INPUT_FORMATS.items() if f.kind == "aligner") == aligners
    assert [n for n, f in INPUT_FORMATS.items() if f.speakers == "always"] == ["textgrid", "lhotse"]
    assert [n for n, f in INPUT_FORMATS.items() if not f.own_ids] == [
        "textgrid",
        "ctm",
        "nemo",
        "subtitles",
    ]
    assert formats.EXTENSIONS == {
        ".textgrid": "textgrid",
        ".ctm": "ctm",
        ".vtt": "subtitles",
        ".srt": "subtitles",
    }
