"""Object storage through a real S3 API (moto's server on 127.0.0.1, a free port): table, recordings
and dataset on s3://, credentials from the standard environment variables and never in the output
or the logs, and shard writes that only become visible when complete."""

from __future__ import annotations

import json

import moto.server as moto_server  # the [test] extra installs moto[server] and s3fs: a missing one fails, never skips
import pytest
import s3fs

from etl.cli import main
from etl.output import storage

from ..cluster.test_cluster import dataset_content
from ..conftest import write_config

pytestmark = pytest.mark.cluster

SECRET = "etl-test-SECRET-7f3a9c"  # must never appear in anything etl writes or prints
KEY_ID = "AKIAETLTESTKEY0001"


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 and the AWS_* environment pointing at it (workers inherit it)."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv(
            "AWS_ENDPOINT_URL", f"http://127.0.0.1:{server._server.server_port}"
        )  # botocore reads it
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem()
        fs.mkdir("etl-test")
        yield fs
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def test_a_build_from_s3_to_s3_equals_the_local_build_and_never_shows_the_secret(
    s3, built, corpus, tmp_path, capfd
):
    s3.put(str(corpus["root"] / "alignment.json"), "etl-test/corpus/alignment.json")
    s3.put(str(corpus["root"] / "audio") + "/", "etl-test/corpus/audio/", recursive=True)
    cfg = write_config(
        corpus,
        tmp_path / "s3",
        input={
            "alignment": "s3://etl-test/corpus/alignment.json",
            "audio": "s3://etl-test/corpus/audio/",
        },
        output={"path": "s3://etl-test/out/"},
    )
    capfd.readouterr()
    assert main(["build", cfg]) == 0
    logs = "".join(capfd.readouterr())
    assert dataset_content("s3://etl-test/out") == dataset_content(built["out"])
    report = json.loads(s3.cat("etl-test/out/report.json"))
    assert report["rejects"] == built["report"]["rejects"]
    assert report["content_hash"] == built["report"]["content_hash"]
    s3.invalidate_cache()
    files = s3.find("etl-test/out/")
    assert not [p for p in files if ".tmp-" in p or "/.parts/" in p]
    written = b"".join(s3.cat(p) for p in files)
    for secret in (SECRET, KEY_ID):
        assert secret not in logs
        assert secret.encode() not in written

    # training straight from the bucket: streamed row group by row group, decoded with numpy
    import etl
    from etl.testing.synth import dominant_frequency

    rows = list(etl.load("s3://etl-test/out", split="dev", streaming=True))
    assert len(rows) == built["report"]["splits"]["dev"]["rows"]
    for r in rows:
        a = r["audio"]
        assert a["sampling_rate"] == 16000 and a["array"].dtype.name == "float32"
        assert abs(dominant_frequency(a["array"], 16000) - corpus["freqs"][r["id"]]) < 5


def test_an_s3_write_is_invisible_until_complete_and_a_failed_one_leaves_nothing(s3):
    path = "etl-test/atomic/train-shard00000.parquet"
    block = b"\x01" * (6 << 20)  # over s3fs's 5 MB block: a part is uploaded while writing
    with storage.atomic_open(s3, path) as f:
        f.write(block)
        f.flush()
        s3.invalidate_cache()
        assert not s3.exists(path)
        f.write(block)
    s3.invalidate_cache()
    assert s3.size(path) == 2 * len(block)
    with pytest.raises(RuntimeError, match="task killed"):
        with storage.atomic_open(s3, path + ".2") as f:
            f.write(block)
            f.flush()
            raise RuntimeError("task killed")
    s3.invalidate_cache()
    assert s3.ls("etl-test/atomic/") == [path]  # no partial object, no temporary name
    assert not s3.list_multipart_uploads("etl-test")  # the failed upload was aborted
