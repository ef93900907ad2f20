"""`ser-serve train`: fine-tune Wav2Vec2ForSequenceClassification on CREMA-D-style parquet data.

Preprocessing is the serving code itself (``ser_serve.audio`` decoding and the
checkpoint's feature extractor), so the model sees in training exactly what it
sees in production. Cross-entropy, AdamW with warm-up and linear decay,
validation each epoch, the best checkpoint (by validation accuracy) saved with
its preprocessor config and id2label. GPU when there is one, else CPU.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ser_serve.audio import load_waveform
from ser_train.presets import DEFAULT_LABELS, PRESETS, make_preset_checkpoint
from ser_serve.model.checkpoint import validate_checkpoint
from ser_train.dataset import read_examples


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ser-serve train", description=__doc__)
    parser.add_argument("--train", required=True, type=Path, help="parquet file (or one with a split column)")
    parser.add_argument("--validation", type=Path, help="parquet file; default: --train's 'validation' split")
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--init-from", type=Path, help="checkpoint directory to fine-tune")
    start.add_argument("--preset", choices=sorted(PRESETS), help="start from a random-init preset")
    parser.add_argument("--out", type=Path, required=True, help="where the best checkpoint is saved")
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--split-column", default="split")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--crop-seconds", type=float, default=3.0, help="longest training crop (speed)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    return parser.parse_args(argv)


def load_split(path: Path, split: str | None, args) -> list:
    return read_examples(path, args.audio_column, args.label_column, split=split, split_column=args.split_column)


def prepare(examples, extractor, label2id, desc) -> list[tuple[np.ndarray, int]]:
    """Decode and normalise every clip once, exactly as the server does."""
    prepared = []
    for example in tqdm(examples, desc=desc, unit="clip"):
        if example.label not in label2id:
            raise ValueError(f"label {example.label!r} is not among {sorted(label2id)}")
        waveform = load_waveform(example.audio)
        features = extractor(waveform, sampling_rate=16_000, return_tensors="np")["input_values"][0]
        prepared.append((features.astype(np.float32), label2id[example.label]))
    return prepared


def batches(data, batch_size: int, crop: int, rng: random.Random):
    """Length-bucketed batches; each clip cropped (random offset) to the batch's shortest, at most ``crop``."""
    order = list(range(len(data)))
    rng.shuffle(order)
    chunks = [order[i : i + batch_size * 8] for i in range(0, len(order), batch_size * 8)]
    result = []
    for chunk in chunks:
        chunk.sort(key=lambda i: len(data[i][0]))
        for j in range(0, len(chunk), batch_size):
            members = chunk[j : j + batch_size]
            width = min(crop, min(len(data[i][0]) for i in members))
            inputs = []
            for i in members:
                features = data[i][0]
                offset = rng.randint(0, len(features) - width)
                inputs.append(features[offset : offset + width])
            result.append((torch.from_numpy(np.stack(inputs)), torch.tensor([data[i][1] for i in members])))
    rng.shuffle(result)
    return result


@torch.inference_mode()
def accuracy(model, data, device) -> tuple[float, float]:
    """Accuracy and mean loss over full clips, one at a time (what serving computes)."""
    model.eval()
    correct, loss = 0, 0.0
    for features, label in data:
        logits = model(input_values=torch.from_numpy(features)[None].to(device)).logits
        loss += torch.nn.functional.cross_entropy(logits, torch.tensor([label], device=device)).item()
        correct += int(logits.argmax(-1).item() == label)
    return correct / len(data), loss / len(data)


def train(args) -> dict:
    from transformers import AutoFeatureExtractor, Wav2Vec2ForSequenceClassification, get_linear_schedule_with_warmup

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    train_examples = load_split(args.train, None if args.validation else "train", args)
    val_examples = load_split(args.validation or args.train, None if args.validation else "validation", args)
    if args.preset:
        labels = sorted({e.label for e in train_examples}, key=lambda l: (l not in DEFAULT_LABELS, l))
        init = make_preset_checkpoint(args.preset, args.out / "init", labels=labels, seed=args.seed)
    else:
        init = args.init_from
        validate_checkpoint(init)
    extractor = AutoFeatureExtractor.from_pretrained(init)
    model = Wav2Vec2ForSequenceClassification.from_pretrained(init).to(device)
    label2id = {label: int(i) for i, label in model.config.id2label.items()}
    train_data = prepare(train_examples, extractor, label2id, "decode train")
    val_data = prepare(val_examples, extractor, label2id, "decode validation")
    crop = int(args.crop_seconds * 16_000)
    steps_per_epoch = len(batches(train_data, args.batch_size, crop, random.Random(0)))
    total_steps = steps_per_epoch * args.epochs if not args.max_steps else min(args.max_steps, steps_per_epoch * args.epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, min(args.warmup_steps, total_steps // 5), total_steps)
    history, best, step = [], -1.0, 0
    print(f"training on {device}: {len(train_data)} train / {len(val_data)} validation clips, "
          f"{steps_per_epoch} steps per epoch, {total_steps} steps", flush=True)
    for epoch in range(1, args.epochs + 1):
        model.train()
        started, losses = time.time(), []
        progress = tqdm(batches(train_data, args.batch_size, crop, rng), desc=f"epoch {epoch}/{args.epochs}", unit="batch")
        for inputs, labels in progress:
            loss = model(input_values=inputs.to(device), labels=labels.to(device)).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            progress.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            step += 1
            if step >= total_steps:
                break
        val_accuracy, val_loss = accuracy(model, val_data, device)
        record = {"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                  "val_accuracy": val_accuracy, "seconds": round(time.time() - started, 1)}
        history.append(record)
        print(json.dumps(record), flush=True)
        if val_accuracy > best:
            best = val_accuracy
            model.save_pretrained(args.out, safe_serialization=True)
            extractor.save_pretrained(args.out)
        if step >= total_steps:
            break
    summary = {"best_val_accuracy": best, "history": history, "device": str(device), "args": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    (args.out / "training_log.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
