"""examples/train_wav2vec2.py really trains: a tiny random wav2vec2 on the demo dataset, 20 CPU steps,
the CTC loss goes down. Runs when the [train] extra is installed (`make test EXTRAS=test,train`)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

MISSING = [
    m for m in ("torch", "transformers", "accelerate") if importlib.util.find_spec(m) is None
]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"the [train] extra is not installed ({', '.join(MISSING)} "
        "missing): pip install -e '.[train]' or make test EXTRAS=test,train",
    ),
]

EXAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "train_wav2vec2.py"
)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    """`make demo`'s dataset (etl.demo), with the Arrow copy for instant loading."""
    from etl.demo import main

    folder = tmp_path_factory.mktemp("demo")
    assert (
        main(
            [
                str(folder),
                "--set",
                "output.arrow=true",
                "--set",
                "cluster.n_workers=2",
                "--set",
                "cluster.dashboard_address=null",
            ]
        )
        == 0
    )
    return folder / "out"


@pytest.mark.timeout(170)
def test_tiny_wav2vec2_trains_20_steps_on_the_demo_dataset_and_the_ctc_loss_goes_down(
    demo_out, tmp_path
):
    model_dir = tmp_path / "model"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_DATASETS_CACHE": str(tmp_path / "hf-cache"),
        "CUDA_VISIBLE_DEVICES": "",
    }
    proc = subprocess.run(
        [
            sys.executable,
            EXAMPLE,
            str(demo_out),
            "--output-dir",
            str(model_dir),
            "--max-steps",
            "20",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=160,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stderr.strip().splitlines()[-1])

    assert result["steps"] == 20 and len(result["losses"]) == 20
    assert all(0 < x < float("inf") for x in result["losses"])
    # the same 20 rows, before and after: clearly lower; and the logged training loss falls too
    assert result["probe_loss_after"] < 0.9 * result["probe_loss_before"], result
    first, last = result["losses"][:5], result["losses"][-5:]
    assert sum(last) / 5 < sum(first) / 5, result["losses"]
    assert result["eval_loss"] > 0  # the dev split evaluates
    # what a user would reload: model, tokenizer with the dataset's vocabulary, feature extractor
    assert (model_dir / "config.json").exists() and (
        model_dir / "preprocessor_config.json"
    ).exists()
    vocab = json.loads((model_dir / "vocab.json").read_text())
    assert vocab == json.loads((demo_out / "vocab.json").read_text())
    assert not (tmp_path / "hf-cache").exists() or not any(
        (tmp_path / "hf-cache").rglob("*.arrow")
    )  # zero-copy


def test_collator_pads_audio_and_masks_label_padding(demo_out):
    """The CTC collator: audio padded to the longest clip with an attention mask, labels padded with
    -100, and the labels decode back to the row's text."""
    spec = importlib.util.spec_from_file_location("train_wav2vec2", EXAMPLE)
    ex = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    spec.loader.exec_module(ex)
    import etl

    train = etl.load(demo_out, split="train")
    proc = ex.make_processor(str(demo_out), 16000)
    rows = [train[i] for i in range(3)]
    batch = ex.CTCCollator(proc)(rows)
    lengths = [len(r["audio"]["array"]) for r in rows]
    assert batch["input_values"].shape == (3, max(lengths))
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    for r, labels in zip(rows, batch["labels"]):
        ids = [int(i) for i in labels if i != -100]
        assert proc.tokenizer.decode(ids, group_tokens=False) == r["text"]
    assert (batch["labels"] == -100).any()  # texts of different lengths
