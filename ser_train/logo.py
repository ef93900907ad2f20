"""Leave-one-generator-out evaluation: how the demo recipe does on a voice generator it never heard.

For each held-out generator: train the recipe on every other generator
(``ser-serve train --exclude-generator G``, temperature calibrated on the
validation clips of the training generators only), then evaluate on G's test
clips: accuracy, and the expected calibration error (15 equal-width bins)
after and before calibration. "Before" is recovered exactly from the
calibrated answers: with p = softmax(z / T), softmax(T log p) = softmax(z).

Cross-generator temperature. A temperature fitted on validation clips of the
training generators calibrates the model for voices it knows; on an unheard
generator it is right less often, and that T (below 1 after label smoothing)
leaves it over-confident there. So, with two or more folds, the summary also
gives each fold's ECE under a temperature fitted on the *other* folds'
held-out generators (never its own: an honest estimate of calibrating for an
unheard voice), and ``cross_generator_temperature``, fitted on all folds'
held-out clips, which ``python -m ser_train.calibrate --logo-summary`` folds
into the demo model. That T minimises the *largest* of the generators' NLLs
(``calibrate.fit_worst_group_temperature``), not the NLL of their pooled
clips: the generators ask for different temperatures, an unheard voice may
ask for the most, and a T fitted to the pool is pulled down by the one that
asks least (beside it, the pooled T and its ECE are reported for comparison).

Writes ``<out>/<G>/model``, ``<out>/<G>/eval`` (report.json, confusion.png,
reliability.png) and ``<out>/summary.{json,md}``; for a weight-averaged
recipe (``--average-epochs``) the same for the run's best single epoch
(``<G>/model/best-epoch``, ``<G>/eval-best-epoch``), side by side. A fold
whose evaluation exists is not redone (delete its folder to redo it); the
summary covers every finished fold under ``<out>``.

``--extra-test`` adds held-out clips: another ``ser-serve synth --seed``'s test
split (``make data-logo-test``: 85 more clips per label, 1,000 per engine with
``make data``'s 40), merged with ``--data``'s into ``<out>/test.parquet``. A 320-clip
ECE reads about 0.055 for a perfectly calibrated model with the demo's
confidences, a 1,000-clip one 0.030. A fold scored on other held-out clips than
the ones asked for (``fold.json`` keeps their SHA-256) is scored again (its
trained model is kept); the merged split is written again only when one of its
two sources changed.

With ``--seeds 0 1``, each fold trains the recipe once per seed
(``<G>/seed-<s>/model``, ``--jobs 2`` side by side, each one's output in
``<G>/seed-<s>/train.log``) and serves their soup (``ser_train.soup``: the
weight average) as ``<G>/model``; every member is scored too, in
``<G>/seed-<s>/eval``, and the summary has each seed's table beside the soup's.
A member whose training log exists is not retrained.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ser_train import evaluate, soup, train
from ser_train.calibrate import (WORST_GROUP_RULE, ece_of_logits, fit_temperature, fit_worst_group_temperature,
                                 pooled)
from ser_train.dataset import GENERATORS, clips_digest, merge_test_splits


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ser_train.logo", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("build/data"), help="folder with train/validation/test.parquet")
    parser.add_argument("--holdout", nargs="+", help="generators to hold out, one fold each (default: every text-to-speech "
                        "engine the data has)")
    parser.add_argument("--out", type=Path, default=Path("build/logo"))
    parser.add_argument("--extra-test", type=Path, help="a test.parquet of more held-out clips (another seed's), "
                        "merged with --data's test split into <out>/test.parquet")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--preset", default="small", help="train each fold from this random-init preset")
    start.add_argument("--init-from", type=Path, help="or fine-tune each fold from this checkpoint (it must not have "
                       "seen the held-out generators: the demo's first stage saw only the synthetic voice)")
    parser.add_argument("--train-args", default="", help="further `ser-serve train` options, as one string")
    parser.add_argument("--seeds", type=int, nargs="+", help="train each fold once per seed and serve their soup")
    parser.add_argument("--jobs", type=int, default=1, help="with --seeds: how many members train side by side")
    args = parser.parse_args(argv)
    if args.seeds and len(set(args.seeds)) < 2:
        parser.error("--seeds needs two or more different seeds (a soup of one run is that run)")
    return args


def train_argv(generator: str, out: Path, args, seed: int | None = None) -> list[str]:
    """The `ser-serve train` options of one fold's run (a member of its soup when ``seed`` is given)."""
    return ["--train", str(args.data / "train.parquet"), "--validation", str(args.data / "validation.parquet"),
            *(["--init-from", str(args.init_from)] if args.init_from else ["--preset", args.preset]),
            "--out", str(out), "--exclude-generator", generator, *args.train_args.split(),
            *(["--seed", str(seed)] if seed is not None else [])]


