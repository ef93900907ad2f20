"""A model soup: the uniform weight average of checkpoints fine-tuned from one start with different seeds.

Why: on the demo's leave-one-generator-out folds the training seed alone
moves a held-out engine's accuracy by 11-12 of 320 clips, as far as any recipe
change tried (benchmarks/results/demo-recipe-seed1/). Runs fine-tuned from one
checkpoint tend to stay in one basin of the loss, so the average of their
weights is itself a good model, often better on shifted data than each of them
(Wortsman et al. 2022, "Model soups"); unlike an ensemble it is one checkpoint
of the same size and speed, so the server and the card's reference code load
it unchanged.

Each member's folded temperature is taken out first (its classifier layer
multiplied back by the T its ``training_log.json`` records), so the raw logit
layers are averaged; the soup is then calibrated on the validation clips the
first member was calibrated on (its recorded ``--validation``,
``--exclude-generator``, ``--calibration-copies`` and ``--seed``), as
``ser-serve train`` does, and its log keeps the members' figures beside its own.

    python -m ser_train.soup --out build/demo build/demo-seed-0/model build/demo-seed-1/model
    python -m ser_train.soup --out build/demo --seeds 0 1 --jobs 2 --train-args "<ser-serve train options>"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ser_train.calibrate import folded_temperature


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ser_train.soup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("members", nargs="*", type=Path, help="checkpoint folders written by `ser-serve train`")
    parser.add_argument("--out", type=Path, required=True, help="folder for the averaged checkpoint")
    parser.add_argument("--seeds", type=int, nargs="+", help="or train the members first, one per seed, into "
                        "<out>-seed-<s>/model (one whose training log exists is kept)")
    parser.add_argument("--jobs", type=int, default=1, help="with --seeds: how many members train side by side")
    parser.add_argument("--train-args", default="", help="with --seeds: the `ser-serve train` options, as one "
                        "string, without --out and --seed")
    parser.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                        help="keep the average's raw logits (T = 1) instead of fitting T on validation")
    return parser.parse_args(argv)


def say(line: str) -> None:
    """One whole line at a time: members side by side report from threads."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def train_member(argv: list[str], out: Path, jobs: int) -> None:
    """One soup member; alone, in this process with its progress bars; side by side, in a child writing train.log."""
    if (out / "training_log.json").exists():
        say(f"{out}: trained already")
        return
    if jobs == 1:
        from ser_train import train

        train.train(train.parse_args(argv))
        return
    log = out.parent / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"training {out} (follow: tail -f {log})")
    started = time.time()
    # Each child makes its own numba cache (ser_train/__init__.py): two compiling into one folder at once crashed one.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    with log.open("w") as stream:
        done = subprocess.run([sys.executable, "-m", "ser_train.train", *argv], stdout=stream, stderr=subprocess.STDOUT,
                              env=env)
    if done.returncode:
        how = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        raise SystemExit(f"training {out} failed ({how}); its output: {log}")
    say(f"trained {out} in {(time.time() - started) / 60:.1f} minutes")


def train_members(argv_of_seed, members: list[Path], seeds: list[int], jobs: int) -> None:
    """Train each seed's member (``argv_of_seed(seed, out)``: its `ser-serve train` options), ``jobs`` side by side."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(lambda s, m: train_member(argv_of_seed(s, m), m, jobs), seeds, members))


def training_log(model_dir: Path) -> dict:
    path = model_dir / "training_log.json"
    if not path.exists():
        raise SystemExit(f"{model_dir} has no training_log.json: a soup's members are `ser-serve train` outputs")
    return json.loads(path.read_text())


def raw_state(model, temperature: float) -> dict[str, torch.Tensor]:
    """The model's parameters with the folded temperature taken out of its classifier (weight and bias times T)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name in ("classifier.weight", "classifier.bias"):
        if name in state:
            state[name] *= temperature
    return state


def average(states: list[dict[str, torch.Tensor]], names: list[str], weights: list[float] | None = None
            ) -> dict[str, torch.Tensor]:
    """The mean of floating-point tensors (uniform, or with ``weights`` summing to 1); anything else (counters)
    must agree across members."""
    first = states[0]
    for state, name in zip(states[1:], names[1:]):
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            raise SystemExit(f"{name} does not have the parameters of {names[0]}: only one architecture can be averaged")
    w = torch.tensor(weights if weights is not None else [1 / len(states)] * len(states), dtype=torch.float64)
    soup = {}
    for key, value in first.items():
        if value.is_floating_point():
            stacked = torch.stack([s[key].double() for s in states])
            soup[key] = torch.tensordot(w, stacked, dims=1).to(value.dtype)
        elif all(torch.equal(s[key], value) for s in states):
            soup[key] = value
        else:
            raise SystemExit(f"{key} differs between members and cannot be averaged")
    return soup


