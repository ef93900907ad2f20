"""Model soups (ser_train.soup): the weight average of runs fine-tuned from one checkpoint with different seeds."""

import json

import pytest
import torch
from safetensors.torch import load_file

from ser_train import soup, train
from ser_train.presets import make_preset_checkpoint


@pytest.fixture(scope="module")
def made(small_dataset, tmp_path_factory):
    """`python -m ser_train.soup --seeds 0 1`: two one-epoch runs from one tiny checkpoint, each calibrated (its T
    folded in), and their soup."""
    root = tmp_path_factory.mktemp("soup")
    start = make_preset_checkpoint("tiny", root / "start")
    assert soup.main(["--out", str(root / "soup"), "--seeds", "0", "1", "--train-args",
                      f"--train {small_dataset['train']} --validation {small_dataset['validation']} --init-from {start} "
                      "--epochs 1 --batch-size 8 --lr 2e-3 --warmup-steps 2 --crop-seconds 1.0 "
                      "--calibration-copies 1"]) == 0
    return root / "soup", [root / f"soup-seed-{s}" / "model" for s in (0, 1)]


@pytest.fixture(scope="module")
def members(made):
    return made[1]


def raw(model_dir):
    """A checkpoint's weights with its folded temperature taken back out of the classifier."""
    weights = load_file(model_dir / "model.safetensors")
    t = json.loads((model_dir / "training_log.json").read_text())["calibration"]["temperature"]
    return {k: v * t if k.startswith("classifier.") else v for k, v in weights.items()}, t


def test_the_soup_is_the_mean_of_the_members_raw_weights_then_calibrated(made):
    out, members = made
    (a, ta), (b, tb) = raw(members[0]), raw(members[1])
    assert ta != tb and not torch.equal(a["classifier.weight"], b["classifier.weight"])
    summary = json.loads((out / "training_log.json").read_text())
    mixed, t = raw(out)
    assert t == summary["calibration"]["temperature"] > 0
    for key in a:
        torch.testing.assert_close(mixed[key], (a[key] + b[key]) / 2, rtol=1e-5, atol=1e-6)
    assert summary["soup"]["seeds"] == [0, 1]
    assert summary["soup"]["member_folded_temperatures"] == [ta, tb]
    assert 0 <= summary["soup"]["val_accuracy"] <= 1
    # Calibrated as its first member was: the validation clips plus one augmented copy of each.
    assert summary["calibration"]["clips"] == 2 * summary["validation_clips"] == 2 * 8
    # Any loader gets the soup: the card's reference code loads it as it loads a trained checkpoint.
    from transformers import AutoModelForAudioClassification

    assert AutoModelForAudioClassification.from_pretrained(out).config.id2label == \
        AutoModelForAudioClassification.from_pretrained(members[0]).config.id2label


def test_members_from_different_starts_are_refused(members, small_dataset, tmp_path, capsys):
    scratch = tmp_path / "scratch"
    train.train(train.parse_args([
        "--train", str(small_dataset["train"]), "--validation", str(small_dataset["validation"]), "--preset", "tiny",
        "--out", str(scratch), "--epochs", "1", "--batch-size", "8", "--crop-seconds", "1.0", "--no-calibrate"]))
    with pytest.raises(SystemExit, match="fine-tuned from one checkpoint"):
        soup.soup([members[0], scratch], tmp_path / "mixed")
    with pytest.raises(SystemExit, match="two or more members"):
        soup.soup([members[0]], tmp_path / "one")
    with pytest.raises(SystemExit, match="must not be one of the members"):
        soup.main([str(members[0]), str(members[1]), "--out", str(members[1])])
    with pytest.raises(SystemExit, match="not both"):
        soup.main([str(members[0]), "--out", str(tmp_path / "both"), "--seeds", "0", "1"])


def test_members_side_by_side_each_get_their_own_numba_cache(tmp_path, monkeypatch):
    """Two children compiling librosa's kernels into one inherited NUMBA_CACHE_DIR at once: one segfaulted."""
    import os
    import subprocess

    seen = []

    def run(command, env, **kwargs):
        seen.append(env)
        return subprocess.CompletedProcess(command, -11 if "--seed" in command and command[-1] == "1" else 0)

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "parent-cache"))
    monkeypatch.setattr(soup.subprocess, "run", run)
    members = [tmp_path / f"seed-{s}" / "model" for s in (0, 1)]
    with pytest.raises(SystemExit, match=r"seed-1/model failed \(killed by signal 11\)"):
        soup.train_members(lambda s, m: ["--out", str(m), "--seed", str(s)], members, [0, 1], jobs=2)
    assert len(seen) == 2 and all("NUMBA_CACHE_DIR" not in env for env in seen)
    assert all(env["PATH"] == os.environ["PATH"] for env in seen)


