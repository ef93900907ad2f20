"""The `accented` fold trained with several seeds, the other four folds fixed: how far one training run moves the
held-out figures and the leave-one-generator-out temperature, and what a T fitted on all the seeds at once gives.

    python seeds.py OUT.png RUN [RUN ...] [--check DIR --check-set PARQUET --model-dir MODEL]

RUN: a ser_train.logo output folder (summary.json, <engine>/eval/report.json) of five folds, scored on the same
1,000-clip test sets, in which only the `accented` fold's model differs (one seed each). --check: a
``ser_train.tts_check`` output folder of the served model (all/report.json; --check-set its clips), to print what
each T would give there (reported, not used to choose: the check is the independent one).
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ser_train.calibrate import (ece_bootstrap_interval, ece_of_logits, fit_temperature,  # noqa: E402
                                 fit_worst_group_temperature, folded_temperature, nll, pooled)
from ser_train.logo import raw_logits  # noqa: E402

FOCUS = "accented"


def fit_worst_regret_temperature(groups) -> float:
    """The T minimising the largest *excess* NLL over each group's own best T: a group that is hard at every T (a
    voice the model is often wrong on) no longer sets T by itself, only how far each group is from its own best does.
    (Each excess is convex in 1 / T, as each NLL is, so their maximum has one minimum.)"""
    from scipy.optimize import minimize_scalar

    best = [nll(z, y, fit_temperature(z, y)) for z, y in groups]
    result = minimize_scalar(lambda log_t: max(nll(z, y, float(np.exp(log_t))) - b for (z, y), b in zip(groups, best)),
                             bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-5})
    return float(np.exp(result.x))


RULES = {"Worst engine's NLL (the served rule)": fit_worst_group_temperature,
         "Worst engine's excess NLL over its own best T (a candidate, after seed 0)": fit_worst_regret_temperature}


def held_out(run: Path) -> tuple[dict, dict]:
    """Per engine: its fold's summary row and its held-out clips' (raw logits, labels)."""
    summary = json.loads((run / "summary.json").read_text())
    rows = {r["held_out"]: r for r in summary["folds"]}
    clips = {g: raw_logits(json.loads((run / g / "eval" / "report.json").read_text()), r["temperature"])
             for g, r in rows.items()}
    return {g: {**r, "run_t": summary["cross_generator_temperature"],
                "run_t_pooled": summary["cross_generator_temperature_pooled"]} for g, r in rows.items()}, clips


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plot", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--check", type=Path, help="the served model's ser_train.tts_check folder")
    parser.add_argument("--check-set", type=Path, help="the check's clips (its set/check.parquet)")
    parser.add_argument("--model-dir", type=Path, default=Path("models/demo"), help="the model --check scored")
    args = parser.parse_args()
    runs = [held_out(run) for run in args.runs]
    seeds = [json.loads((run / FOCUS / "model" / "training_log.json").read_text())["args"]["seed"] for run in args.runs]
    others = [g for g in runs[0][0] if g != FOCUS]
    for rows, clips in runs[1:]:  # the other folds must be the very same scores in every run
        assert all(np.array_equal(clips[g][0], runs[0][1][g][0]) for g in others), "the runs differ beyond accented"

    print(f"| {FOCUS} fold, seed | accuracy | ECE uncalibrated | its own best T | ECE at the other four folds' T (T) "
          "| 5-95 % range | T of all five folds: worst engine's NLL | pooled NLL |\n|---|---|---|---|---|---|---|---|")
    for seed, (rows, clips) in zip(seeds, runs):
        r, (z, y) = rows[FOCUS], clips[FOCUS]
        low, high = ece_bootstrap_interval(z, y, r["cross_temperature"])
        print(f"| {seed} | {r['accuracy']:.3f} ({round(r['accuracy'] * r['test_clips'])} of {r['test_clips']}) "
              f"| {r['ece_before']:.3f} | {fit_temperature(z, y):.2f} | {r['ece_cross']:.3f} ({r['cross_temperature']:.2f}) "
              f"| {low:.3f}-{high:.3f} | {r['run_t']:.3f} | {r['run_t_pooled']:.3f} |")
    accuracy = [rows[FOCUS]["accuracy"] for rows, _ in runs]
    print(f"| mean | {np.mean(accuracy):.3f} (spread {max(accuracy) - min(accuracy):.3f}) | | | | | | |")

    # One T from every seed at once: the accented group is all seeds' clips together (its NLL is then the mean of
    # the seeds' NLLs), the English engines as before. Each engine's ECE under the T of the *other* engines, by
    # each rule; and the same with one seed at a time (the range over seeds).
    english = {g: runs[0][1][g] for g in others}
    accented = [clips[FOCUS] for _, clips in runs]
    accented_all = pooled(accented)
    t_all = {}
    for name, rule in RULES.items():
        t_all[name] = rule([*english.values(), accented_all])
        per_seed_t = [rule([*english.values(), a]) for a in accented]
        print(f"\n**{name}.** T of all five folds: {t_all[name]:.3f} with every seed as one `{FOCUS}` group; "
              f"one seed at a time {', '.join(f'{t:.3f}' for t in per_seed_t)} (spread {max(per_seed_t) - min(per_seed_t):.3f})\n")
        print("| held out | ECE at the other engines' T, accented = all seeds (T) "
              "| one seed at a time: ECE range (T range) |\n|---|---|---|")
        for g in others:
            rest = [english[o] for o in others if o != g]
            t = rule([*rest, accented_all])
            ts = [rule([*rest, a]) for a in accented]
            eces = [ece_of_logits(*english[g], x) for x in ts]
            print(f"| {g} | {ece_of_logits(*english[g], t):.3f} ({t:.2f}) | {min(eces):.3f}-{max(eces):.3f} "
                  f"({min(ts):.2f}-{max(ts):.2f}) |")
        t_english = rule(list(english.values()))
        print(f"| {FOCUS}, seeds {', '.join(map(str, seeds))} | "
              f"{', '.join(f'{ece_of_logits(*a, t_english):.3f}' for a in accented)} ({t_english:.2f}) | |")

    if args.check:
        independent_check(args.check, args.check_set, args.model_dir, {"served (folded)": folded_temperature(
            json.loads((args.model_dir / "training_log.json").read_text())), "seed 0's five folds, worst NLL":
            runs[0][0][FOCUS]["run_t"], **{f"{name.split(' (')[0]}, all seeds": t for name, t in t_all.items()}})
    plot(args.plot, english, accented, seeds, [rows[FOCUS]["run_t"] for rows, _ in runs], t_all)
    return 0


def independent_check(check: Path, check_set: Path, model_dir: Path, temperatures: dict) -> None:
    """The served model's ECE on the independent check's clips, per engine and over all, at each of these T."""
    import pyarrow.parquet as pq

    folded = folded_temperature(json.loads((model_dir / "training_log.json").read_text()))
    z, y = raw_logits(json.loads((check / "all" / "report.json").read_text()), folded)
    engines = np.array(pq.read_table(check_set, columns=["generator"]).column("generator").to_pylist())
    assert len(engines) == len(y), f"{check_set} is not the set {check} scored"
    sets = {**{e: engines == e for e in dict.fromkeys(engines)}, f"all {len(y)}": np.ones(len(y), bool)}
    print(f"\nThe served model ({model_dir}) on the independent check ({check}), ECE at each T:\n")
    print("| T | " + " | ".join(sets) + " |\n|---|" + "---|" * len(sets))
    for name, t in temperatures.items():
        print(f"| {name}: {t:.3f} | " + " | ".join(f"{ece_of_logits(z[m], y[m], t):.3f}" for m in sets.values()) + " |")


def plot(path: Path, english: dict, accented: list, seeds: list, run_ts: list, t_all: dict) -> None:
    """Each engine's held-out NLL against T: the worst-engine rule's T is where the highest curve is lowest."""
    temperatures = np.linspace(1.0, 3.0, 81)
    fig, ax = plt.subplots(figsize=(8, 5))
    for g, (z, y) in english.items():
        ax.plot(temperatures, [nll(z, y, t) for t in temperatures], color="0.6", lw=1)
        ax.annotate(g, (temperatures[-1], nll(z, y, temperatures[-1])), fontsize=8, color="0.4")
    for seed, (z, y), t_run, colour in zip(seeds, accented, run_ts, plt.cm.viridis(np.linspace(0, 0.8, len(seeds)))):
        ax.plot(temperatures, [nll(z, y, t) for t in temperatures], color=colour, lw=2,
                label=f"{FOCUS}, seed {seed}: five-fold T {t_run:.2f} (worst NLL)")
        ax.axvline(t_run, color=colour, ls=":", lw=1)
    for (name, t), style in zip(t_all.items(), ("--", "-.")):
        ax.axvline(t, color="k", ls=style, lw=1, label=f"{name.split(' (')[0]}, all seeds as one group: T {t:.2f}")
    ax.set(xlabel="temperature T", ylabel="held-out NLL (1,000 clips per engine)",
           title="Held-out NLL per engine; grey: the four English engines' folds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
