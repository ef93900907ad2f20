"""Accuracy along the straight line between two checkpoints' weights: why a soup works or does not.

A soup (ser_train/soup.py) is the point half-way along this line. If the two
runs lie in one basin of the loss, accuracy stays level (or rises) between
them; a dip in the middle is a barrier between two basins, and the soup sits
at its bottom. Scored on the first member's validation clips and, with
``--holdout`` / ``--test``, on those generators' test clips; raw logits (each
member's folded temperature taken out), so only accuracy is compared.

The second member may also be the checkpoint the first was fine-tuned from
(stage 1): the line between them is weight-space ensembling of the fine-tuned
model with its start (Wortsman et al. 2022, "Robust fine-tuning of zero-shot
models"), which can keep what the start knew (here: the synthetic voice)
without losing what fine-tuning taught. For the demo model it did neither
(benchmarks/results/demo-recipe-wise/).

    python -m ser_train.soup_path --members build/logo/espeak-ng/seed-0/model build/logo/espeak-ng/seed-1/model \
        --holdout espeak-ng --out build/soup-path
    python -m ser_train.soup_path --members build/logo/hts/model build/demo-stage1 --holdout hts --test synth \
        --steps 10 --out build/wise-hts
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", nargs=2, type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("build/data"))
    parser.add_argument("--holdout", nargs="+", default=[], help="also score these generators' test clips (each "
                        "labelled held out: the first member never trained on it)")
    parser.add_argument("--test", nargs="+", default=[], help="also score these generators' test clips (trained on)")
    parser.add_argument("--steps", type=int, default=4, help="segments of the line (4: weights 0, 0.25, ..., 1)")
    parser.add_argument("--out", type=Path, required=True, help="writes soup-path.json and soup-path.png here")
    return parser.parse_args(argv)


def clip_sets(args, log: dict, extractor, label2id) -> dict[str, list]:
    from ser_train import soup, train

    member_args = soup.recorded_args(log)
    sets = {"validation": soup.validation_clips(member_args, label2id)}
    scored = [(g, f"{g} test (held out)") for g in args.holdout] + [(g, f"{g} test") for g in args.test]
    if scored:
        test = train.read_examples(args.data / "test.parquet", member_args.audio_column, member_args.label_column,
                                   id2label=member_args.label_names, extra_column=member_args.generator_column)
        for generator, name in scored:
            clips = [e for e in test if e.extra == generator]
            if not clips:
                raise SystemExit(f"{args.data / 'test.parquet'} has no clips of generator {generator!r}")
            sets[name] = train.decode_all(clips, label2id, f"decode {generator} test")
    return {name: [(train.features(x, extractor), y) for x, y in decoded] for name, decoded in sets.items()}


def short_name(member: Path) -> str:
    """build/logo/hts/seed-0/model -> seed-0; build/demo-stage1 -> demo-stage1."""
    return member.parent.name if member.name == "model" else member.name


def main(argv=None) -> int:
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from ser_train import soup, train
    from ser_train.calibrate import folded_temperature

    args = parse_args(argv)
    torch.set_num_threads(1)
    logs = [soup.training_log(m) for m in args.members]
    models = [AutoModelForAudioClassification.from_pretrained(m) for m in args.members]
    a, b = (soup.raw_state(m, folded_temperature(log)) for m, log in zip(models, logs))
    model = models[0]
    label2id = {label: int(i) for i, label in model.config.id2label.items()}
    sets = clip_sets(args, logs[0], AutoFeatureExtractor.from_pretrained(args.members[0]), label2id)
    rows = []
    for weight in np.linspace(0.0, 1.0, args.steps + 1):
        model.load_state_dict(soup.average([a, b], [str(m) for m in args.members], [1 - weight, weight]))
        row = {"weight_of_second": float(weight)}
        for name, data in sets.items():
            row[name] = train.accuracy(model, data, torch.device("cpu"))[0]
        rows.append(row)
        print(json.dumps(row), flush=True)
    # Two runs from one start: the half-way point is their soup. A run and its own start: no soup, only the line.
    result = {"members": [str(m) for m in args.members], "soup_at_half": soup.one_start(logs), "path": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soup-path.json").write_text(json.dumps(result, indent=2))
    plot(result, args.out / "soup-path.png")
    return 0


def plot(result: dict, path: Path) -> None:
    """Accuracy of each scored set against the second member's weight (``result``: what soup-path.json holds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["path"]
    first, second = (Path(m) for m in result["members"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    weights = [r["weight_of_second"] for r in rows]
    for name in (k for k in rows[0] if k != "weight_of_second"):
        ax.plot(weights, [r[name] for r in rows], marker="o", label=name)
    if result["soup_at_half"]:
        ax.axvline(0.5, color="grey", linestyle=":", label="the soup")
    ax.set_xlabel(f"weight of {short_name(second)} (0: {short_name(first)})")
    ax.set_ylabel("accuracy")
    ax.set_title("Between two checkpoints' weights")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