def raw_logits(result: dict, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """The answers' logits before the folded temperature T (up to a per-answer constant): T * log p; and the truth."""
    labels = sorted(result["scores"][0])
    p = np.array([[scores[label] for label in labels] for scores in result["scores"]], dtype=np.float64)
    return temperature * np.log(np.clip(p, 1e-300, None)), np.array([labels.index(t) for t in result["truth"]])


def uncalibrated_ece(result: dict, temperature: float) -> float:
    """ECE of the answers before the folded temperature T: softmax(T * log p) per answer."""
    return ece_of_logits(*raw_logits(result, temperature))


def held_out_row(generator: str, model_dir: Path, eval_dir: Path, calibration: dict, test: Path) -> dict:
    """One model's accuracy and calibration on the held-out generator's clips in ``test`` (written to ``eval_dir``)."""
    result = evaluate.evaluate(evaluate.parse_args([
        "--data", str(test), "--generator", generator, "--model-dir", str(model_dir), "--out", str(eval_dir)]))
    temperature = calibration["temperature"]
    return {"held_out": generator, "test": str(test), "test_clips": result["examples"], "accuracy": result["accuracy"],
            "macro_f1": result["macro_f1"], "ece_after": result["ece"], "ece_before": uncalibrated_ece(result, temperature),
            "mean_confidence": result["mean_confidence"], "temperature": temperature, "validation": calibration}


def scored_on(fold_row: dict, test: Path, digest: str, data: Path) -> bool:
    """Whether a finished fold was scored on these very held-out clips: by their digest, or for a fold.json from
    before digests by the test file's path (and from before the "test" key, it was --data's test split)."""
    if "test_clips_sha256" in fold_row:
        return fold_row["test_clips_sha256"] == digest
    return fold_row.get("test", str(data / "test.parquet")) == str(test)


def fold(generator: str, args) -> dict:
    out = args.out / generator
    earlier = json.loads((out / "fold.json").read_text()) if (out / "fold.json").exists() else None
    digest = clips_digest(args.test, generator)
    if earlier and scored_on(earlier, args.test, digest, args.data):
        return earlier
    started = time.time()
    if earlier:  # trained, but scored on other clips: score it again, train nothing
        log = json.loads((out / "model" / "training_log.json").read_text())
        members = [out / f"seed-{s}" / "model" for s in args.seeds or []]
    elif args.seeds:
        members = [out / f"seed-{s}" / "model" for s in args.seeds]
        soup.train_members(lambda s, m: train_argv(generator, m, args, s), members, args.seeds, args.jobs)
        log = soup.soup(members, out / "model")
    else:
        log = train.train(train.parse_args(train_argv(generator, out / "model", args)))
    minutes = earlier["train_minutes"] if earlier else round((time.time() - started) / 60, 1)
    summary = {**held_out_row(generator, out / "model", out / "eval", log["calibration"], args.test),
               "test_clips_sha256": digest, "train_clips": log["train_clips"], "train_minutes": minutes,
               "best_val_accuracy": log["best_val_accuracy"]}
    if "average" in log:
        # A weight-averaged run: its best single epoch too, the same run's model without the average.
        summary["average"] = log["average"]
        summary["best_epoch"] = held_out_row(generator, out / "model" / "best-epoch", out / "eval-best-epoch",
                                             log["best_epoch_calibration"], args.test)
    if args.seeds:
        summary["soup"] = log["soup"]
        summary["members"] = [
            {**held_out_row(generator, m, m.parent / "eval", soup.training_log(m)["calibration"], args.test), "seed": s}
            for s, m in zip(args.seeds, members)]
    (out / "fold.json").write_text(json.dumps(summary, indent=2))
    return summary


def cross_generator(rows: list[dict], out: Path, eval_name: str = "eval") -> dict:
    """``cross_fold`` of the folds in ``rows``, whose held-out answers are ``<out>/<G>/<eval_name>/report.json``."""
    held_out = {r["held_out"]: raw_logits(json.loads((out / r["held_out"] / eval_name / "report.json").read_text()),
                                          r["temperature"]) for r in rows}
    return cross_fold(rows, held_out)


def cross_fold(rows: list[dict], held_out: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Per fold (added to its row), the ECE under the temperature fitted on the other folds' held-out clips (the
    worst generator's NLL minimised; beside it the pooled NLL's T, for comparison); and the T of all of them, by the
    same two rules. ``held_out``: each fold's raw held-out logits and truth (``raw_logits``), by held-out generator."""
    if len(held_out) < 2:
        return {}
    for r in rows:
        mine = held_out[r["held_out"]]
        others = [held_out[g] for g in held_out if g != r["held_out"]]
        r["cross_temperature"] = fit_worst_group_temperature(others)
        r["ece_cross"] = ece_of_logits(*mine, r["cross_temperature"])
        r["cross_temperature_pooled"] = fit_temperature(*pooled(others))
        r["ece_cross_pooled"] = ece_of_logits(*mine, r["cross_temperature_pooled"])
    every = list(held_out.values())
    return {"cross_generator_temperature": fit_worst_group_temperature(every), "cross_generator_rule": WORST_GROUP_RULE,
            "cross_generator_temperature_pooled": fit_temperature(*pooled(every)),
            "cross_generator_folds": sorted(held_out)}


def table(rows: list[dict]) -> str:
    lines = ["| held-out generator | test clips | accuracy | macro-F1 | ECE uncalibrated | ECE, T from validation (T) "
             "| ECE, T from the other held-out generators: worst one's NLL (T) | pooled NLL (T) | train minutes |",
             "|---|---|---|---|---|---|---|---|---|"]

    def ece_at(r, ece, temperature):
        return f"{r[ece]:.3f} ({r[temperature]:.2f})" if ece in r else "-"

    for r in rows:
        worst, pool = ece_at(r, "ece_cross", "cross_temperature"), ece_at(r, "ece_cross_pooled", "cross_temperature_pooled")
        lines.append(f"| {r['held_out']} | {r['test_clips']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['ece_before']:.3f} | "
                     f"{r['ece_after']:.3f} ({r['temperature']:.2f}) | {worst} | {pool} | {r['train_minutes']} |")
    return "\n".join(lines) + "\n"


def data_generators(test: Path) -> list[str]:
    """The generators whose clips a test split has, in ``GENERATORS`` order."""
    import pyarrow.parquet as pq

    present = set(pq.read_table(test, columns=["generator"]).column("generator").to_pylist())
    return [g for g in GENERATORS if g in present]


def main(argv=None) -> int:
    args = parse_args(argv)
    args.test = args.data / "test.parquet"
    if args.extra_test:
        args.test = merge_test_splits(args.test, args.extra_test, args.out / "test.parquet")
    present = data_generators(args.test)
    if args.holdout is None:
        args.holdout = [g for g in present if g != "synth"]
    absent = [g for g in args.holdout if g not in present]
    if absent:  # refused before any fold trains, not after
        raise SystemExit(f"--holdout {' '.join(absent)}: {args.test} has no clips of "
                         f"{'that generator' if len(absent) == 1 else 'those generators'} (it has {', '.join(present)})")
    for g in args.holdout:
        fold(g, args)
    done = sorted(p.parent.name for p in args.out.glob("*/fold.json"))
    rows = [json.loads((args.out / g / "fold.json").read_text()) for g in done]
    summary = {"folds": rows, "ece_bins": 15, **cross_generator(rows, args.out)}
    text = table(rows)
    if "cross_generator_temperature" in summary:
        text += (f"\nTemperature fitted on all {len(rows)} held-out generators ({WORST_GROUP_RULE}): "
                 f"{summary['cross_generator_temperature']:.3f} (pooled NLL: {summary['cross_generator_temperature_pooled']:.3f})\n")
    best_epochs = [r["best_epoch"] for r in rows if "best_epoch" in r]
    if best_epochs:
        summary["best_epoch"] = {"folds": best_epochs, **cross_generator(best_epochs, args.out, "eval-best-epoch")}
        text += "\nThe same runs' best single epoch (without the weight average):\n\n" + table(
            [{**r, "train_minutes": "-"} for r in best_epochs])
    seeds = sorted({m["seed"] for r in rows for m in r.get("members", [])})
    if seeds:
        summary["members"] = {}
        for seed in seeds:
            member_rows = [m for r in rows for m in r.get("members", []) if m["seed"] == seed]
            summary["members"][str(seed)] = {"folds": member_rows,
                                             **cross_generator(member_rows, args.out, f"seed-{seed}/eval")}
            text += f"\nSeed {seed} alone (a member of the soup above):\n\n" + table(
                [{**r, "train_minutes": "-"} for r in member_rows])
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