def recorded_args(log: dict) -> argparse.Namespace:
    """A member's `ser-serve train` options as it recorded them (paths as strings turned back into paths)."""
    args = argparse.Namespace(**log["args"])
    for key in ("train", "validation", "init_from", "out"):
        if getattr(args, key, None):
            setattr(args, key, Path(getattr(args, key)))
    return args


def validation_clips(args: argparse.Namespace, label2id: dict[str, int]) -> list:
    """The validation clips a member was trained with (its recorded options: file, split, excluded generators),
    decoded as the server decodes."""
    from ser_train import train

    examples = train.load_split(args.validation or args.train, None if args.validation else "validation", args)
    return train.decode_all(examples, label2id, "decode validation")


def one_start(logs: list[dict]) -> bool:
    """Whether every run was fine-tuned from one and the same ``--init-from`` checkpoint (what a soup needs)."""
    starts = [log["args"].get("init_from") for log in logs]
    return bool(starts[0]) and all(start == starts[0] for start in starts)


def soup(members: list[Path], out: Path, calibrate: bool = True) -> dict:
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from ser_train import train

    if len(members) < 2:
        raise SystemExit("a soup needs two or more members")
    logs = [training_log(m) for m in members]
    # Two random inits put the same feature in different units: their average is no model at all.
    if not one_start(logs):
        starts = [log["args"].get("init_from") for log in logs]
        raise SystemExit("a soup averages runs fine-tuned from one checkpoint (`ser-serve train --init-from`); the "
                         f"members started from {dict(zip(map(str, members), starts))}")
    models = [AutoModelForAudioClassification.from_pretrained(m) for m in members]
    labels = models[0].config.id2label
    for model, member in zip(models[1:], members[1:]):
        if model.config.id2label != labels:
            raise SystemExit(f"{member} has labels {model.config.id2label}, {members[0]} has {labels}")
    states = [raw_state(model, folded_temperature(log)) for model, log in zip(models, logs)]
    model = models[0]
    model.load_state_dict(average(states, [str(m) for m in members]))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    AutoFeatureExtractor.from_pretrained(members[0]).save_pretrained(out)

    args = recorded_args(logs[0])
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    extractor = AutoFeatureExtractor.from_pretrained(out)
    decoded_val = validation_clips(args, {label: int(i) for i, label in labels.items()})
    val_data = [(train.features(x, extractor), label) for x, label in decoded_val]
    val_accuracy, val_loss = train.accuracy(model, val_data, device)
    summary = {
        "soup": {"members": [str(m) for m in members], "seeds": [log["args"].get("seed") for log in logs],
                 "member_val_accuracy": [log["best_val_accuracy"] for log in logs],
                 "member_folded_temperatures": [folded_temperature(log) for log in logs],
                 "val_accuracy": val_accuracy, "val_loss": val_loss},
        "best_val_accuracy": val_accuracy, "train_clips": logs[0]["train_clips"],
        "validation_clips": len(val_data), "skipped_steps": sum(log.get("skipped_steps", 0) for log in logs),
        # The first member's options: what a soup of soups, or calibrate.refold, reads back.
        "args": logs[0]["args"]}
    print(json.dumps({"soup": summary["soup"]}), flush=True)
    if calibrate:
        summary["calibration"] = train.calibrate_saved(out, train.calibration_set(decoded_val, extractor, args), device)
        print(json.dumps({"calibration": summary["calibration"]}), flush=True)
    (out / "training_log.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.seeds:
        if args.members:
            raise SystemExit("give member folders or --seeds, not both")
        if len(set(args.seeds)) < 2:
            raise SystemExit("--seeds needs two or more different seeds (a soup of one run is that run)")
        args.members = [args.out.parent / f"{args.out.name}-seed-{s}" / "model" for s in args.seeds]
        train_members(lambda s, m: [*args.train_args.split(), "--out", str(m), "--seed", str(s)],
                      args.members, args.seeds, args.jobs)
    if args.out.resolve() in {m.resolve() for m in args.members}:
        raise SystemExit("--out must not be one of the members")
    soup(args.members, args.out, args.calibrate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