def make_dry_run(*args) -> list[list[str]]:
    """The commands `make -n` prints, each split as the shell would."""
    import shlex
    import subprocess
    from pathlib import Path

    done = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=Path(__file__).parents[2],
                          capture_output=True, text=True, check=True)
    return [shlex.split(line) for line in done.stdout.replace("\\\n", " ").splitlines() if line.strip()]


def tool_args(commands, module):
    return next(c[3:] for c in commands if c[1:3] == ["-m", module])


def stage2_train_args(commands):
    """The arguments of train-demo's stage 2: a `ser_serve.cli train` from stage 1 (`make data` and, on a clean
    checkout, stage 1 itself come first: `ser_serve.cli synth`, then a `train --preset small`)."""
    return next(c[4:] for c in commands if c[1:4] == ["-m", "ser_serve.cli", "train"] and "--init-from" in c)


def test_the_makefile_seed_options_are_commands_the_tools_accept():
    import shlex

    from ser_train import logo

    demo = soup.parse_args(tool_args(make_dry_run("train-demo", "DEMO_SEEDS=0 1"), "ser_train.soup"))
    assert demo.seeds == [0, 1] and demo.jobs == 2 and str(demo.out) == "build/demo"
    member = train.parse_args([*shlex.split(demo.train_args), "--out", "m", "--seed", "1"])
    assert str(member.init_from) == "build/demo-stage1" and member.epochs == 6
    assert member.bf16 == train.cpu_has_native_bf16()  # the Makefile asks lscpu; torch asks the CPU itself
    folds = logo.parse_args(tool_args(make_dry_run("evaluate-demo-logo", "LOGO_SEEDS=0 1"), "ser_train.logo"))
    assert folds.seeds == [0, 1] and folds.jobs == 2
    # Without the seeds: one run, as before; DEMO_BF16= / DEMO_BF16=--bf16 force either precision.
    plain = make_dry_run("train-demo", "DEMO_BF16=")
    assert "--bf16" in stage2_train_args(make_dry_run("train-demo", "DEMO_BF16=--bf16"))
    assert not any(c[1:3] == ["-m", "ser_train.soup"] for c in plain)
    assert "--bf16" not in stage2_train_args(plain) and logo.parse_args(
        tool_args(make_dry_run("evaluate-demo-logo"), "ser_train.logo")).seeds is None


def test_the_path_between_two_members_starts_and_ends_at_them(made, tmp_path):
    from ser_train import soup_path

    _, members = made
    assert soup_path.main(["--members", *map(str, members), "--steps", "2", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "soup-path.json").read_text())
    path = result["path"]
    assert [row["weight_of_second"] for row in path] == [0.0, 0.5, 1.0]
    assert result["soup_at_half"]  # two seeds from one start: the half-way point is their soup
    # Each end is a member itself: its validation accuracy is what its training saved it for.
    for row, member in ((path[0], members[0]), (path[-1], members[1])):
        assert row["validation"] == json.loads((member / "training_log.json").read_text())["best_val_accuracy"]
    assert (tmp_path / "soup-path.png").stat().st_size > 0


def test_the_path_scores_each_named_generators_test_clips(made, small_dataset, tmp_path):
    """--holdout / --test: the line between a fine-tuned model and another checkpoint, scored on test clips too;
    a generator with no test clips is refused, not scored as an empty set."""
    from ser_train import soup_path

    _, members = made
    data = ["--data", str(small_dataset["test"].parent)]
    assert soup_path.main(["--members", *map(str, members), "--steps", "1", "--test", "synth", *data,
                           "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "soup-path.json").read_text())["path"]
    assert [sorted(row) for row in rows] == [["synth test", "validation", "weight_of_second"]] * 2
    assert all(0.0 <= row["synth test"] <= 1.0 for row in rows)
    with pytest.raises(SystemExit, match="no clips of generator 'hts'"):
        soup_path.main(["--members", *map(str, members), "--holdout", "hts", *data, "--out", str(tmp_path / "x")])
