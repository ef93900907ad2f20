"""Leave-one-generator-out on a tiny model: one fold per held-out engine, the cross-generator temperature, a
weight-averaged recipe's best single epoch evaluated beside its average, and a soup of two seeds beside each seed."""

import json

import numpy as np
import pytest

from calibration_sets import sampled
from ser_train import logo
from ser_train.calibrate import (WORST_GROUP_RULE, ece_of_logits, fit_temperature, fit_worst_group_temperature,
                                 pooled)
from ser_train.evaluate import plot_ece_by_temperature
from ser_train.dataset import write_synthetic_dataset
from ser_train.presets import make_preset_checkpoint


def test_each_fold_is_scored_on_its_held_out_engine_with_the_other_folds_temperature(tts_engines, tmp_path):
    data = tmp_path / "data"
    write_synthetic_dataset(data, seed=5, per_label={"train": 2, "validation": 1, "test": 1},
                            generators=("synth", "espeak-ng", "flite"))
    out = tmp_path / "logo"
    assert logo.main(["--data", str(data), "--holdout", "espeak-ng", "flite", "--out", str(out), "--preset", "tiny",
                      "--train-args", "--epochs 2 --average-epochs 1 --batch-size 8 --lr 2e-3 --warmup-steps 2 "
                                      "--crop-seconds 1.0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [f["held_out"] for f in summary["folds"]] == ["espeak-ng", "flite"]
    assert summary["cross_generator_folds"] == summary["best_epoch"]["cross_generator_folds"] == ["espeak-ng", "flite"]
    for variant, eval_name in ((summary["folds"], "eval"), (summary["best_epoch"]["folds"], "eval-best-epoch")):
        for fold in variant:
            report = json.loads((out / fold["held_out"] / eval_name / "report.json").read_text())
            # Scored on the held-out engine's 8 test clips only (one per label), never on clips it trained on.
            assert fold["test_clips"] == report["examples"] == 8
            assert fold["accuracy"] == report["accuracy"]
            assert fold["cross_temperature"] > 0 and 0 <= fold["ece_cross"] <= 1
    # Two folds: each one's T is fitted on the other's held-out clips alone, where both rules give the same T.
    for fold in summary["folds"]:
        assert fold["cross_temperature"] == pytest.approx(fold["cross_temperature_pooled"], rel=1e-3)
    assert summary["cross_generator_rule"] == WORST_GROUP_RULE
    (a, b), raw = summary["folds"], {f["held_out"]: logo.raw_logits(
        json.loads((out / f["held_out"] / "eval" / "report.json").read_text()), f["temperature"]) for f in summary["folds"]}
    assert a["cross_temperature"] == pytest.approx(fit_temperature(*raw[b["held_out"]]), rel=1e-3)
    assert b["cross_temperature"] == pytest.approx(fit_temperature(*raw[a["held_out"]]), rel=1e-3)
    # The average and the best epoch are different models of the same run.
    for fold in summary["folds"]:
        assert fold["average"]["from_epoch"] == 2 and fold["average"]["updates"] > 0
        assert fold["validation"]["temperature"] != fold["best_epoch"]["validation"]["temperature"]
        assert fold["train_clips"] == 2 * 8 * 2  # synth and the other engine, 2 per label each
    text = (out / "summary.md").read_text()
    assert "best single epoch" in text and text.count("| espeak-ng |") == 2


def test_a_fold_of_two_seeds_serves_their_soup_and_scores_each_member_beside_it(tts_engines, tmp_path):
    data = tmp_path / "data"
    write_synthetic_dataset(data, seed=6, per_label={"train": 2, "validation": 1, "test": 1},
                            generators=("synth", "espeak-ng", "flite"))
    out = tmp_path / "logo"
    start = make_preset_checkpoint("tiny", tmp_path / "start")  # a soup's members share their start
    # --jobs 2: the members train side by side in child processes, each writing its own train.log.
    assert logo.main(["--data", str(data), "--holdout", "espeak-ng", "flite", "--out", str(out),
                      "--init-from", str(start),
                      "--seeds", "0", "1", "--jobs", "2", "--train-args",
                      "--epochs 1 --batch-size 8 --lr 2e-3 --warmup-steps 2 --crop-seconds 1.0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["members"]) == ["0", "1"]
    for fold in summary["folds"]:
        g = fold["held_out"]
        assert fold["soup"]["seeds"] == [0, 1]
        assert [m["seed"] for m in fold["members"]] == [0, 1]
        assert all((out / g / f"seed-{s}" / "train.log").stat().st_size > 0 for s in (0, 1))
        # Each member is scored on the held-out engine's clips, as the soup is, from its own checkpoint.
        for member in fold["members"]:
            assert member["test_clips"] == fold["test_clips"] == 8
            member_log = json.loads((out / g / f"seed-{member['seed']}" / "model" / "training_log.json").read_text())
            assert member_log["args"]["seed"] == member["seed"] and member_log["args"]["exclude_generator"] == [g]
    for seed in ("0", "1"):
        assert summary["members"][seed]["cross_generator_folds"] == ["espeak-ng", "flite"]
    text = (out / "summary.md").read_text()
    assert "Seed 0 alone" in text and "Seed 1 alone" in text


def test_the_folds_default_to_the_datas_engines_and_an_engine_it_lacks_is_refused_before_training(tts_engines, tmp_path):
    import pytest

    data = tmp_path / "data"
    write_synthetic_dataset(data, seed=7, per_label={"train": 1, "validation": 1, "test": 1},
                            generators=("synth", "espeak-ng"))
    assert logo.data_generators(data / "test.parquet") == ["synth", "espeak-ng"]
    out = tmp_path / "logo"
    with pytest.raises(SystemExit, match=r"--holdout hts: .* has no clips of that generator \(it has synth, espeak-ng\)"):
        logo.main(["--data", str(data), "--holdout", "espeak-ng", "hts", "--out", str(out), "--preset", "tiny"])
    assert not out.exists()  # no fold was trained


def test_extra_test_clips_are_merged_and_a_fold_scored_on_fewer_is_scored_again_without_retraining(tts_engines, tmp_path):
    from ser_train.dataset import merge_test_splits

    data, extra = tmp_path / "data", tmp_path / "data-logo-test"
    write_synthetic_dataset(data, seed=8, per_label={"train": 1, "validation": 1, "test": 1},
                            generators=("synth", "espeak-ng"))
    write_synthetic_dataset(extra, seed=9, per_label={"train": 0, "validation": 0, "test": 2},
                            generators=("synth", "espeak-ng"))
    out = tmp_path / "logo"
    common = ["--data", str(data), "--holdout", "espeak-ng", "--out", str(out), "--preset", "tiny",
              "--train-args", "--epochs 1 --batch-size 8 --lr 2e-3 --warmup-steps 2 --crop-seconds 1.0"]
    assert logo.main(common) == 0
    log = out / "espeak-ng" / "model" / "training_log.json"
    trained = log.stat().st_mtime_ns
    first = json.loads((out / "summary.json").read_text())["folds"][0]
    assert first["test_clips"] == 8 and first["test"] == str(data / "test.parquet")

    assert logo.main(common + ["--extra-test", str(extra / "test.parquet")]) == 0
    again = json.loads((out / "summary.json").read_text())["folds"][0]
    # 1 + 2 clips per label of the held-out engine, from the merged split, by the same model (not trained again).
    assert again["test_clips"] == 24 and again["test"] == str(out / "test.parquet")
    assert log.stat().st_mtime_ns == trained and again["train_minutes"] == first["train_minutes"]
    import pyarrow.parquet as pq

    names = [a["path"] for a in pq.read_table(out / "test.parquet").column("audio").to_pylist()]
    assert len(names) == len(set(names)) == 16 + 32  # both generators' clips; the extra seed's named by its folder
    assert sum(n.startswith("data-logo-test/test/") for n in names) == 32

    # Asked again: the merged split is not written again, nor is the fold scored again.
    report = out / "espeak-ng" / "eval" / "report.json"
    merged_at, scored_at = (out / "test.parquet").stat().st_mtime_ns, report.stat().st_mtime_ns
    assert logo.main(common + ["--extra-test", str(extra / "test.parquet")]) == 0
    assert (out / "test.parquet").stat().st_mtime_ns == merged_at and report.stat().st_mtime_ns == scored_at

    # Other clips under the same file name (another seed's): merged again and the fold scored again, not retrained.
    write_synthetic_dataset(extra, seed=10, per_label={"train": 0, "validation": 0, "test": 2},
                            generators=("synth", "espeak-ng"))
    assert logo.main(common + ["--extra-test", str(extra / "test.parquet")]) == 0
    third = json.loads((out / "summary.json").read_text())["folds"][0]
    assert third["test_clips_sha256"] != again["test_clips_sha256"] and third["test"] == again["test"]
    assert report.stat().st_mtime_ns != scored_at and log.stat().st_mtime_ns == trained
    assert not list(out.glob("*.partial"))

    # The same clips twice would count each held-out clip twice: refused.
    with pytest.raises(ValueError, match="share clips"):
        merge_test_splits(data / "test.parquet", data / "test.parquet", tmp_path / "twice.parquet")


def test_cross_fold_scores_each_fold_with_a_temperature_its_own_clips_never_enter():
    rng = np.random.default_rng(2)
    # Three engines held out: two ask for T 1.3, one (the over-confident fold) for 2.2.
    held_out = {"a": sampled(rng, 1200, 1.3), "b": sampled(rng, 1200, 1.3), "c": sampled(rng, 1200, 2.2)}
    rows = [{"held_out": g} for g in held_out]
    summary = logo.cross_fold(rows, held_out)
    by = {r["held_out"]: r for r in rows}
    assert by["c"]["cross_temperature"] == pytest.approx(fit_worst_group_temperature([held_out["a"], held_out["b"]]))
    assert by["c"]["cross_temperature"] < 1.6  # what the other two ask for: c's own 2.2 never enters
    assert by["c"]["ece_cross"] == pytest.approx(ece_of_logits(*held_out["c"], by["c"]["cross_temperature"]))
    assert by["a"]["cross_temperature"] > 1.8  # the worst of b and c is c
    assert by["a"]["cross_temperature_pooled"] == pytest.approx(fit_temperature(*pooled([held_out["b"], held_out["c"]])))
    assert summary["cross_generator_folds"] == ["a", "b", "c"]
    assert summary["cross_generator_temperature"] == pytest.approx(fit_worst_group_temperature(list(held_out.values())))
    assert logo.cross_fold(rows[:1], {"a": held_out["a"]}) == {}  # one fold has no other to take T from


def test_ece_by_temperature_plot_draws_one_line_per_set_and_per_temperature(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    drawn = {}
    monkeypatch.setattr(plt, "close", lambda fig: drawn.setdefault("figure", fig))
    rng = np.random.default_rng(3)
    z, y = sampled(rng, 300, 1.5)
    path = tmp_path / "ece.png"
    plot_ece_by_temperature([("one", z, y), ("two", z * 2, y)], [("served T", 1.58, ":")], path, "ECE", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axis = drawn["figure"].axes[0]
    assert [line.get_label() for line in axis.get_lines()] == ["one", "two", "served T 1.58", "target ECE 0.10"]
    one, two = axis.get_lines()[:2]
    assert one.get_ydata()[0] == pytest.approx(ece_of_logits(z, y, one.get_xdata()[0]))
    assert min(two.get_ydata()) < max(two.get_ydata())  # ECE moves with T
