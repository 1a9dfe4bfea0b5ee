"""Train a wav2vec2 CTC model on an etl dataset with HuggingFace transformers, on CPU or GPU.

    pip install -e '.[train]'        # torch 2.13.0 (CPU build), transformers, accelerate
    python examples/train_wav2vec2.py demo/out --max-steps 20          # a tiny random model: a smoke run
    python examples/train_wav2vec2.py /data/asr-dataset --model facebook/wav2vec2-base --max-steps 20000

What it does, each piece the usual transformers one:
- ``Wav2Vec2CTCTokenizer`` from the dataset's ``vocab.json`` (``|`` between words, [UNK], [PAD]);
- ``Wav2Vec2FeatureExtractor`` (16 kHz, zero-mean/unit-variance per clip);
- ``etl.load(OUT, decode="numpy")``: memory-mapped rows, audio decoded by soundfile when a batch is
  drawn (no torchcodec, no FFmpeg libraries);
- a CTC padding collator: audio padded with attention masks, labels padded with -100 (ignored by the loss);
- a length-grouped sampler over the ``duration`` column (similar lengths share a batch: less padding);
- ``transformers.Trainer``. ``--model tiny`` (default) is a randomly initialised 2-layer model that
  trains in seconds on CPU; any wav2vec2 checkpoint name or folder fine-tunes that model instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass

import torch
from transformers import (
    Trainer,
    TrainingArguments,
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
    set_seed,
)
from transformers.trainer_pt_utils import LengthGroupedSampler

import etl


def make_processor(dataset_dir: str, sampling_rate: int) -> Wav2Vec2Processor:
    tokenizer = Wav2Vec2CTCTokenizer(
        os.path.join(dataset_dir, "vocab.json"),
        unk_token="[UNK]",
        pad_token="[PAD]",
        word_delimiter_token="|",
    )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=sampling_rate,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )
    return Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer)


@dataclass
class CTCCollator:
    """Rows ``{"audio": {"array", "sampling_rate"}, "text"}`` -> a padded batch with CTC labels."""

    processor: Wav2Vec2Processor

    def __call__(self, rows: list[dict]) -> dict:
        sr = self.processor.feature_extractor.sampling_rate
        batch = self.processor.feature_extractor(
            [r["audio"]["array"] for r in rows],
            sampling_rate=sr,
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        labels = self.processor.tokenizer(
            [r["text"] for r in rows], padding=True, return_tensors="pt"
        )
        batch["labels"] = labels["input_ids"].masked_fill(labels["attention_mask"] == 0, -100)
        return batch


class DurationGroupedTrainer(Trainer):
    """Batches of similar duration, read from the ``duration`` column (Arrow, no audio decoded)."""

    def _get_train_sampler(self, train_dataset=None):
        ds = train_dataset if train_dataset is not None else self.train_dataset
        durations = ds.select_columns(["duration"]).with_format("arrow")[:]["duration"].to_pylist()
        return LengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths=durations
        )


def tiny_config(**kw) -> Wav2Vec2Config:
    """A randomly initialised wav2vec2 small enough to train 20 steps on CPU in seconds
    (feature encoder stride 5*4*4 = 80 samples: 200 frames per second at 16 kHz)."""
    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32, 32),
        conv_kernel=(10, 4, 4),
        conv_stride=(5, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        mask_time_prob=0.0,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        final_dropout=0.0,
        layerdrop=0.0,
        **kw,
    )


def make_model(name: str, processor: Wav2Vec2Processor) -> Wav2Vec2ForCTC:
    tok = processor.tokenizer
    ctc = {"vocab_size": len(tok), "pad_token_id": tok.pad_token_id, "ctc_loss_reduction": "mean"}
    if name == "tiny":
        return Wav2Vec2ForCTC(tiny_config(**ctc))
    model = Wav2Vec2ForCTC.from_pretrained(
        name, ignore_mismatched_sizes=True, **ctc
    )  # a new CTC head
    model.freeze_feature_encoder()
    return model


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "dataset", help="an etl output folder (data/, vocab.json; arrow/ loads instantly)"
    )
    ap.add_argument(
        "--model", default="tiny", help="tiny (random, for a smoke run) or a wav2vec2 checkpoint"
    )
    ap.add_argument("--output-dir", default="wav2vec2-ctc", help="checkpoints and the final model")
    ap.add_argument("--max-steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--warmup-steps", type=int, default=0)
    ap.add_argument("--eval-split", default="dev", help="evaluated at the end ('' to skip)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    set_seed(args.seed)
    dd = etl.load(args.dataset, decode="numpy")
    train = dd["train"]
    processor = make_processor(args.dataset, train.features["audio"].sampling_rate)
    model = make_model(args.model, processor)
    targs = TrainingArguments(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        remove_unused_columns=False,  # the collator needs `audio` and `text`
        use_cpu=not torch.cuda.is_available(),
        seed=args.seed,
        dataloader_num_workers=0,
    )
    trainer = DurationGroupedTrainer(
        model=model,
        args=targs,
        train_dataset=train,
        data_collator=CTCCollator(processor),
        processing_class=processor.feature_extractor,
    )
    # The CTC loss on the same fixed rows before and after: did it learn anything at all?
    probe = train.select(range(min(64, len(train))))
    before = trainer.evaluate(probe, metric_key_prefix="probe")["probe_loss"]
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = {
        "steps": trainer.state.global_step,
        "losses": losses,
        "probe_loss_before": before,
        "probe_loss_after": trainer.evaluate(probe, metric_key_prefix="probe")["probe_loss"],
    }
    if args.eval_split and args.eval_split in dd:
        result["eval_loss"] = trainer.evaluate(dd[args.eval_split])["eval_loss"]
    trainer.save_model(args.output_dir)
    processor.save_pretrained(args.output_dir)
    print(json.dumps(result), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
