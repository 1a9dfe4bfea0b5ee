"""The records that cross stages keep the JSON they are written as (OUT/.parts/shard-i.done.json)."""

from __future__ import annotations

import json
import pickle

from etl.records import LateRejects, ShardResult, SplitPart

RECORD = {
    "shard": 3,
    "parts": {
        "dev": {
            "file": "dev-00003.parquet",
            "rows": 2,
            "seconds": 3.5,
            "bytes": 10,
            "digest": "ab",
        },
        "reserve": {
            "file": "reserve-00003.parquet",
            "rows": 1,
            "seconds": 1.0,
            "bytes": 4,
            "digest": "cd",
            "ids": ["a-1"],
        },
    },
    "rejects": {"file": "/out/.parts/plan/late/shard-00003.parquet", "count": 1},
    "decoded_seconds": 12.0,
    "wall_seconds": 0.5,
    "recordings": {"a": {"clips": 3}},
}


def test_a_shard_record_reads_and_writes_back_the_same_json():
    rec = ShardResult.from_json(json.loads(json.dumps(RECORD)))
    assert rec.parts["reserve"].ids == ["a-1"] and rec.parts["dev"].ids is None
    assert rec.rejects == LateRejects("/out/.parts/plan/late/shard-00003.parquet", 1)
    assert json.dumps(rec.to_json()) == json.dumps(RECORD)
    assert pickle.loads(pickle.dumps(rec)) == rec


def test_the_reserve_resplit_record_of_an_earlier_version_reads_as_no_rejects():
    old = {k: v for k, v in RECORD.items() if k != "recordings"} | {"rejects": []}
    rec = ShardResult.from_json(old)
    assert rec.rejects == LateRejects(None, 0) and rec.recordings is None
    assert "recordings" not in rec.to_json()
    assert not ShardResult.unfiled(old)
    assert ShardResult.unfiled({**old, "rejects": [{"id": "x"}]})  # resume cuts that shard again


def test_a_split_part_keeps_its_key_order():
    p = SplitPart("f", 1, 2.0, 3, "d")
    assert list(p.to_json()) == ["file", "rows", "seconds", "bytes", "digest"]
