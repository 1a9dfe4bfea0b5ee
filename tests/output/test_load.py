"""etl.load: zero-copy Arrow output, numpy decoding without torchcodec, HF's own decoding, streaming
from fsspec URLs. Every check proves the right tone in the right row (see conftest)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import uuid

import datasets
import fsspec
import numpy as np
import pytest
from distributed import Client, LocalCluster

import etl
from etl.cli import main
from etl.commands.build import build
from etl.config import load_config
from etl.testing.synth import dominant_frequency

from ..conftest import write_config

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def arrow_built(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("arrow") / "out"
    assert main(["build", write_config(corpus, out, output={"arrow": True})]) == 0
    return {"out": out, "report": json.loads((out / "report.json").read_text())}


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A fresh, empty HF datasets cache: shows what a load copies."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    return cache


def _cache_bytes(cache) -> int:
    return sum(
        os.path.getsize(f)
        for f in glob.glob(str(cache / "**" / "*"), recursive=True)
        if os.path.isfile(f)
    )


def _check_rows(rows, corpus):
    for r in rows:
        a = r["audio"]
        assert (
            a["sampling_rate"] == 16000 and a["array"].dtype == np.float32 and a["array"].ndim == 1
        ), r["id"]
        assert len(a["array"]) == round(r["end"] * 16000) - round(r["start"] * 16000), r["id"]
        assert abs(dominant_frequency(a["array"], 16000) - corpus["freqs"][r["id"]]) < 3, r["id"]


def test_arrow_output_is_memory_mapped_in_place_with_the_right_tone_in_every_row(
    arrow_built, corpus, hf_cache
):
    out, report = arrow_built["out"], arrow_built["report"]
    dd = etl.load(out)  # decode="numpy" by default
    assert isinstance(dd, datasets.DatasetDict) and list(dd) == list(report["splits"])
    for split, ds in dd.items():
        assert ds.num_rows == report["splits"][split]["rows"]
        assert all(
            c["filename"].startswith(str(out / "arrow" / split)) for c in ds.cache_files
        )  # no copy
        _check_rows(ds, corpus)
    assert _cache_bytes(hf_cache) == 0
    assert sorted(i for ds in dd.values() for i in ds["id"]) == sorted(corpus["freqs"])


def test_datasets_load_from_disk_reads_the_arrow_folder_as_the_parquet_says(arrow_built, hf_cache):
    out = arrow_built["out"]
    dd = datasets.load_from_disk(str(out / "arrow"))
    assert dd["train"].features["audio"] == datasets.Audio(sampling_rate=16000)
    raw = dd.cast_column("audio", datasets.Audio(decode=False))
    from_parquet = datasets.load_dataset(
        "parquet", data_files=sorted(glob.glob(str(out / "data" / "train-*"))), split="train"
    ).cast_column("audio", datasets.Audio(decode=False))
    assert raw["train"].to_list() == from_parquet.to_list()  # same rows, same order, same bytes


def test_parquet_only_output_loads_one_split_through_the_hf_cache(built, corpus, hf_cache):
    assert not (built["out"] / "arrow").exists()
    train = etl.load(built["out"], split="train")
    assert (
        isinstance(train, datasets.Dataset)
        and train.num_rows == built["report"]["splits"]["train"]["rows"]
    )
    assert train.features["audio"] == datasets.Audio(sampling_rate=16000, decode=False)
    _check_rows(train, corpus)
    assert _cache_bytes(hf_cache) > 0  # the parquet builder's copy
    assert (
        train.with_format(None)["duration"][:3] == train["duration"][:3]
    )  # column reads skip decoding


def _torchcodec_missing() -> str | None:
    try:
        import torchcodec.decoders  # noqa: F401  (loads the FFmpeg shared libraries)
    except (
        Exception
    ) as e:  # ImportError, or OSError/RuntimeError when FFmpeg's libraries are absent
        return f"torchcodec with FFmpeg shared libraries is not usable here ({type(e).__name__}: {str(e)[:80]})"
    return None


def test_decode_datasets_leaves_hf_audio_feature_untouched(arrow_built):
    dev = etl.load(arrow_built["out"], split="dev", decode="datasets")
    assert dev.features["audio"] == datasets.Audio(sampling_rate=16000)  # decode=True: HF's own
    assert dev.format["type"] is None
    if _torchcodec_missing():
        with pytest.raises(ImportError, match="torchcodec"):
            dev[0]["audio"]


@pytest.mark.skipif(_torchcodec_missing() is not None, reason=_torchcodec_missing() or "")
def test_decode_datasets_with_torchcodec_gives_the_same_samples_as_numpy(arrow_built):
    hf = etl.load(arrow_built["out"], split="dev", decode="datasets")
    ours = etl.load(arrow_built["out"], split="dev")
    for a, b in zip(hf, ours):
        samples = a["audio"].get_all_samples()
        assert samples.sample_rate == 16000
        np.testing.assert_allclose(samples.data.numpy().reshape(-1), b["audio"]["array"], atol=1e-4)


def test_rebuild_without_arrow_removes_the_previous_arrow_folder(corpus, tmp_path, hf_cache):
    out = tmp_path / "re"
    assert main(["build", write_config(corpus, out, output={"arrow": True})]) == 0
    assert (out / "arrow" / "dataset_dict.json").exists()
    assert main(["build", write_config(corpus, out)]) == 0
    assert not (out / "arrow").exists()
    assert etl.load(out, split="dev").num_rows == 4


def test_memory_url_output_builds_arrow_and_loads_in_memory_and_streaming(
    corpus, tmp_path, hf_cache
):
    """The output on memory:// (an in-process cluster: the memory filesystem lives in this process);
    streaming reads the Parquet row groups from the URL, nothing downloaded whole."""
    mem = fsspec.filesystem("memory")
    root = f"memory://etl-load-{uuid.uuid4().hex[:8]}"
    try:
        cfg = load_config(
            write_config(corpus, tmp_path / "mem"), [f"output.path={root}/out", "output.arrow=true"]
        )
        with (
            LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            report = build(cfg, client=client)
        assert mem.exists(f"{root}/out/arrow/train/state.json")

        dd = etl.load(f"{root}/out")
        assert {s: ds.num_rows for s, ds in dd.items()} == {
            s: v["rows"] for s, v in report["splits"].items()
        }
        _check_rows(dd["dev"], corpus)  # arrow/ downloaded by load_from_disk, decoded by soundfile

        stream = etl.load(f"{root}/out", streaming=True)
        assert isinstance(stream, datasets.IterableDatasetDict)
        assert stream["train"].num_shards == report["splits"]["train"]["files"]
        rows = list(stream["train"]) + list(stream["dev"])
        assert sorted(r["id"] for r in rows) == sorted(corpus["freqs"])
        _check_rows(rows, corpus)
        one = etl.load(f"{root}/out", split="dev", streaming=True)
        assert isinstance(one, datasets.IterableDataset) and len(list(one)) == 4
    finally:
        mem.rm(root.split("://", 1)[1], recursive=True)


def test_load_errors_are_one_clear_line(built, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no etl dataset at .*nothing.*data/"):
        etl.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match=r"no split 'test' in .*\(splits: train, dev\)"):
        etl.load(built["out"], split="test")
    with pytest.raises(ValueError, match="decode must be one of numpy, datasets"):
        etl.load(built["out"], decode="torch")


def test_arrow_files_are_removed_with_the_dataset_they_belong_to(arrow_built, tmp_path):
    """The storage layer knows arrow/ is ours: clearing an output removes it too."""
    from etl.output import storage

    copy = tmp_path / "copy"
    shutil.copytree(arrow_built["out"], copy)
    fs, root = storage.fs_and_path(str(copy))
    storage.clear_previous_output(fs, root)
    assert not (copy / "arrow").exists() and not (copy / "data").exists()
